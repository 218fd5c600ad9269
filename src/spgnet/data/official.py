"""Import the official SPGNet release layout (github cszy98/SPGNet) into ours (docs/design.md §4).

The official data folders (DeepFashion ``datasets/deepfashion``, Market
``datasets/market1501``) hold:

* ``label/split.json``: ``{"train": [[from_id, to_id], ...], "test": [...]}`` (ids
  without extension; other keys are ignored);
* ``label/pose_label.pkl``: a Python-2 pickle of ``{id: 18x2 (x, y)}`` OpenPose-18
  keypoints, ``-1`` for missing joints;
* ``seg/<id>.png`` (or ``.bmp``): CIHP parsing labels;
* images: ``img/img/<id>.jpg`` (DeepFashion) or ``img/train``, ``img/test`` (Market).

* per-pair target parsings ``<from>___<to>.png``: DeepFashion ``pred_seg/`` holds the
  official stage-1 prediction of each test pair's target parsing (what the official test
  path feeds the generator); Market's release keeps *every* parsing per pair in ``seg/``
  (``seg/<a>___<a>.png`` is image a's own parsing, ``seg/<a>___<b>.png`` the target
  parsing of pair (a, b)), as 256×256 maps whose columns 64..191 hold the person at twice
  the 128×64 image size: the official Market loader crops those columns and resizes them
  nearest (index ``floor(i · in / out)``, OpenCV's INTER_NEAREST) to 128×64, and so do we.

We write ``OUT/{train,test}/<id>.<ext>``, ``annotation-{split}.csv``,
``pairs-{split}.csv``, ``parsing/<id>.png`` and ``parsing-pred/<from>___<to>.png`` (the
per-pair target parsings, read by ``generate --target-parsing provided``), optionally
resized to ``size`` (images bilinear, parsing nearest, keypoints
``x' = (x + 0.5) * s - 0.5``). Pairs whose image or keypoints are missing are dropped and
reported; missing parsing maps are reported (``spgnet check OUT`` lists them afterwards),
so are pairs without a per-pair target parsing.

**Pickle is only safe on trusted files.** ``pose_label.pkl`` is read with a
restricted unpickler that can build nothing but builtin containers, strings and
numbers and numpy arrays/scalars; any other object in the file is refused. Still,
only point this at files you obtained from a source you trust.
"""

from __future__ import annotations

import importlib
import os
import pickle
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from spgnet import SPGNetError
from spgnet.data.dataset import resize_labels
from spgnet.data.layout import IMAGE_SUFFIXES, PAIR_SEPARATOR, index_image_dir, pair_name, write_pairs_csv
from spgnet.utils.io import load_label_png, read_json, save_image
from spgnet.pose import transform_keypoints, write_annotation_csv

NUM_JOINTS = 18


# --------------------------------------------------------------------------- restricted pickle


def _numpy_attr(name: str):
    for module in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
    raise pickle.UnpicklingError(f"numpy has no multiarray.{name}")


_BUILTINS = {"dict", "list", "tuple", "set", "frozenset", "bytearray", "int", "float", "complex", "bool", "str", "bytes"}


class RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler that only reconstructs numpy arrays/scalars and builtin containers.

    Python-2 pickles name ``__builtin__`` and ``numpy.core.multiarray``; Python-3
    protocol-2 pickles of ``bytes`` call ``_codecs.encode``. Everything else (any class
    or function that could run code) raises :class:`pickle.UnpicklingError`.
    """

    def find_class(self, module: str, name: str):
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name in ("_reconstruct", "scalar"):
            return _numpy_attr(name)
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        if module == "_codecs" and name == "encode":
            import codecs

            return codecs.encode
        if module == "collections" and name == "OrderedDict":
            from collections import OrderedDict

            return OrderedDict
        if module in ("builtins", "__builtin__") and name in _BUILTINS:
            return getattr(__import__("builtins"), name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} (only numpy arrays and builtin containers are allowed)")


def load_pose_labels(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read the official ``pose_label.pkl`` -> ``{id: (18, 2) float32 (x, y)}``, -1 missing.

    Uses :class:`RestrictedUnpickler` (latin-1 strings, as Python-2 pickles need).
    Only use it on files you trust.
    """
    try:
        with open(path, "rb") as f:
            data = RestrictedUnpickler(f, encoding="latin1").load()
    except FileNotFoundError:
        raise SPGNetError(f"{path}: pose label file not found") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise SPGNetError(f"{path}: cannot read pose labels ({exc})") from None
    if not isinstance(data, dict):
        raise SPGNetError(f"{path}: expected a dict {{id: 18x2 keypoints}}, got {type(data).__name__}")
    out: dict[str, np.ndarray] = {}
    for key, value in data.items():
        sid = key.decode("latin1") if isinstance(key, bytes) else str(key)
        try:
            kp = np.asarray(value, dtype=np.float32)
        except (TypeError, ValueError):
            raise SPGNetError(f"{path}: keypoints of '{sid}' are not numeric") from None
        if kp.shape != (NUM_JOINTS, 2):
            raise SPGNetError(f"{path}: keypoints of '{sid}' have shape {kp.shape}, expected ({NUM_JOINTS}, 2)")
        kp = np.where((kp < 0).any(-1, keepdims=True) | ~np.isfinite(kp).all(-1, keepdims=True), np.float32(-1), kp)
        out[sid] = kp
    return out


def read_official_split(path: str | os.PathLike) -> dict[str, list[tuple[str, str]]]:
    """Read ``label/split.json`` -> ``{"train": [(from_id, to_id), ...], "test": [...]}``."""
    data = read_json(path, "split file")
    if not isinstance(data, dict):
        raise SPGNetError(f"{path}: expected a mapping with 'train' and 'test' pair lists")
    out: dict[str, list[tuple[str, str]]] = {}
    for split in ("train", "test"):
        if split not in data:
            continue
        rows = data[split]
        if not isinstance(rows, list):
            raise SPGNetError(f"{path}: '{split}' must be a list of [from_id, to_id] pairs")
        pairs = []
        for i, row in enumerate(rows):
            if not (isinstance(row, (list, tuple)) and len(row) == 2 and all(isinstance(x, str) and x for x in row)):
                raise SPGNetError(f"{path}: {split}[{i}] is {row!r}, expected [from_id, to_id]")
            pairs.append((row[0], row[1]))
        out[split] = pairs
    if not out:
        raise SPGNetError(f"{path}: no 'train' or 'test' key (found: {', '.join(map(str, data)) or 'nothing'})")
    return out


# --------------------------------------------------------------------------- the import


@dataclass
class ImportResult:
    out: Path
    pairs: dict[str, int] = field(default_factory=dict)  # pairs written per split
    images: int = 0
    parsing: int = 0
    dropped: dict[str, list[str]] = field(default_factory=dict)  # split -> reasons for dropped pairs
    missing_parsing: list[str] = field(default_factory=list)  # ids without a seg file
    pair_parsing: int = 0  # per-pair target parsings written to parsing-pred/
    missing_pair_parsing: dict[str, int] = field(default_factory=dict)  # split -> pairs without one

    def summary(self) -> str:
        lines = [f"imported into {self.out}: " + ", ".join(f"{s} {n} pairs" for s, n in self.pairs.items())
                 + f"; {self.images} images, {self.parsing} parsing maps"]
        for split, reasons in self.dropped.items():
            if reasons:
                lines.append(f"dropped {len(reasons)} {split} pair(s), e.g. {reasons[0]}")
        if self.missing_parsing:
            lines.append(f"{len(self.missing_parsing)} image(s) without parsing in seg/, e.g. '{self.missing_parsing[0]}'")
        lines.append(f"{self.pair_parsing} per-pair target parsing(s) in parsing-pred/ "
                     "(for generate --target-parsing provided)")
        for split, n in self.missing_pair_parsing.items():
            if n:
                lines.append(f"{n} {split} pair(s) without a per-pair target parsing (pred_seg/ or seg/<a>___<b>.png)")
        return "\n".join(lines)


def _flat_name(sid: str) -> str:
    """Official ids may contain folders; our layout is flat."""
    return sid.replace("/", "_").replace("\\", "_")


