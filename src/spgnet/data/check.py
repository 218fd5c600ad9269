"""Dataset validator: every problem of a docs/design.md §4 dataset at once, with file and line.

Bad data is normal in pose transfer (dead pair references, missing keypoints, images
of the wrong size, truncated files), so :func:`check_dataset` never stops at the
first problem. It reports, per split:

* missing files (pairs / annotation file, image folder), malformed pair and
  annotation rows (file + line);
* pairs naming an image that has no annotation row (pairs file + line), annotated
  images whose file is missing (annotation file + line), images without annotation;
* undecodable images (full decode) and images of the wrong size (vs
  ``cfg.image_size`` when set, or too small for ``cfg.crop``; header only);
* keypoints outside their image (annotation file + line + joints);
* parsing missing, undecodable, of another size than its image, or with labels >= 20;
* flow files (``<from>___<to>.corr``, when the flow folder exists) truncated or of
  another size than the target image (header + file size, no full read), and missing
  ones when ``cfg.use_flow``.

Files are inspected in a thread pool (PIL releases the GIL while decoding).

:func:`preflight` is the fast pass ``train``, ``generate`` and ``evaluate`` run before
their first step: every file the pairs of one split need exists and its header reads
(images, parsing maps, ``.corr`` flow when used, provided target parsings when used),
without decoding any; the first problem is raised as one line (the full check, with the
decode, stays in ``spgnet check``).
"""

from __future__ import annotations

import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from spgnet import SPGNetError
from spgnet.config import DatasetConfig
from spgnet.data.layout import SplitPaths, image_stem, index_image_dir, parse_pairs_rows
from spgnet.parsing import NUM_CLASSES

# Problem kinds, in the order a report lists them.
KINDS: tuple[str, ...] = (
    "missing file",
    "malformed pair row",
    "malformed annotation row",
    "unknown image in pair",
    "missing image",
    "undecodable image",
    "wrong image size",
    "image without annotation",
    "keypoint outside image",
    "missing parsing",
    "undecodable parsing",
    "parsing wrong size",
    "parsing label out of range",
    "missing flow",
    "truncated flow",
    "flow wrong size",
)


@dataclass(frozen=True)
class Problem:
    kind: str  # one of KINDS
    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.message}"


@dataclass
class SplitStats:
    images: int = 0  # image files in the split's folder
    annotations: int = 0  # well-formed annotation rows
    pairs: int = 0  # well-formed pair rows
    flows: int = 0  # .corr files found for the pairs


@dataclass
class Report:
    """The result of :func:`check_dataset`: every problem plus a summary per split."""

    root: str
    problems: list[Problem] = field(default_factory=list)
    splits: dict[str, SplitStats] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, kind: str, file, line: int | None, message: str) -> None:
        assert kind in KINDS, kind
        self.problems.append(Problem(kind, str(file), line, message))

    def counts(self) -> dict[str, int]:
        """Problems per kind, in KINDS order (kinds without problems left out)."""
        c = Counter(p.kind for p in self.problems)
        return {k: c[k] for k in KINDS if c[k]}

    def by_kind(self, kind: str) -> list[Problem]:
        return [p for p in self.problems if p.kind == kind]

    def summary(self) -> str:
        parts = [
            f"{split}: {s.images} images, {s.annotations} annotations, {s.pairs} pairs, {s.flows} flow files"
            for split, s in self.splits.items()
        ]
        verdict = "no problems found" if self.ok else f"{len(self.problems)} problem(s) of {len(self.counts())} kind(s)"
        return f"dataset {self.root}: " + "; ".join(parts) + f" -- {verdict}"

    def format(self, max_list: int | None = 20) -> str:
        """Problems grouped by kind (at most ``max_list`` listed per kind; counts are exact)."""
        lines = []
        for kind, n in self.counts().items():
            lines.append(f"{kind} ({n}):")
            items = sorted(self.by_kind(kind), key=lambda p: (p.file, p.line or 0))
            shown = items if max_list is None or max_list < 0 else items[:max_list]
            lines += [f"  {p}" for p in shown]
            if len(shown) < n:
                lines.append(f"  ... and {n - len(shown)} more")
        if self.problems:
            lines.append("problems per kind:")
            width = max(len(k) for k in self.counts())
            lines += [f"  {k:<{width}}  {n}" for k, n in self.counts().items()]
            lines.append(f"  {'total':<{width}}  {len(self.problems)}")
        return "\n".join(lines)


# --------------------------------------------------------------------------- file inspectors


