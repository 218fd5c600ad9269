"""The on-disk layout of a dataset (docs/design.md §4): names, paths, the pairs CSV.

Shared by the dataset, the validator and the importers; no torch here.

    ROOT/{split}/<name>.jpg|png     image folder of a split (``DatasetConfig.image_dir``)
    ROOT/annotation-{split}.csv     PATN keypoints (read by :mod:`spgnet.pose`)
    ROOT/pairs-{split}.csv          "from,to" image names, with or without extension
    ROOT/parsing/<stem>.png         CIHP label maps
    ROOT/flow/<from-stem>___<to-stem>.corr
    ROOT/parsing-pred/<from-stem>___<to-stem>.png   a provided target parsing per pair (optional)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from spgnet import SPGNetError
from spgnet.config import DatasetConfig
from spgnet.utils.io import atomic_write_text
from spgnet.utils.parse import raise_first_problem

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
PAIR_SEPARATOR = "___"
SPLITS = ("train", "test")


def image_stem(name: str) -> str:
    """``'a.jpg'`` -> ``'a'``; a name without an image suffix is its own stem."""
    root, ext = os.path.splitext(name)
    return root if ext.lower() in IMAGE_SUFFIXES else name


def pair_name(from_name: str, to_name: str) -> str:
    return f"{image_stem(from_name)}{PAIR_SEPARATOR}{image_stem(to_name)}"


@dataclass(frozen=True)
class SplitPaths:
    """The files of one split (docs/design.md §4), resolved from a :class:`DatasetConfig`."""

    image_dir: Path
    annotation_file: Path
    pairs_file: Path
    parsing_dir: Path
    flow_dir: Path
    pred_parsing_dir: Path

    @classmethod
    def of(cls, cfg: DatasetConfig, split: str) -> SplitPaths:
        keys = ("image_dir", "annotation_file", "pairs_file", "parsing_dir", "flow_dir", "pred_parsing_dir")
        return cls(*(cfg.path(key, split) for key in keys))

    def parsing(self, stem: str) -> Path:
        return self.parsing_dir / f"{stem}.png"

    def flow(self, from_name: str, to_name: str) -> Path:
        return self.flow_dir / f"{pair_name(from_name, to_name)}.corr"

    def pred_parsing(self, from_name: str, to_name: str) -> Path:
        return self.pred_parsing_dir / f"{pair_name(from_name, to_name)}.png"


def index_image_dir(image_dir: Path) -> dict[str, str]:
    """``{stem: file name}`` of the images in a folder (one ``scandir``, no decoding).

    When two files share a stem (``a.jpg`` and ``a.png``) the first in sorted order wins.
    """
    try:
        names = sorted(e.name for e in os.scandir(image_dir) if e.is_file())
    except FileNotFoundError:
        return {}
    index: dict[str, str] = {}
    for name in names:
        if os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES:
            index.setdefault(image_stem(name), name)
    return index


def parse_pairs_rows(path: str | os.PathLike) -> tuple[list[tuple[int, str, str]], list[tuple[int, str]]]:
    """Read a pairs CSV -> ``([(line, from, to), ...], [(line, problem), ...])``.

    The header names the columns (``from,to``; extra columns such as a pandas index
    are ignored); without a header every row must have exactly two fields.
    Raises SPGNetError only when the file cannot be read.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SPGNetError(f"{path}: pairs file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SPGNetError(f"{path}: cannot read pairs file ({exc})") from None
    rows: list[tuple[int, str, str]] = []
    problems: list[tuple[int, str]] = []
    columns = None
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        if columns is None and lineno == 1 and "from" in fields and "to" in fields:
            columns = (fields.index("from"), fields.index("to"), len(fields))
            continue
        if columns is not None:
            i_from, i_to, n = columns
            if len(fields) != n:
                problems.append((lineno, f"expected {n} comma-separated fields like the header, got {len(fields)}"))
                continue
            a, b = fields[i_from], fields[i_to]
        else:
            if len(fields) != 2:
                problems.append((lineno, f"expected 2 comma-separated names 'from,to', got {len(fields)} field(s)"))
                continue
            a, b = fields
        if not a or not b:
            problems.append((lineno, "empty image name"))
            continue
        rows.append((lineno, a, b))
    return rows, problems


def read_pairs_csv(path: str | os.PathLike) -> list[tuple[int, str, str]]:
    """Like :func:`parse_pairs_rows` but raise SPGNetError (file and line) on the first bad row."""
    rows, problems = parse_pairs_rows(path)
    raise_first_problem(path, problems)
    return rows


def write_pairs_csv(path: str | os.PathLike, pairs: list[tuple[str, str]]) -> None:
    """Write a ``from,to`` pairs CSV atomically."""
    atomic_write_text(path, "from,to\n" + "".join(f"{a},{b}\n" for a, b in pairs))


__all__ = [
    "IMAGE_SUFFIXES", "PAIR_SEPARATOR", "SPLITS", "SplitPaths", "image_stem", "pair_name", "index_image_dir",
    "parse_pairs_rows", "read_pairs_csv", "write_pairs_csv",
]