class _ImageFinder:
    """Locate ``<id>.<ext>`` among the official image folders (indexed once)."""

    def __init__(self, src: Path, split: str):
        self.dirs = [d for d in (src / "img" / "img", src / "img" / split, src / "img", src / "images", src) if d.is_dir()]
        self.index = [index_image_dir(d) for d in self.dirs]

    def find(self, sid: str) -> Path | None:
        for d, idx in zip(self.dirs, self.index):
            if sid in idx:
                return d / idx[sid]
            if "/" in sid:
                for ext in IMAGE_SUFFIXES:
                    if (d / f"{sid}{ext}").is_file():
                        return d / f"{sid}{ext}"
        return None


def _find_seg(src: Path, sid: str) -> Path | None:
    """Image ``sid``'s parsing: ``seg/<sid>.png|bmp`` (DeepFashion) or Market's ``seg/<sid>___<sid>.png``."""
    for name in (f"{sid}.png", f"{sid}.bmp", f"{sid}___{sid}.png"):
        p = src / "seg" / name
        if p.is_file():
            return p
    return None


def _find_pair_seg(src: Path, a: str, b: str) -> Path | None:
    """Pair (a, b)'s target parsing: ``pred_seg/<a>___<b>.png`` (DeepFashion's stage-1
    predictions) or ``seg/<a>___<b>.png`` (Market)."""
    for folder in ("pred_seg", "seg"):
        p = src / folder / f"{a}{PAIR_SEPARATOR}{b}.png"
        if p.is_file():
            return p
    return None