def _inspect_image(path: Path, decode: bool) -> tuple[tuple[int, int] | None, str | None]:
    """-> (disk (H, W) or None, decode error or None)."""
    size = None
    try:
        with Image.open(path) as im:
            size = (im.height, im.width)
            if decode:
                im.load()
        return size, None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        return size, str(exc) or type(exc).__name__


def _inspect_parsing(path: Path) -> tuple[tuple[int, int] | None, str | None, list[int], int]:
    """-> (label (H, W) or None, decode error or None, labels >= 20 found, their pixel count)."""
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode not in ("L", "P", "I", "I;16"):
                return None, f"not a single-channel label PNG (mode {im.mode})", [], 0
            labels = np.asarray(im)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        return None, str(exc) or type(exc).__name__, [], 0
    bad = labels >= NUM_CLASSES
    n_bad = int(bad.sum())
    values = np.unique(labels[bad]).tolist() if n_bad else []
    return labels.shape[:2], None, values, n_bad


def _inspect_corr(path: Path) -> tuple[tuple[int, int] | None, str | None]:
    """Header + file size of a .corr file -> ((H, W) or None, truncation problem or None)."""
    nbytes = path.stat().st_size
    with open(path, "rb") as f:
        header = f.read(8)
    if len(header) < 8:
        return None, f"truncated .corr file ({nbytes} bytes, the header alone needs 8)"
    w, h = (int(v) for v in np.frombuffer(header, dtype="<i4"))
    if w <= 0 or h <= 0 or w > 1 << 15 or h > 1 << 15:
        return None, f"bad .corr header (width={w}, height={h})"
    expected = 8 + h * w * 9
    if nbytes != expected:
        return (h, w), f"{nbytes} bytes, expected {expected} for {h}x{w} (HxW; truncated or not a .corr file)"
    return (h, w), None


def _annotation_lines(path: Path) -> dict[str, int]:
    """``{stem: first line number}`` of the rows of a PATN annotation CSV."""
    lines: dict[str, int] = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            name = line.split(":", 1)[0].strip()
            if name:
                lines.setdefault(image_stem(name), lineno)
    return lines


def _fmt_joints(idx: np.ndarray, kp: np.ndarray) -> str:
    return ", ".join(f"#{int(j)} at ({kp[j, 0]:g}, {kp[j, 1]:g})" for j in idx)


# --------------------------------------------------------------------------- the check


@dataclass
class _Split:
    """What one split's index files say, plus what the image check learnt."""

    paths: SplitPaths
    files: dict[str, str]  # stem -> image file name
    annotations: dict[str, np.ndarray] | None  # stem -> (18, 2); None when the file is missing
    ann_lines: dict[str, int]  # stem -> line in the annotation file
    pairs: list[tuple[int, str, str]]
    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)  # stem -> disk (H, W)

    @property
    def used(self) -> list[str]:
        """Annotated stems with an image file: the images the dataset can load."""
        return [s for s in self.annotations or {} if s in self.files]


def _read_split(report: Report, cfg: DatasetConfig, split: str) -> _Split:
    """Index a split's folder, annotation and pairs files, reporting what is missing or malformed."""
    from spgnet.pose import parse_annotation_rows

    paths = SplitPaths.of(cfg, split)
    files: dict[str, str] = {}
    if paths.image_dir.is_dir():
        files = index_image_dir(paths.image_dir)
    else:
        report.add("missing file", paths.image_dir, None, f"image folder of split '{split}' not found")
    annotations, ann_lines = None, {}
    if paths.annotation_file.is_file():
        rows, problems = parse_annotation_rows(paths.annotation_file)
        for line, message in problems:
            report.add("malformed annotation row", paths.annotation_file, line, message)
        annotations = {image_stem(n): np.asarray(kp, dtype=np.float32) for n, kp in rows.items()}
        ann_lines = _annotation_lines(paths.annotation_file)
    else:
        report.add("missing file", paths.annotation_file, None, f"annotation file of split '{split}' not found")
    pairs: list[tuple[int, str, str]] = []
    if paths.pairs_file.is_file():
        pairs, problems = parse_pairs_rows(paths.pairs_file)
        for line, message in problems:
            report.add("malformed pair row", paths.pairs_file, line, message)
    else:
        report.add("missing file", paths.pairs_file, None, f"pairs file of split '{split}' not found")
    report.splits[split] = SplitStats(images=len(files), annotations=len(annotations or {}), pairs=len(pairs))
    return _Split(paths, files, annotations, ann_lines, pairs)


