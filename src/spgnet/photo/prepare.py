"""A folder of your own photos -> a dataset in the docs/design.md §4 layout (docs/design.md §11).

For every photo in a format Pillow reads (JPEG, PNG, WebP, BMP, TIFF, ...; sorted by
name; EXIF orientation applied, transparency composited on white; files of other types
are listed in the report):

1. **geometry** (aspect ratio kept): scale to the output height ``H`` (Lanczos), giving
   ``H x W'``; then bring the width to ``W``: a narrower picture is padded equally left and
   right (each side with the mean colour of that side's outermost pixel column), a wider
   one is cropped to a ``W``-wide window centred on the person (the middle of the
   person mask's columns, shifted to stay inside the picture);
2. **people** by :mod:`spgnet.photo.detect` (mediapipe BlazePose -> OpenPose-18, person
   masks, front or back view; or the keypoints of a learned model, ``--keypoints vitpose``)
   on the photo itself (shrunk to at most :data:`MAX_DETECTION_SIDE` pixels), every person
   of it; one is chosen (``--person``:
   the largest by default), its keypoints and mask are brought onto the scaled
   ``H x W'`` picture, and the crop window is centred on it. A photo with several people
   gets a line in the report; a photo where no person is found is skipped and listed;
3. **parsing** by :func:`spgnet.photo.coarse_parsing.coarse_parsing` (with the picture's
   colours and the view) or by a learned parser (``--parser segformer``) on the scaled
   picture, so limbs that the crop cuts still shape the parts that stay;
4. keypoints, mask and parsing then take the same pad/crop as the image; a joint that
   ends up outside the picture becomes missing (-1). A back view's keypoints have no nose
   and no eyes (:data:`FACE_FEATURES`): with them the pose would ask for a face.

A person shorter than :data:`MIN_PERSON_HEIGHT` pixels in the photo is an error naming the
photo: upscaled, it gives keypoints and parsing that mean nothing.

All or nothing: every photo is prepared and written into a staging folder next to
``ROOT`` first, and the files move into ``ROOT`` only when all of them succeeded, so a
failed or interrupted run leaves no half dataset (and the rerun needs no ``--force``).

Written (``S`` = the split, ``test`` by default; ``both`` writes the same images as
``train`` and ``test``, which ``spgnet check`` needs with its default splits)::

    ROOT/S/<stem>.png              the H x W image (lossless)
    ROOT/parsing/<stem>.png        coarse CIHP labels
    ROOT/annotation-S.csv          PATN keypoints (integer pixels, -1 missing)
    ROOT/pairs-S.csv               "from,to" file names
    ROOT/prepare_report.txt        what was done (with which keypoints and parsing) and every
                                   photo without a person

``<stem>`` is the photo's file name without its suffix, with characters other than
letters, digits and ``._+-`` replaced by ``-`` (they would break the CSV files). Pairs:
``all`` = every ordered pair of two different images; ``by-prefix`` = the ordered pairs
among images whose stems share the part before the first ``_`` (``anna_1``, ``anna_2``).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from itertools import permutations
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm import tqdm

from spgnet import SPGNetError
from spgnet.photo.coarse_parsing import coarse_parsing
from spgnet.data.layout import write_pairs_csv
from spgnet.utils.io import atomic_write_text, save_image
from spgnet.photo.detect import PoseDetector, choose_person
from spgnet.pose import is_missing, write_annotation_csv

def _pillow_suffixes() -> tuple[str, ...]:
    """File suffixes of every image format this Pillow can open."""
    Image.init()
    return tuple(sorted(ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN))


PHOTO_SUFFIXES = _pillow_suffixes()  # .jpg, .png, .webp, .bmp, .tif, .gif, ...
MIN_PERSON_HEIGHT = 64  # pixels of the person in the photo itself (mask rows), before any scaling
MAX_DETECTION_SIDE = 1600  # larger photos are shrunk to this (longer side) for the detector
DEFAULT_VISIBILITY = 0.1  # BlazePose visibility a joint needs (measured: docs/photos.md)
PAIR_MODES = ("all", "by-prefix")
SPLIT_CHOICES = ("test", "train", "both")
REPORT_NAME = "prepare_report.txt"
# OpenPose-18 nose, r-eye, l-eye: a pose that has them shows a face, so they are left out of
# a back view's keypoints (BlazePose places them on the back of the head too); the ears stay.
FACE_FEATURES = (0, 14, 15)


@dataclass
class PreparedImage:
    """One photo brought to the output geometry.

    image (H, W, 3) uint8, keypoints (18, 2) float32 (x, y; -1 missing), parsing (H, W) uint8
    CIHP, mask (H, W) bool mask of the chosen person, score the detection's score.
    """

    image: np.ndarray
    keypoints: np.ndarray
    parsing: np.ndarray
    mask: np.ndarray
    score: float
    people: int = 1  # people found in the photo
    note: str | None = None  # one line when several people were found (which one was used)
    facing: str | None = None  # "front" / "back", as the detector decided


@dataclass
class PrepareResult:
    """What :func:`prepare_photos` wrote."""

    root: Path
    splits: tuple[str, ...]
    size: tuple[int, int]
    names: list[str]  # image file names written, in order
    skipped: list[Path]  # photos where no person was found
    pairs: list[tuple[str, str]]
    seconds: float
    renamed: dict[str, str] = field(default_factory=dict)  # photo file name -> written stem, where they differ
    not_images: list[Path] = field(default_factory=list)  # files of the folder Pillow cannot read (by suffix)
    notes: list[str] = field(default_factory=list)  # one line per photo with several people


# --------------------------------------------------------------------------- inputs


def load_photo(path: str | os.PathLike) -> np.ndarray:
    """A photo as ``(H, W, 3)`` uint8 RGB, upright by its EXIF orientation, alpha over white."""
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                im = im.convert("RGBA")
                canvas = Image.new("RGBA", im.size, (255, 255, 255, 255))
                im = Image.alpha_composite(canvas, im)
            return np.array(im.convert("RGB"))  # writable (torch warns on read-only arrays)
    except FileNotFoundError:
        raise SPGNetError(f"{path}: image file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise SPGNetError(f"{path}: cannot read image ({exc})") from None


def list_photos(folder: str | os.PathLike) -> list[Path]:
    """The image files of ``folder`` (any format Pillow reads, by suffix; not recursive),
    sorted by name; SPGNetError when there are none."""
    photos, _ = _photos_and_others(folder)
    return photos


def _photos_and_others(folder: str | os.PathLike) -> tuple[list[Path], list[Path]]:
    folder = Path(folder)
    if not folder.is_dir():
        raise SPGNetError(f"{folder}: image folder not found")
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    photos = [p for p in files if p.suffix.lower() in PHOTO_SUFFIXES]
    if not photos:
        raise SPGNetError(f"{folder}: no JPEG or PNG images in this folder (nor any other format Pillow reads)")
    return photos, [p for p in files if p.suffix.lower() not in PHOTO_SUFFIXES]


def output_stem(path: Path) -> str:
    """The stem a photo is written under: characters outside ``[A-Za-z0-9._+-]`` become ``-``."""
    return re.sub(r"[^A-Za-z0-9._+-]", "-", path.stem) or "image"


def _stems(photos: list[Path]) -> dict[Path, str]:
    stems: dict[Path, str] = {}
    owner: dict[str, Path] = {}
    for p in photos:
        s = output_stem(p)
        if s in owner:
            raise SPGNetError(f"{owner[s]} and {p}: both would be written as '{s}' (rename one of them)")
        owner[s], stems[p] = p, s
    return stems


def _check_headers(photos: list[Path]) -> None:
    """Fail before writing anything when a file is not an image at all (header only)."""
    for p in photos:
        try:
            with Image.open(p):
                pass
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise SPGNetError(f"{p}: cannot read image ({exc})") from None


# --------------------------------------------------------------------------- geometry


def _scaled_width(h: int, w: int, height: int) -> int:
    return max(1, round(w * height / h))


def _crop_offset(scaled_w: int, width: int, mask: np.ndarray, kp: np.ndarray) -> int:
    """Left column of a ``width``-wide window on a wider picture, centred on the person."""
    cols = np.flatnonzero(mask.any(0))
    present = ~is_missing(kp)
    if cols.size:
        centre = 0.5 * (cols[0] + cols[-1])
    elif present.any():
        centre = float(kp[present, 0].mean())
    else:
        centre = 0.5 * (scaled_w - 1)
    return int(np.clip(round(centre - 0.5 * (width - 1)), 0, scaled_w - width))


def _shift_keypoints(kp: np.ndarray, dx: float, size: tuple[int, int]) -> np.ndarray:
    """Move keypoints ``dx`` to the right; joints off the ``size`` picture become -1.

    A joint within half a pixel of the picture is clamped onto its edge pixels, so that
    the integer annotation stays inside the image.
    """
    h, w = size
    out = np.asarray(kp, dtype=np.float32).copy()
    missing = is_missing(out)
    out[:, 0] += dx
    off = (out[:, 0] < -0.5) | (out[:, 0] > w - 0.5) | (out[:, 1] < -0.5) | (out[:, 1] > h - 0.5)
    out = np.clip(out, 0.0, np.array([w - 1, h - 1], dtype=np.float32))
    out[missing | off] = -1.0
    return out


def _detection_frame(photo: np.ndarray) -> tuple[np.ndarray, float]:
    """The photo the detector sees (at most :data:`MAX_DETECTION_SIDE` on its longer side) and its scale."""
    h, w = photo.shape[:2]
    f = min(1.0, MAX_DETECTION_SIDE / max(h, w))
    if f == 1.0:
        return photo, 1.0
    small = Image.fromarray(photo).resize((max(1, round(w * f)), max(1, round(h * f))), Image.Resampling.LANCZOS)
    return np.array(small), f


def prepare_photo(photo: np.ndarray, size: tuple[int, int], detector: PoseDetector, name: str = "photo",
                  person: str | int = "largest", parser=None) -> PreparedImage | None:
    """One ``(h, w, 3)`` uint8 photo -> :class:`PreparedImage` at ``size = (H, W)``, or None (no person).

    See the module docstring for the geometry. People are found on the photo itself (see
    :meth:`PoseDetector.detect_people`); ``person`` chooses one (``largest``, ``center`` or
    the K-th from the left, see :func:`choose_person`), and when there are several the
    result's ``note`` says so. ``parser``: None for the coarse parsing, else a callable
    ``(image, mask) -> labels`` (:func:`spgnet.photo.learned_parsing.load_parser`). A
    person shorter than :data:`MIN_PERSON_HEIGHT` pixels in the photo raises SPGNetError
    naming ``name``.
    """
    height, width = size
    h, w = photo.shape[:2]
    seen, f = _detection_frame(photo)
    people = detector.detect_people(seen)
    if not people:
        return None
    try:
        k = choose_person(people, person, seen.shape[:2])
    except SPGNetError as exc:
        raise SPGNetError(f"{name}: {exc}") from None
    found = people[k]
    note = None
    if len(people) > 1:
        note = (f"{name}: {len(people)} people found; using person {k + 1} from the left "
                f"({person if isinstance(person, str) else 'chosen'}); choose with --person K|largest|center")
    rows = np.flatnonzero(found.mask.any(1))
    person_height = (rows[-1] - rows[0] + 1) / f if rows.size else 0.0
    if person_height < MIN_PERSON_HEIGHT:
        raise SPGNetError(f"{name}: the person is {person_height:.0f} px tall in this {h}x{w} photo, below the "
                          f"{MIN_PERSON_HEIGHT} px minimum (upscaled, its keypoints and parsing would mean "
                          "nothing); use a larger photo")

    scaled_w = _scaled_width(h, w, height)
    scaled = photo
    if (h, w) != (height, scaled_w):
        scaled = np.array(Image.fromarray(photo).resize((scaled_w, height), Image.Resampling.LANCZOS))
    # detection frame -> scaled picture: pixel centres scale about the image's corner
    scale = np.array([scaled_w / seen.shape[1], height / seen.shape[0]], np.float32)

    def to_scaled(xy: np.ndarray) -> np.ndarray:
        return ((xy + 0.5) * scale - 0.5).astype(np.float32)

    keypoints = np.where(is_missing(found.keypoints)[:, None], np.float32(-1), to_scaled(found.keypoints))
    keypoints = _shift_keypoints(keypoints, 0.0, (height, scaled_w))
    person_mask = found.mask
    if person_mask.shape != (height, scaled_w):
        person_mask = np.asarray(Image.fromarray(person_mask.astype(np.uint8) * 255).resize(
            (scaled_w, height), Image.Resampling.BILINEAR)) >= 128
    if parser is None:
        outline = None if found.face_outline is None else to_scaled(found.face_outline)
        parsing = coarse_parsing(person_mask, keypoints, scaled, facing=found.facing,
                                 face_outline=outline)  # (H, W') on the scaled picture
    else:
        parsing = parser(scaled, person_mask)
    if scaled_w >= width:
        left = _crop_offset(scaled_w, width, person_mask, keypoints)
        image = scaled[:, left : left + width]
        parsing = parsing[:, left : left + width]
        mask = person_mask[:, left : left + width]
        dx = -left
    else:
        pad_l = (width - scaled_w) // 2
        pad_r = width - scaled_w - pad_l
        fill_l = scaled[:, 0].reshape(-1, 3).mean(0)
        fill_r = scaled[:, -1].reshape(-1, 3).mean(0)
        image = np.concatenate(
            [np.broadcast_to(np.rint(fill_l).astype(np.uint8), (height, pad_l, 3)), scaled,
             np.broadcast_to(np.rint(fill_r).astype(np.uint8), (height, pad_r, 3))], axis=1)
        parsing = np.pad(parsing, ((0, 0), (pad_l, pad_r)))
        mask = np.pad(person_mask, ((0, 0), (pad_l, pad_r)))
        dx = pad_l
    kp = _shift_keypoints(keypoints, dx, size)
    if found.facing == "back":  # no face to draw (the parsing above already made the head hair)
        kp[list(FACE_FEATURES)] = -1.0
    return PreparedImage(np.ascontiguousarray(image), kp, np.ascontiguousarray(parsing), np.ascontiguousarray(mask),
                         found.score, people=len(people), note=note, facing=found.facing)


# --------------------------------------------------------------------------- pairs and the whole folder


def make_pairs(names: list[str], mode: str = "all") -> list[tuple[str, str]]:
    """Ordered pairs of different images: ``all`` of them, or ``by-prefix`` (same stem part before the first '_')."""
    if mode == "all":
        return list(permutations(names, 2))
    if mode == "by-prefix":
        def prefix(name: str) -> str:
            return Path(name).stem.split("_", 1)[0]

        return [(a, b) for a, b in permutations(names, 2) if prefix(a) == prefix(b)]
    raise SPGNetError(f"--pairs {mode!r}: choose from {', '.join(PAIR_MODES)}")


def _splits(split: str) -> tuple[str, ...]:
    if split not in SPLIT_CHOICES:
        raise SPGNetError(f"--split {split!r}: choose from {', '.join(SPLIT_CHOICES)}")
    return ("train", "test") if split == "both" else (split,)


def _check_out(root: Path, splits: tuple[str, ...], force: bool) -> None:
    if root.exists() and not root.is_dir():
        raise SPGNetError(f"{root}: exists and is not a folder")
    for s in splits:
        folder = root / s
        if folder.is_dir() and not force and any(folder.iterdir()):
            raise SPGNetError(f"{folder}: folder is not empty; choose another --out or pass --force "
                              "(files of the same name are replaced, others are left)")


def _methods(detector: PoseDetector, parser) -> str:
    """One line naming where the keypoints and the parsing came from (for the report)."""

    def learned(model) -> str:  # e.g. "VitPoseKeypoints from DIR"
        weights = getattr(model, "weights", None)
        return type(model).__name__ + (f" from {weights}" if weights is not None else "")

    model = getattr(detector, "keypoint_model", None)
    keypoints = (learned(model) if model is not None
                 else f"BlazePose (mediapipe), visibility >= {detector.visibility_threshold:g}")
    parsing = "coarse (keypoints, mask, colours)" if parser is None else learned(parser)
    return f"keypoints: {keypoints}; parsing: {parsing}"


def _report(result: PrepareResult, images_dir: Path, total: int, methods: str) -> str:
    h, w = result.size
    lines = [
        f"spgnet prepare: {total} photo(s) in {images_dir} -> {result.root} at {h}x{w} (HxW), "
        f"split(s) {', '.join(result.splits)}",
        methods,
        f"{len(result.names)} image(s) with a person, {len(result.skipped)} skipped, {len(result.pairs)} pair(s)",
    ]
    lines += [f"renamed {src} -> {stem}" for src, stem in result.renamed.items()]
    lines += [f"no person found in {p}" for p in result.skipped]
    lines += result.notes
    lines += [f"not an image Pillow reads, left out: {p}" for p in result.not_images]
    return "\n".join(lines) + "\n"


def prepare_photos(
    images_dir: str | os.PathLike,
    root: str | os.PathLike,
    size: tuple[int, int] = (256, 176),
    pairs: str = "all",
    split: str = "test",
    visibility_threshold: float = DEFAULT_VISIBILITY,
    force: bool = False,
    progress: bool = True,
    detector: PoseDetector | None = None,
    person: str | int = "largest",
    parser=None,
    keypoint_model=None,
) -> PrepareResult:
    """Prepare every photo of ``images_dir`` into the docs/design.md §4 layout under ``root``.

    ``split``: ``test``, ``train`` or ``both``. Photos without a person are skipped and
    listed in ``root/prepare_report.txt`` (also returned). Raises SPGNetError for a
    missing or empty folder, a file that is not a readable image, a bad ``size``, or
    when no photo shows a person. ``detector`` (e.g. one kept across calls) overrides
    ``visibility_threshold`` and ``keypoint_model`` (a learned keypoint model for the
    detector, :func:`spgnet.photo.learned_keypoints.load_keypoint_model`; None: BlazePose's).
    ``person`` and ``parser``: see :func:`prepare_photo`; every photo with several people
    gets a line in the report and in ``result.notes``.
    """
    t0 = time.perf_counter()
    images_dir, root = Path(images_dir), Path(root)
    try:
        height, width = (int(v) for v in size)
    except (TypeError, ValueError):
        raise SPGNetError(f"size must be (height, width), got {size!r}") from None
    if height < 16 or width < 16:
        raise SPGNetError(f"size {height}x{width}: height and width must be at least 16")
    splits = _splits(split)
    if pairs not in PAIR_MODES:
        raise SPGNetError(f"--pairs {pairs!r}: choose from {', '.join(PAIR_MODES)}")
    photos, not_images = _photos_and_others(images_dir)
    stems = _stems(photos)
    _check_headers(photos)
    _check_out(root, splits, force)

    root.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}.prepare-"))
    try:
        own = detector is None
        det = PoseDetector(visibility_threshold, keypoint_model=keypoint_model) if own else detector
        names: list[str] = []
        annotations: dict[str, np.ndarray] = {}
        skipped: list[Path] = []
        notes: list[str] = []
        methods = _methods(det, parser)
        try:
            for path in tqdm(photos, desc="prepare", unit="photo", disable=not progress):
                prepared = prepare_photo(load_photo(path), (height, width), det, name=str(path), person=person,
                                         parser=parser)
                if prepared is None:
                    skipped.append(path)
                    continue
                if prepared.note:
                    notes.append(prepared.note)
                name = f"{stems[path]}.png"
                for s in splits:
                    save_image(prepared.image, stage / s / name)
                save_image(prepared.parsing, stage / "parsing" / f"{stems[path]}.png")
                names.append(name)
                annotations[name] = prepared.keypoints
        finally:
            if own:
                det.close()

        pair_list = make_pairs(names, pairs)
        result = PrepareResult(
            root=root, splits=splits, size=(height, width), names=names, skipped=skipped, pairs=pair_list,
            seconds=time.perf_counter() - t0,
            renamed={p.name: stems[p] for p in photos if stems[p] != p.stem}, not_images=not_images,
            notes=notes,
        )
        atomic_write_text(stage / REPORT_NAME, _report(result, images_dir, len(photos), methods))
        if names:
            for s in splits:
                write_annotation_csv(stage / f"annotation-{s}.csv", annotations)
                write_pairs_csv(stage / f"pairs-{s}.csv", pair_list)
        _move_into(stage, root)  # everything succeeded: now the files take their places
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    if not names:
        raise SPGNetError(f"{images_dir}: no person found in any of the {len(photos)} photo(s) (see {root / REPORT_NAME})")
    result.seconds = time.perf_counter() - t0
    return result


def _move_into(stage: Path, root: Path) -> None:
    """Move every file of ``stage`` to the same place under ``root`` (same file system:
    renames), replacing files of the same name."""
    for src in sorted(stage.rglob("*")):
        if src.is_file():
            dst = root / src.relative_to(stage)
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)


__all__ = [
    "MIN_PERSON_HEIGHT", "MAX_DETECTION_SIDE", "DEFAULT_VISIBILITY", "PHOTO_SUFFIXES", "PAIR_MODES", "SPLIT_CHOICES", "REPORT_NAME", "PreparedImage", "PrepareResult",
    "load_photo", "list_photos", "output_stem", "prepare_photo", "make_pairs", "prepare_photos",
]