def _nearest_floor(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest resize with source index ``floor(i · in / out)`` (OpenCV's INTER_NEAREST)."""
    (h, w), (oh, ow) = labels.shape, size
    rows = np.minimum((np.arange(oh) * h) // oh, h - 1)
    cols = np.minimum((np.arange(ow) * w) // ow, w - 1)
    return labels[rows[:, None], cols[None, :]]


def _labels_for_image(seg: Path, image_hw: tuple[int, int]) -> np.ndarray:
    """The labels of ``seg`` in the image's pixels: as they are when the sizes agree; a
    Market per-pair map (2h × 4w, person in the middle half of the columns) cropped to
    columns w..3w and resized nearest as the official Market loader does."""
    labels = load_label_png(seg)
    h, w = image_hw
    if labels.shape == (h, w):
        return labels
    if labels.shape == (2 * h, 4 * w):
        return _nearest_floor(labels[:, w:3 * w], (h, w))
    raise SPGNetError(f"{seg}: parsing is {labels.shape[0]}x{labels.shape[1]}, its image is {h}x{w} "
                      f"(expected {h}x{w}, or Market's {2 * h}x{4 * w} per-pair map)")


def _image_hw(path: Path) -> tuple[int, int]:
    try:
        with Image.open(path) as im:
            return im.size[1], im.size[0]
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise SPGNetError(f"{path}: cannot read image ({exc})") from None


def _locate_pairs(pairs, finder: _ImageFinder, poses: dict, pose_file: Path):
    """-> (pairs whose images and keypoints exist, reasons for the others, {id: image path})."""
    located: dict[str, Path | None] = {}
    kept, dropped = [], []

    def problem(sid: str) -> str | None:
        if sid not in located:
            located[sid] = finder.find(sid)
        if located[sid] is None:
            return f"'{sid}': image not found in {', '.join(str(d) for d in finder.dirs) or 'any image folder'}"
        if sid not in poses:
            return f"'{sid}': no keypoints in {pose_file}"
        return None

    for a, b in pairs:
        reason = problem(a) or problem(b)
        if reason:
            dropped.append(reason)
        else:
            kept.append((a, b))
    return kept, dropped, located


def _out_suffix(path: Path, size) -> str:
    """Keep the file type; a resized image that is neither JPEG nor PNG is written as PNG."""
    suffix = path.suffix.lower()
    return suffix if size is None or suffix in (".jpg", ".jpeg", ".png") else ".png"


def _convert_image(src: Path, dst: Path, kp: np.ndarray, size: tuple[int, int] | None, link: bool) -> np.ndarray:
    """Copy / link / resize one image; return its keypoints in the written image's pixels."""
    try:
        if size is None:
            if link:
                dst.unlink(missing_ok=True)
                dst.symlink_to(src.resolve())
            else:
                shutil.copyfile(src, dst)
            return kp
        with Image.open(src) as im:
            im = im.convert("RGB")
            w, h = im.size
            if (h, w) != tuple(size):
                im = im.resize((size[1], size[0]), Image.BILINEAR)  # PIL's bilinear is antialiased
            save_image(np.asarray(im), dst)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise SPGNetError(f"{src}: cannot convert image ({exc})") from None
    return np.asarray(transform_keypoints(kp, (size[1] / w, size[0] / h), (0.0, 0.0)), dtype=np.float32)


def _convert_parsing(src: Path, dst: Path, image: Path, size: tuple[int, int] | None) -> None:
    """Write ``src``'s labels in the pixels of ``image`` (see :func:`_labels_for_image`),
    resized to ``size`` when given."""
    labels = _labels_for_image(src, _image_hw(image))
    save_image(resize_labels(labels, size) if size is not None else labels, dst)


def import_official(
    src: str | os.PathLike,
    out: str | os.PathLike,
    size: tuple[int, int] | None = None,
    link: bool = False,
    force: bool = False,
    workers: int = 4,
) -> ImportResult:
    """Convert an official-layout folder ``src`` into the docs/design.md §4 layout under ``out``.

    ``size`` (H, W) resizes everything; otherwise images are copied byte for byte
    (or symlinked with ``link``). Refuses to write into a folder that already has
    pairs files unless ``force``.
    """
    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise SPGNetError(f"{src}: official data folder not found")
    pose_file = src / "label" / "pose_label.pkl"
    splits = read_official_split(src / "label" / "split.json")
    poses = load_pose_labels(pose_file)
    if not force and any((out / f"pairs-{s}.csv").exists() for s in splits):
        raise SPGNetError(f"{out}: already holds a dataset (pairs-*.csv); pass --force to overwrite")
    (out / "parsing").mkdir(parents=True, exist_ok=True)
    (out / "parsing-pred").mkdir(parents=True, exist_ok=True)
    result = ImportResult(out=out)
    parsing_done: set[str] = set()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for split, pairs in splits.items():
            kept, result.dropped[split], located = _locate_pairs(pairs, _ImageFinder(src, split), poses, pose_file)
            used = sorted({sid for pair in kept for sid in pair})
            names = {sid: _flat_name(sid) + _out_suffix(located[sid], size) for sid in used}
            (out / split).mkdir(parents=True, exist_ok=True)
            keypoints = pool.map(
                lambda sid: _convert_image(located[sid], out / split / names[sid], poses[sid], size, link), used
            )
            write_annotation_csv(out / f"annotation-{split}.csv", {names[sid]: kp for sid, kp in zip(used, keypoints)})
            write_pairs_csv(out / f"pairs-{split}.csv", [(names[a], names[b]) for a, b in kept])
            result.pairs[split] = len(kept)
            result.images += len(used)

            segs = []
            for sid in used:
                if sid not in parsing_done:
                    parsing_done.add(sid)
                    seg = _find_seg(src, sid)
                    if seg is None:
                        result.missing_parsing.append(sid)
                    else:
                        segs.append((seg, out / "parsing" / f"{_flat_name(sid)}.png", located[sid]))
            list(pool.map(lambda job: _convert_parsing(*job, size), segs))
            result.parsing += len(segs)

            pair_segs = []
            for a, b in kept:
                seg = _find_pair_seg(src, a, b)
                if seg is not None:
                    pair_segs.append((seg, out / "parsing-pred" / f"{pair_name(names[a], names[b])}.png", located[b]))
            list(pool.map(lambda job: _convert_parsing(*job, size), pair_segs))
            result.pair_parsing += len(pair_segs)
            result.missing_pair_parsing[split] = len(kept) - len(pair_segs)
    return result


__all__ = ["RestrictedUnpickler", "load_pose_labels", "read_official_split", "import_official", "ImportResult"]