def _check_references(report: Report, sp: _Split) -> list[tuple[str, str]]:
    """Pairs naming unknown images, annotated images without file, images without annotation.

    Returns the pairs whose two images are annotated."""
    if sp.annotations is None:
        return []
    paths, ann_name = sp.paths, sp.paths.annotation_file.name
    good = []
    for line, a, b in sp.pairs:
        unknown = [n for n in (a, b) if image_stem(n) not in sp.annotations]
        for n in unknown:
            extra = "" if image_stem(n) in sp.files else f" and no image file in {paths.image_dir}"
            report.add("unknown image in pair", paths.pairs_file, line, f"'{n}' has no row in {ann_name}{extra}")
        if not unknown:
            good.append((a, b))
    if paths.image_dir.is_dir():
        for stem in sp.annotations:
            if stem not in sp.files:
                report.add("missing image", paths.annotation_file, sp.ann_lines.get(stem),
                           f"'{stem}' is annotated but has no image file in {paths.image_dir}")
    for stem, fname in sp.files.items():
        if stem not in sp.annotations:
            report.add("image without annotation", paths.image_dir / fname, None, f"no row in {ann_name}")
    return good


def _check_images(report: Report, sp: _Split, pool, decode: bool, expected_hw, crop) -> None:
    """Decode (or read the header of) every usable image; record the sizes in ``sp.sizes``.

    The size must equal ``data.image_size`` when set and hold ``data.crop`` when set."""
    stems = sp.used
    image_paths = [sp.paths.image_dir / sp.files[s] for s in stems]
    for stem, path, (size, error) in zip(stems, image_paths, pool.map(lambda p: _inspect_image(p, decode), image_paths)):
        if size is not None:
            sp.sizes[stem] = size
        if error is not None:
            report.add("undecodable image", path, None, f"cannot decode image ({error})")
        elif expected_hw is not None and size != expected_hw:
            report.add("wrong image size", path, None,
                       f"image is {size[0]}x{size[1]} (HxW), data.image_size is {expected_hw[0]}x{expected_hw[1]}")
        elif crop is not None and (crop[0] + crop[2] > size[0] or crop[1] + crop[3] > size[1]):
            report.add("wrong image size", path, None, f"image is {size[0]}x{size[1]} (HxW), too small for data.crop {list(crop)}")


def _check_keypoints(report: Report, sp: _Split) -> None:
    """Present keypoints beyond the image's pixel area, vectorised over all annotations."""
    stems = [s for s in sp.annotations or {} if s in sp.sizes]
    if not stems:
        return
    kp = np.stack([sp.annotations[s] for s in stems])  # (N, 18, 2)
    hw = np.array([sp.sizes[s] for s in stems], dtype=np.float32)  # (N, 2)
    present = (kp >= 0).all(-1)  # missing = any negative coordinate
    outside = present & ((kp[..., 0] > hw[:, None, 1] - 0.5) | (kp[..., 1] > hw[:, None, 0] - 0.5))
    for i in np.flatnonzero(outside.any(1)):
        s = stems[i]
        report.add("keypoint outside image", sp.paths.annotation_file, sp.ann_lines.get(s),
                   f"'{s}' ({int(hw[i, 0])}x{int(hw[i, 1])}): joint "
                   f"{_fmt_joints(np.flatnonzero(outside[i]), kp[i])} outside the image")


def _check_parsing(report: Report, sp: _Split, pool, seen: set[Path]) -> None:
    """Every usable image needs ``parsing/<stem>.png`` of its size with labels < 20.

    ``seen`` holds the parsing files (and a missing folder) already reported, since
    splits may share the parsing folder."""
    folder = sp.paths.parsing_dir
    if not folder.is_dir():
        if folder not in seen:
            seen.add(folder)
            report.add("missing parsing", folder, None, "parsing folder not found (every image needs <stem>.png)")
        return
    present = {e.name for e in os.scandir(folder)}
    todo = []
    for stem in sp.used:
        p = sp.paths.parsing(stem)
        if p in seen:
            continue
        seen.add(p)
        if p.name in present:
            todo.append((stem, p))
        else:
            report.add("missing parsing", p, None, f"parsing of image '{sp.files[stem]}' not found")
    for (stem, p), (shape, error, values, n_bad) in zip(todo, pool.map(lambda t: _inspect_parsing(t[1]), todo)):
        if error is not None:
            report.add("undecodable parsing", p, None, f"cannot decode parsing ({error})")
            continue
        if stem in sp.sizes and shape != sp.sizes[stem]:
            h, w = sp.sizes[stem]
            report.add("parsing wrong size", p, None, f"parsing is {shape[0]}x{shape[1]}, image '{sp.files[stem]}' is {h}x{w}")
        if n_bad:
            report.add("parsing label out of range", p, None,
                       f"{n_bad} pixel(s) with label(s) {values} (CIHP labels are 0..{NUM_CLASSES - 1})")


