"""Contact sheets: a PNG grid to look at a pose-transfer dataset pair by pair.

One row per pair, six cells: source image | source parsing (CIHP palette) | source
skeleton over the image | target image | target parsing | target skeleton, under a
header strip naming the columns. Reads the docs/design.md §4 files directly (any dataset: real
or synthetic), with the paths of a :class:`~spgnet.config.DatasetConfig`.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from spgnet import SPGNetError
from spgnet.config import DatasetConfig
from spgnet.data.dataset import SplitPaths, image_stem, index_image_dir, parse_pairs_rows
from spgnet.utils.io import load_image, load_label_png, save_image
from spgnet.parsing import colorize
from spgnet.pose import draw_skeleton, read_annotation_csv

COLUMNS: tuple[str, ...] = ("source", "source parsing", "source pose", "target", "target parsing", "target pose")
GAP = 4  # pixels between cells and around the grid
HEADER = 16  # height of the column-title strip
_SHEET_BG = (255, 255, 255)
_MISSING_CELL = (64, 64, 64)


def sheet_shape(n_pairs: int, cell: tuple[int, int]) -> tuple[int, int]:
    """``(height, width)`` of a sheet of ``n_pairs`` rows of ``cell = (h, w)`` cells."""
    h, w = cell
    return HEADER + n_pairs * h + (n_pairs + 1) * GAP, len(COLUMNS) * w + (len(COLUMNS) + 1) * GAP


def _fit(image: np.ndarray, cell: tuple[int, int], nearest: bool) -> np.ndarray:
    if image.shape[:2] == cell:
        return image
    mode = Image.NEAREST if nearest else Image.BILINEAR
    return np.asarray(Image.fromarray(image).resize((cell[1], cell[0]), mode))


def _cells(paths: SplitPaths, files: dict[str, str], keypoints: dict[str, np.ndarray], name: str,
           cell: tuple[int, int] | None) -> list[np.ndarray]:
    """The three cells (image, parsing, skeleton) of one picture, at ``cell`` size (None: native)."""
    stem = image_stem(name)
    if stem not in files:
        raise SPGNetError(f"{paths.image_dir / name}: image file not found")
    image = load_image(paths.image_dir / files[stem])
    h, w = image.shape[:2]
    size = cell or (h, w)
    parsing_path = paths.parsing(stem)
    if parsing_path.is_file():
        parsing = _fit(colorize(load_label_png(parsing_path)), size, nearest=True)
    else:
        parsing = np.full((*size, 3), _MISSING_CELL, np.uint8)
    fitted = _fit(image, size, nearest=False)
    kp = keypoints.get(stem)
    if kp is not None:
        kp = np.where(kp < 0, -1.0, (kp + 0.5) * np.array([size[1] / w, size[0] / h]) - 0.5)
        skeleton = draw_skeleton(fitted, kp)
    else:
        skeleton = fitted // 2
    return [fitted, parsing, skeleton]


def make_contact_sheet(root: str | os.PathLike, split: str = "test", n_pairs: int = 6,
                       out_path: str | os.PathLike = "sheet.png",
                       dataset_config: DatasetConfig | None = None, stride: int = 1) -> np.ndarray:
    """Write a contact sheet of ``n_pairs`` pairs of ``split`` to ``out_path``: the first
    ones, or every ``stride``-th one (pairs of one person tend to follow each other).

    ``dataset_config`` supplies the path patterns (its ``root`` is replaced by ``root``).
    Cells take the size of the first source image; other images are resized to it.
    Returns the sheet as ``(H, W, 3)`` uint8 (see :func:`sheet_shape`).
    """
    cfg = dataclasses.replace(dataset_config or DatasetConfig(), root=str(root))
    if not Path(root).is_dir():
        raise SPGNetError(f"{root}: dataset folder not found")
    if n_pairs < 1 or stride < 1:
        raise SPGNetError(f"pairs and stride must be at least 1, got {n_pairs} and {stride}")
    paths = SplitPaths.of(cfg, split)
    rows, problems = parse_pairs_rows(paths.pairs_file)
    if not rows:
        detail = f" (line {problems[0][0]}: {problems[0][1]})" if problems else ""
        raise SPGNetError(f"{paths.pairs_file}: no usable pairs{detail}")
    keypoints = {image_stem(name): kp for name, kp in read_annotation_csv(paths.annotation_file).items()}
    files = index_image_dir(paths.image_dir)

    grid_rows, cell = [], None
    for _, a, b in rows[::stride][:n_pairs]:
        src = _cells(paths, files, keypoints, a, cell)
        cell = cell or src[0].shape[:2]
        grid_rows.append(src + _cells(paths, files, keypoints, b, cell))

    h, w = cell
    sheet = Image.new("RGB", sheet_shape(len(grid_rows), cell)[::-1], _SHEET_BG)
    draw = ImageDraw.Draw(sheet)
    for j, title in enumerate(COLUMNS):
        draw.text((GAP + j * (w + GAP) + 2, 2), title, fill=(0, 0, 0))
    for i, cells in enumerate(grid_rows):
        for j, c in enumerate(cells):
            sheet.paste(Image.fromarray(c), (GAP + j * (w + GAP), HEADER + GAP + i * (h + GAP)))
    array = np.asarray(sheet)
    save_image(array, out_path)
    return array