def _check_flow(report: Report, sp: _Split, pairs: list[tuple[str, str]], pool, use_flow: bool) -> int:
    """Header and size of each pair's .corr file (when the flow folder exists); returns how many exist."""
    folder = sp.paths.flow_dir
    if not folder.is_dir():
        if use_flow:
            report.add("missing flow", folder, None, "flow folder not found (data.use_flow is on)")
        return 0
    present = {e.name for e in os.scandir(folder)}
    todo = []
    for a, b in pairs:
        p = sp.paths.flow(a, b)
        if p.name in present:
            todo.append((b, p))
        elif use_flow:
            report.add("missing flow", p, None, f"no flow file for pair {a} -> {b} (data.use_flow is on)")
    for (b, p), (hw, error) in zip(todo, pool.map(lambda t: _inspect_corr(t[1]), todo)):
        target_hw = sp.sizes.get(image_stem(b))
        if error is not None:
            report.add("truncated flow", p, None, error)
        elif target_hw is not None and hw != target_hw:
            report.add("flow wrong size", p, None,
                       f"flow is {hw[0]}x{hw[1]}, target image '{b}' is {target_hw[0]}x{target_hw[1]}")
    return len(todo)


def check_dataset(
    cfg: DatasetConfig,
    splits: tuple[str, ...] | list[str] = ("train", "test"),
    decode: bool = True,
    workers: int | None = None,
) -> Report:
    """Validate the dataset ``cfg`` describes and return a :class:`Report` of every problem.

    ``decode=False`` skips the full image decode (header-only size checks); parsing
    maps are always decoded because their labels are checked.
    """
    report = Report(root=str(cfg.root))
    expected_hw = tuple(int(v) for v in cfg.image_size) if cfg.image_size else None
    crop = tuple(int(v) for v in cfg.crop) if cfg.crop else None
    seen_parsing: set[Path] = set()
    with ThreadPoolExecutor(max_workers=workers or min(8, (os.cpu_count() or 1) + 2)) as pool:
        for split in splits:
            sp = _read_split(report, cfg, split)
            good_pairs = _check_references(report, sp)
            _check_images(report, sp, pool, decode, expected_hw, crop)
            _check_keypoints(report, sp)
            _check_parsing(report, sp, pool, seen_parsing)
            report.splits[split].flows = _check_flow(report, sp, good_pairs, pool, cfg.use_flow)
    return report


# --------------------------------------------------------------------------- before a run


def _inspect_label_header(path: Path) -> tuple[tuple[int, int] | None, str | None]:
    """Header of a label PNG -> ((H, W) or None, problem or None); nothing decoded."""
    try:
        with Image.open(path) as im:
            if im.mode not in ("L", "P", "I", "I;16"):
                return None, f"not a single-channel label PNG (mode {im.mode})"
            return (im.height, im.width), None
    except FileNotFoundError:
        return None, "not found"
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        return None, f"cannot read its header ({str(exc) or type(exc).__name__})"


def preflight(cfg: DatasetConfig, split: str, *, flow: bool = False, provided_parsing: bool = False,
              limit: int | None = None, workers: int | None = None) -> int:
    """Check, before a run's first step, every file the pairs of ``split`` need (the first
    ``limit`` pairs when given): the index files, each pair's two images (header: it
    opens, its size holds ``data.crop``), their parsing maps (header: a label PNG of the
    image's size), with ``flow`` each pair's ``.corr`` file (header and file size), with
    ``provided_parsing`` each pair's provided target parsing (header). No file is
    decoded: that is ``spgnet check``'s full pass. Raises SPGNetError with the first
    problem in one line (and how many more); returns the number of pairs checked."""
    report = Report(root=str(cfg.root))
    crop = tuple(int(v) for v in cfg.crop) if cfg.crop else None
    sp = _read_split(report, cfg, split)
    pairs: list[tuple[str, str]] = []
    ann_name = sp.paths.annotation_file.name
    for line, a, b in sp.pairs[:limit] if limit else sp.pairs:
        ok = sp.annotations is not None
        for n in (a, b):
            if sp.annotations is not None and image_stem(n) not in sp.annotations:
                report.add("unknown image in pair", sp.paths.pairs_file, line, f"'{n}' has no row in {ann_name}")
                ok = False
            elif image_stem(n) not in sp.files:
                if sp.paths.image_dir.is_dir():
                    report.add("missing image", sp.paths.pairs_file, line,
                               f"'{n}' has no image file in {sp.paths.image_dir}")
                ok = False
        if ok:
            pairs.append((a, b))
    stems = list(dict.fromkeys(image_stem(n) for pair in pairs for n in pair))
    with ThreadPoolExecutor(max_workers=workers or min(8, (os.cpu_count() or 1) + 2)) as pool:
        images = [sp.paths.image_dir / sp.files[s] for s in stems]
        for stem, path, (size, error) in zip(stems, images, pool.map(lambda q: _inspect_image(q, False), images)):
            if error is not None:
                report.add("undecodable image", path, None, f"cannot read image header ({error})")
            elif crop is not None and (crop[0] + crop[2] > size[0] or crop[1] + crop[3] > size[1]):
                report.add("wrong image size", path, None, f"image is {size[0]}x{size[1]} (HxW), too small for "
                                                           f"data.crop {list(crop)}")
            else:
                sp.sizes[stem] = size
        labels = [sp.paths.parsing(s) for s in stems]
        if stems and not sp.paths.parsing_dir.is_dir():
            report.add("missing parsing", sp.paths.parsing_dir, None,
                       "parsing folder not found (every image needs <stem>.png; data.parsing_dir)")
            labels = stems = []
        for stem, path, (size, error) in zip(stems, labels, pool.map(_inspect_label_header, labels)):
            if error == "not found":
                report.add("missing parsing", path, None, f"parsing of image '{sp.files[stem]}' not found")
            elif error is not None:
                report.add("undecodable parsing", path, None, f"parsing map: {error}")
            elif stem in sp.sizes and size != sp.sizes[stem]:
                h, w = sp.sizes[stem]
                report.add("parsing wrong size", path, None, f"parsing is {size[0]}x{size[1]}, image "
                                                             f"'{sp.files[stem]}' is {h}x{w}")
        if flow and pairs and not sp.paths.flow_dir.is_dir():
            report.add("missing flow", sp.paths.flow_dir, None,
                       "flow folder not found (train.flow=file needs <from>___<to>.corr per pair; data.flow_dir)")
        elif flow:
            corr = [sp.paths.flow(a, b) for a, b in pairs]
            inspect = lambda q: _inspect_corr(q) if q.is_file() else (None, "not found")  # noqa: E731
            for (a, b), path, (hw, error) in zip(pairs, corr, pool.map(inspect, corr)):
                target_hw = sp.sizes.get(image_stem(b))
                if error == "not found":
                    report.add("missing flow", path, None, f"no flow file for pair {a} -> {b} (train.flow=file)")
                elif error is not None:
                    report.add("truncated flow", path, None, error)
                elif target_hw is not None and hw != target_hw:
                    report.add("flow wrong size", path, None,
                               f"flow is {hw[0]}x{hw[1]}, target image '{b}' is {target_hw[0]}x{target_hw[1]}")
        if provided_parsing and not sp.paths.pred_parsing_dir.is_dir():
            report.add("missing parsing", sp.paths.pred_parsing_dir, None,
                       "folder of provided target parsings not found (data.pred_parsing_dir; `spgnet import-official` "
                       "writes it from the official release's pred_seg/)")
        elif provided_parsing:
            given = [sp.paths.pred_parsing(a, b) for a, b in pairs]
            for (a, b), path, (size, error) in zip(pairs, given, pool.map(_inspect_label_header, given)):
                target_hw = sp.sizes.get(image_stem(b))
                if error is not None:
                    report.add("missing parsing" if error == "not found" else "undecodable parsing", path, None,
                               f"provided target parsing of pair {a} -> {b}: {error}")
                elif target_hw is not None and size != target_hw:
                    report.add("parsing wrong size", path, None, f"provided target parsing is {size[0]}x{size[1]}, "
                                                                 f"target image '{b}' is {target_hw[0]}x{target_hw[1]}")
    problems = report.problems
    if problems:
        more = (f" (and {len(problems) - 1} more problem(s); `spgnet check {cfg.root} --split {split}` with this "
                "config lists them all)") if len(problems) > 1 else ""
        raise SPGNetError(f"{problems[0]}{more}")
    return len(pairs)


__all__ = ["KINDS", "Problem", "SplitStats", "Report", "check_dataset", "preflight"]
