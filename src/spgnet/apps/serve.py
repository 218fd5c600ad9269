"""``spgnet serve``: re-pose a photo in the browser (Gradio), on top of :mod:`spgnet.photo.transfer`.

One :class:`~spgnet.photo.transfer.PoseTransfer` is loaded at start-up and every request
goes through it: the photo is read with :func:`spgnet.photo.prepare.load_photo` and prepared
by ``PoseTransfer.prepare_array`` (what ``spgnet transfer`` does with a file), the target
pose comes from ``PoseTransfer.pose_from_json`` / ``prepare_array`` / ``pose_sequence`` and
the images from ``PoseTransfer.render`` -- there is no second inference path, so the page,
its API and ``spgnet transfer`` give the same pixels for the same photo, pose and seed.

**The page.** A source photo (upload, webcam, or an example: synthetic people written
from :mod:`spgnet.data.synth` at start-up and scikit-image's astronaut); a target pose
from the gallery (the OpenPose JSON files of ``spgnet/apps/poses``, each with its frame
``"size"``), from another photo, or from an uploaded OpenPose JSON file; a nudge
(:func:`nudge_pose`: mirror, scale, shift); a seed. Shown: the detected source keypoints,
the source parsing, the target pose, stage 1's predicted parsing and the result. The
"Animate" tab renders a pose sequence (gallery or uploaded, the formats of
:mod:`spgnet.photo.pose_sequence`) to a GIF (and an MP4 with imageio-ffmpeg).

**Serving.** Uploads are limited in bytes (Gradio's ``max_file_size``, checked again by
the handlers) and in pixels (read from the image header before decoding); the handlers
only read files Gradio wrote into its upload cache (Gradio refuses any other path a
client names) and gallery entries are looked up by name in a dict, never as paths. One
model, one lock: the queue runs at most ``concurrency`` requests at a time and the model
itself (mediapipe detector, seeded generator) is used by one request at a time. Errors are
one line on the page (``gr.Error``); an unexpected exception is logged with its traceback
on the server and shown as one line.

**Offline.** ``GRADIO_ANALYTICS_ENABLED=False`` is set before Gradio is imported, no share
link, no server-side rendering, no monitoring, no run history; the theme uses the
browser's system fonts, so the page loads nothing but its own server's assets
(tests/apps/test_serve_browser.py checks every URL the browser requests).

Gradio is imported only by :func:`build_app` / :func:`launch` (everything else here works
without it); when it is missing they raise one line saying how to install it.
"""

from __future__ import annotations

import contextlib
import functools
import html
import logging
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from spgnet import SPGNetError
from spgnet.parsing import colorize
from spgnet.pose import check_keypoints, draw_skeleton, flip_keypoints, is_missing, render_pose_image
from spgnet.utils.io import read_json, save_image

log = logging.getLogger("spgnet.serve")

GRADIO_MISSING = "spgnet serve needs gradio; install it with: pip install 'spgnet[app]'"
POSES_DIR = Path(__file__).resolve().parent / "poses"
SEQUENCE_PREFIX = "sequence-"  # gallery files holding a pose sequence (shown without the prefix)
DEMO_CHECKPOINT = Path("runs") / "demo" / "train" / "checkpoints" / "last"  # where `make demo` leaves it
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
DEFAULT_MAX_UPLOAD_MB = 10.0
DEFAULT_MAX_PIXELS = 25_000_000  # a 6000x4000 photo fits; decoded RGB that is 75 MB
DEFAULT_GALLERY_POSE = "arms-raised"
MAX_FRAMES = 64  # poses per animation request
MAX_QUEUE = 32  # requests waiting in the queue; more are refused with "queue full"
SCALE_RANGE = (0.25, 4.0)
SHIFT_RANGE = (-100.0, 100.0)  # percent of the model frame's width / height
FPS_RANGE = (1.0, 30.0)
MAX_SEED = 2**32 - 1
PERSON_CHOICES = ("largest", "center", "1", "2", "3", "4", "5", "6", "7", "8")
POSE_FROM = (("gallery", "gallery"), ("photo", "photo"), ("OpenPose JSON", "json"))
OUTPUT_TTL_S = 3600.0  # uploads, results and animations older than this are deleted
MB = 1024 * 1024


# --------------------------------------------------------------------------- checkpoint


def find_checkpoint(checkpoint: str | os.PathLike | None, cwd: str | os.PathLike | None = None) -> Path:
    """``checkpoint`` when given, else the demo checkpoint ``runs/demo/train/checkpoints/last``
    (under ``cwd``, the current directory by default) when it exists; SPGNetError saying how
    to make one otherwise."""
    if checkpoint is not None:
        return Path(checkpoint)
    demo = Path(cwd or Path.cwd()) / DEMO_CHECKPOINT
    if demo.is_dir():
        return demo
    raise SPGNetError(f"no --checkpoint given and no demo checkpoint at {DEMO_CHECKPOINT} in "
                      f"{Path(cwd or Path.cwd())}: make one with `make demo` (spgnet demo --out runs/demo), or "
                      "convert the official weights with `spgnet convert-official` and pass --checkpoint")


# --------------------------------------------------------------------------- poses


def nudge_pose(kp: np.ndarray, size: tuple[int, int], mirror: bool = False, scale: float = 1.0,
               shift_x: float = 0.0, shift_y: float = 0.0) -> np.ndarray:
    """Keypoints ``(18, 2)`` in an ``size = (H, W)`` frame, nudged; missing joints stay missing.

    In this order: ``mirror`` (``x -> W - 1 - x`` with left and right joints swapped,
    :func:`spgnet.pose.flip_keypoints`); ``scale`` about the centre of the present joints'
    bounding box; ``shift_x`` / ``shift_y`` as fractions of ``W`` / ``H`` (0.1 = a tenth of
    the width to the right). A joint that leaves the frame by more than half a pixel
    becomes missing (-1), one within half a pixel is clamped onto it (as in
    :mod:`spgnet.photo.pose_sequence`). No nudge returns the keypoints unchanged (float32).
    """
    h, w = (int(v) for v in size)
    out = np.asarray(kp, dtype=np.float32).copy()
    check_keypoints(out, "target pose", ndims=(2,))
    out[is_missing(out)] = -1.0
    if mirror:
        out = flip_keypoints(out, w)
    if scale == 1.0 and shift_x == 0.0 and shift_y == 0.0:
        return out
    missing = is_missing(out)
    if missing.all():
        return out
    pts = out.astype(np.float64)
    centre = 0.5 * (pts[~missing].min(0) + pts[~missing].max(0))
    pts = centre + float(scale) * (pts - centre) + np.array([float(shift_x) * w, float(shift_y) * h])
    off = (pts[:, 0] < -0.5) | (pts[:, 0] > w - 0.5) | (pts[:, 1] < -0.5) | (pts[:, 1] > h - 0.5)
    pts = np.clip(pts, 0.0, np.array([w - 1, h - 1], dtype=np.float64))
    pts[missing | off] = -1.0
    return pts.astype(np.float32)


def json_frame(doc: Any) -> tuple[int, int] | None:
    """The ``(H, W)`` frame of a keypoint JSON document: its ``"size": [H, W]`` (our gallery
    and sequence files), or ``canvas_height`` / ``canvas_width`` (pose-editor exports); None
    when it has neither (the coordinates are then taken in the model's frame, as
    ``spgnet transfer`` does without ``--pose-size``)."""
    if not isinstance(doc, dict):
        return None
    size = doc.get("size")
    if size is None and "canvas_height" in doc and "canvas_width" in doc:
        size = [doc["canvas_height"], doc["canvas_width"]]
    if size is None:
        return None
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                                                              for v in size)):
        raise SPGNetError(f"'size' must be [height, width] in pixels, got {size!r}")
    return int(size[0]), int(size[1])


@dataclass(frozen=True)
class GalleryEntry:
    """One file of the pose gallery: its ``path`` (inside the package), frame ``size`` (H, W)
    and ``frames`` (1 for a single pose)."""

    path: Path
    size: tuple[int, int] | None
    frames: int


def load_gallery(folder: str | os.PathLike = POSES_DIR) -> tuple[dict[str, GalleryEntry], dict[str, GalleryEntry]]:
    """``(poses, sequences)``, each ``{name: GalleryEntry}`` in name order, from the JSON files
    of ``folder``: OpenPose files (``"people"``) are single poses named by their stem,
    ``sequence-NAME.json`` files (:mod:`spgnet.photo.pose_sequence` format) are sequences named
    ``NAME``. Every file is read and checked here, so a broken gallery fails at start-up."""
    from spgnet.photo.pose_sequence import read_pose_sequence
    from spgnet.pose import read_openpose_json

    poses: dict[str, GalleryEntry] = {}
    sequences: dict[str, GalleryEntry] = {}
    for path in sorted(Path(folder).glob("*.json")):
        doc = read_json(path, "pose gallery file")
        try:
            size = json_frame(doc)
        except SPGNetError as exc:
            raise SPGNetError(f"{path}: {exc}") from None
        if path.stem.startswith(SEQUENCE_PREFIX):
            seq, seq_size = read_pose_sequence(path)
            sequences[path.stem[len(SEQUENCE_PREFIX):]] = GalleryEntry(path, seq_size or size, len(seq))
        else:
            read_openpose_json(path)
            poses[path.stem] = GalleryEntry(path, size, 1)
    if not poses:
        raise SPGNetError(f"{folder}: no gallery poses (OpenPose .json files) in this folder")
    return poses, sequences


# --------------------------------------------------------------------------- example photos


def write_example_photos(folder: str | os.PathLike, size: tuple[int, int] = (384, 256)) -> list[Path]:
    """Photos to try the page with, written into ``folder``: three synthetic people
    (:mod:`spgnet.data.synth`, front view, seeds 0-2) at ``size`` and scikit-image's astronaut."""
    from skimage import data

    from spgnet.data.synth_body import sample_identity, sample_pose
    from spgnet.data.synth_render import render_person

    folder = Path(folder)
    paths = []
    for seed in range(3):
        rng = np.random.default_rng(seed)
        person = render_person(sample_identity(rng), sample_pose(rng, view="front", zoom=False), size)
        paths.append(folder / f"synthetic-person-{seed}.png")
        save_image(person["image"], paths[-1])
    paths.append(folder / "astronaut.png")
    save_image(data.astronaut(), paths[-1])
    return paths


# --------------------------------------------------------------------------- handlers


@dataclass
class TransferOutput:
    """What one transfer request shows: the ``result (H, W, 3)``, the detected source keypoints
    drawn on the prepared source, the source parsing (colourised), the target pose (skeleton),
    stage 1's predicted parsing (colourised), all uint8 ``(H, W, 3)``; and a one-line ``info``."""

    result: np.ndarray
    source_keypoints: np.ndarray
    source_parsing: np.ndarray
    target_pose: np.ndarray
    target_parsing: np.ndarray
    info: str

    def as_tuple(self) -> tuple:
        return (self.result, self.source_keypoints, self.source_parsing, self.target_pose, self.target_parsing,
                self.info)


@dataclass
class AnimateOutput:
    """One animation request: the ``gif`` path, every downloadable file (GIF, MP4 when
    imageio-ffmpeg is installed, the frame strip PNG) and a one-line ``info``."""

    gif: str
    files: list[str]
    info: str

    def as_tuple(self) -> tuple:
        return self.gif, self.files, self.info


def _relabel(exc: SPGNetError, path: str | os.PathLike, label: str) -> SPGNetError:
    """The same error with the server-side temporary ``path`` replaced by ``label`` (or
    ``label`` in front when the message does not name the file)."""
    message = str(exc)
    return SPGNetError(message.replace(str(path), label) if str(path) in message else f"{label}: {message}")


def _number(value, what: str, low: float, high: float) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise SPGNetError(f"{what} {value!r}: not a number") from None
    if not (np.isfinite(x) and low <= x <= high):
        raise SPGNetError(f"{what} {value!r}: must lie in [{low:g}, {high:g}]")
    return x


def _seed(value) -> int:
    seed = _number(0 if value is None else value, "seed", 0, MAX_SEED)
    if seed != int(seed):
        raise SPGNetError(f"seed {value!r}: must be a whole number")
    return int(seed)


class ServeHandlers:
    """The page's functions, without Gradio: one :class:`PoseTransfer`, upload limits, the
    pose gallery, the example photos and a work folder for animations.

    ``photo_options``: :class:`PoseTransfer` keywords (``person``, ``parser``, ...; see
    ``spgnet.commands.transfer.photo_options``). The inputs are file paths that Gradio wrote
    (or ``None``); the methods raise SPGNetError for anything the user can fix.
    """

    def __init__(self, checkpoint: str | os.PathLike, device: str = "auto", overrides: list[str] | None = None,
                 max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB, max_pixels: int = DEFAULT_MAX_PIXELS,
                 photo_options: dict | None = None, examples: bool = True):
        from spgnet.photo.transfer import PoseTransfer

        if not max_upload_mb > 0:
            raise SPGNetError(f"--max-upload-mb {max_upload_mb}: must be positive")
        if int(max_pixels) < 16 * 16:
            raise SPGNetError(f"--max-pixels {max_pixels}: must be at least 256")
        self.max_bytes = int(max_upload_mb * MB)
        self.max_pixels = int(max_pixels)
        self.poses, self.sequences = load_gallery()
        self.checkpoint = Path(checkpoint)
        self.model = PoseTransfer(checkpoint, device, overrides, **(photo_options or {}))
        self.size = self.model.size
        self._lock = threading.Lock()
        self.workdir = Path(tempfile.mkdtemp(prefix="spgnet-serve-"))
        self.example_photos = write_example_photos(self.workdir / "examples") if examples else []

    def close(self) -> None:
        self.model.close()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> ServeHandlers:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ inputs
    def read_photo(self, path: str | os.PathLike | None, what: str) -> tuple[np.ndarray, str]:
        """An uploaded photo -> ``((h, w, 3) uint8, label for messages)``, after the byte and
        pixel limits (the pixel count from the header, before decoding)."""
        from spgnet.photo.prepare import load_photo

        if path is None:
            raise SPGNetError(f"no {what}: upload a photo of a person"
                              + (" (or pick an example)" if what == "source photo" else ""))
        label = f"{what} {Path(path).name}"
        self.check_file_size(path, label)
        try:
            with Image.open(path) as im:
                w, h = im.size
        except Image.DecompressionBombError:
            raise SPGNetError(f"{label}: far too many pixels for this server (limit {self.max_pixels:,})") from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
            raise SPGNetError(f"{label}: not an image this server reads (JPEG, PNG, WebP, BMP, ...)") from None
        if w * h > self.max_pixels:
            raise SPGNetError(f"{label}: {w}x{h} is {w * h:,} pixels, above this server's limit of "
                              f"{self.max_pixels:,}; use a smaller photo")
        try:
            return load_photo(path), label
        except SPGNetError as exc:
            raise _relabel(exc, path, label) from None

    def check_file_size(self, path: str | os.PathLike, label: str) -> None:
        size = os.path.getsize(path)
        if size > self.max_bytes:
            raise SPGNetError(f"{label}: {size / MB:.1f} MB, above this server's upload limit of "
                              f"{self.max_bytes / MB:g} MB")

    def _prepare(self, photo: np.ndarray, label: str, person: str | int | None):
        """THE place where a photo meets the model (source and target photos): ``person``
        chooses among several people (None: the server's ``--person``)."""
        return self.model.prepare_array(photo, label, person=person)

    def _json_pose(self, path: str | os.PathLike, label: str) -> np.ndarray:
        self.check_file_size(path, label)
        try:
            return self.model.pose_from_json(path, json_frame(read_json(path, "OpenPose JSON file")))
        except SPGNetError as exc:
            raise _relabel(exc, path, label) from None

    def target_keypoints(self, pose_from: str, gallery_pose: str | None, pose_photo: str | None,
                         pose_json: str | None, target_person: str | int | None = None) -> np.ndarray:
        """``(18, 2)`` target keypoints in the model frame, before any nudge (call under the lock)."""
        if pose_from == "gallery":
            entry = self.poses.get(str(gallery_pose))
            if entry is None:
                raise SPGNetError(f"gallery pose {gallery_pose!r}: not in the gallery "
                                  f"({', '.join(self.poses)})")
            return self.model.pose_from_json(entry.path, entry.size)
        if pose_from == "photo":
            photo, label = self.read_photo(pose_photo, "pose photo")
            return self._prepare(photo, label, target_person).keypoints
        if pose_from == "json":
            if pose_json is None:
                raise SPGNetError("no OpenPose JSON file: upload one (people[0].pose_keypoints_2d), or choose "
                                  "another pose source")
            return self._json_pose(pose_json, f"OpenPose JSON {Path(pose_json).name}")
        raise SPGNetError(f"pose source {pose_from!r}: choose gallery, photo or json")

    # ------------------------------------------------------------------ requests
    def transfer(self, source: str | None, pose_from: str = "gallery", gallery_pose: str | None = DEFAULT_GALLERY_POSE,
                 pose_photo: str | None = None, pose_json: str | None = None, mirror: bool = False,
                 scale: float = 1.0, shift_x: float = 0.0, shift_y: float = 0.0, seed: int = 0,
                 person: str | None = None, target_person: str | None = None) -> TransferOutput:
        """The person of ``source`` in the chosen pose: ``pose_from`` gallery (``gallery_pose``,
        a name), photo (``pose_photo``) or json (``pose_json``); nudged by ``mirror``, ``scale``
        and ``shift_x`` / ``shift_y`` in percent of the frame; ``seed`` for the generator's
        noise; ``person`` / ``target_person``: largest, center or K (None: the server's)."""
        t0 = time.perf_counter()
        seed = _seed(seed)
        scale = _number(scale, "scale", *SCALE_RANGE)
        shift_x = _number(shift_x, "shift x (%)", *SHIFT_RANGE)
        shift_y = _number(shift_y, "shift y (%)", *SHIFT_RANGE)
        person, target_person = _person(person), _person(target_person)
        photo, label = self.read_photo(source, "source photo")
        with self._model() as notes:
            target = self.target_keypoints(pose_from, gallery_pose, pose_photo, pose_json, target_person)
            target = nudge_pose(target, self.size, bool(mirror), scale, shift_x / 100.0, shift_y / 100.0)
            prepared = self._prepare(photo, label, person)
            self.model.seed = seed
            images, parsing = self.model.render(prepared, target[None])
        h, w = self.size
        info = f"{h}x{w} result, seed {seed}, {time.perf_counter() - t0:.2f} s"
        if notes:
            info += ". " + " ".join(notes)
        return TransferOutput(images[0], draw_skeleton(prepared.image, prepared.keypoints), colorize(prepared.parsing),
                              render_pose_image(target, (h, w)), colorize(parsing[0]), info)

    def animate(self, source: str | None, sequence: str | None = None, sequence_json: str | None = None,
                seed: int = 0, fps: float = 8.0, person: str | None = None) -> AnimateOutput:
        """The person of ``source`` through a gallery ``sequence`` (a name) or an uploaded
        ``sequence_json`` (which wins when given): a GIF, the MP4 when imageio-ffmpeg is
        installed, and the frame strip."""
        from spgnet.photo.animation import frame_strip, write_animation
        from spgnet.photo.pose_sequence import read_pose_sequence

        t0 = time.perf_counter()
        seed = _seed(seed)
        fps = _number(fps, "fps", *FPS_RANGE)
        person = _person(person)
        photo, label = self.read_photo(source, "source photo")
        if sequence_json is not None:
            path, seq_label = Path(sequence_json), f"pose sequence {Path(sequence_json).name}"
            self.check_file_size(path, seq_label)
            if path.suffix.lower() != ".json":
                raise SPGNetError(f"{seq_label}: expected a .json pose sequence")
        elif sequence in self.sequences:
            path, seq_label = self.sequences[sequence].path, f"sequence {sequence}"
        else:
            raise SPGNetError(f"pose sequence {sequence!r}: not in the gallery ({', '.join(self.sequences)}); "
                              "or upload a sequence JSON file")
        try:
            n = len(read_pose_sequence(path)[0])  # checked (and counted) before any model work
        except SPGNetError as exc:
            raise _relabel(exc, path, seq_label) from None
        if n > MAX_FRAMES:
            raise SPGNetError(f"{seq_label}: {n} poses, this server renders at most {MAX_FRAMES} per animation")
        with self._model() as notes:
            try:
                kps, _ = self.model.pose_sequence(path)
            except SPGNetError as exc:
                raise _relabel(exc, path, seq_label) from None
            prepared = self._prepare(photo, label, person)
            self.model.seed = seed
            frames, _ = self.model.render(prepared, kps)
        self._prune()
        out = self.workdir / "animations" / uuid.uuid4().hex
        write_animation(frames, out / "animation.gif", fps)
        files = [out / "animation.gif"]
        try:
            write_animation(frames, out / "animation.mp4", fps)
            files.append(out / "animation.mp4")
        except SPGNetError:  # no imageio-ffmpeg: the GIF only
            pass
        save_image(frame_strip(frames), out / "strip.png")
        files.append(out / "strip.png")
        h, w = frames.shape[1:3]
        info = f"{len(frames)} frames at {h}x{w}, {fps:g} fps, seed {seed}, {time.perf_counter() - t0:.2f} s"
        if notes:
            info += ". " + " ".join(notes)
        return AnimateOutput(str(files[0]), [str(f) for f in files], info)

    # ------------------------------------------------------------------ helpers
    @contextlib.contextmanager
    def _model(self):
        """The model for this request alone; yields the list that receives this request's
        "several people" notes (filled when the block ends)."""
        with self._lock:
            start = len(self.model.notes)
            notes: list[str] = []
            try:
                yield notes
            finally:
                notes += self.model.notes[start:]
                del self.model.notes[start:]  # a server runs for long: keep the model's list short

    def _prune(self) -> None:
        """Delete animations older than :data:`OUTPUT_TTL_S` (Gradio has served its own copy)."""
        root = self.workdir / "animations"
        if not root.is_dir():
            return
        cutoff = time.time() - OUTPUT_TTL_S
        for d in root.iterdir():
            if d.stat().st_mtime < cutoff:
                shutil.rmtree(d, ignore_errors=True)


def _person(value: str | int | None) -> str | int | None:
    from spgnet.photo.detect import parse_person

    return None if value in (None, "") else parse_person(value)


# --------------------------------------------------------------------------- Gradio


def import_gradio():
    """``gradio``, with its analytics off (set before the import); SPGNetError when it is
    missing or older than 6 (the page uses Gradio 6's ``launch(theme=..., footer_links=...)``)."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    try:
        import gradio
    except ImportError:
        raise SPGNetError(GRADIO_MISSING) from None
    major = str(getattr(gradio, "__version__", "0")).split(".")[0]
    if not major.isdigit() or int(major) < 6:
        raise SPGNetError(f"spgnet serve needs gradio 6 or newer, found {getattr(gradio, '__version__', '?')}; "
                          "upgrade it with: pip install -U 'gradio>=6'")
    return gradio


def one_line_errors(fn: Callable) -> Callable:
    """``fn`` for Gradio: SPGNetError -> ``gr.Error(message)`` (no traceback in the log); any
    other exception is logged with its traceback and shown as one line."""
    gr = import_gradio()

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except SPGNetError as exc:
            raise gr.Error(html.escape(str(exc)), print_exception=False) from None
        except gr.Error:
            raise
        except Exception as exc:
            log.exception("spgnet serve: unexpected error in %s", getattr(fn, "__name__", "handler"))
            message = f"internal error: {type(exc).__name__}: {exc}".splitlines()[0]
            raise gr.Error(html.escape(message) + " (the server log has the details)", print_exception=False) from None

    return wrapper


def refuse_urls(component):
    """``component`` (an input) with URLs refused: Gradio would otherwise download a file a
    client names by URL (``{"path": "https://..."}``) on the server; here only uploads count."""
    gr = import_gradio()
    move, async_move = component.move_resource_to_block_cache, component.async_move_resource_to_block_cache

    def check(url_or_file_path) -> None:
        if str(url_or_file_path or "").lower().startswith(("http://", "https://")):
            raise gr.Error("this server does not fetch URLs: upload the file", print_exception=False)

    def move_local(url_or_file_path):
        check(url_or_file_path)
        return move(url_or_file_path)

    async def async_move_local(url_or_file_path):
        check(url_or_file_path)
        return await async_move(url_or_file_path)

    component.move_resource_to_block_cache = move_local
    component.async_move_resource_to_block_cache = async_move_local
    return component


def theme():
    """The default theme with the browser's own fonts: nothing fetched from font servers."""
    gr = import_gradio()
    return gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                             font_mono=["ui-monospace", "monospace"])


# model-size images (64x44 .. 256x176) fill their boxes, pixels kept sharp
CSS = """
.spg-pixel img { image-rendering: pixelated; width: 100%; height: 100%; object-fit: contain; }
#transfer-info, #animate-info { min-height: 1.5em; }
"""


def build_app(handlers: ServeHandlers):
    """The page (a ``gr.Blocks``) over ``handlers``; launch it with :func:`launch`."""
    gr = import_gradio()
    h, w = handlers.size
    image_height = 240
    poses, sequences = list(handlers.poses), list(handlers.sequences)
    default_person = str(handlers.model.person)
    default_target_person = str(handlers.model.target_person)

    # Python defaults of None make those API parameters optional for gradio_client (the others
    # take their component's initial value)
    def transfer(source, pose_from, gallery_pose, pose_photo=None, pose_json=None, mirror=False, scale=1.0,
                 shift_x=0.0, shift_y=0.0, seed=0, person=None, target_person=None):
        return handlers.transfer(source, pose_from, gallery_pose, pose_photo, pose_json, mirror, scale, shift_x,
                                 shift_y, seed, person, target_person).as_tuple()

    def animate(source, sequence, sequence_json=None, seed=0, fps=8.0, person=None):
        return handlers.animate(source, sequence, sequence_json, seed, fps, person).as_tuple()

    def output_image(label: str, elem_id: str):
        return gr.Image(label=label, elem_id=elem_id, format="png", type="numpy", interactive=False,
                        height=image_height, elem_classes=["spg-pixel"], buttons=["download"], min_width=110)

    # delete_cache: every 10 minutes, uploads and results older than an hour leave Gradio's
    # cache (all of them when the server stops); the examples are kept
    with gr.Blocks(title="SPGNet: re-pose a photo", analytics_enabled=False,
                   delete_cache=(600, int(OUTPUT_TTL_S))) as app:
        gr.Markdown(
            f"## SPGNet: re-pose a photo\nCheckpoint `{html.escape(str(handlers.checkpoint))}`, model frame {h}x{w} "
            f"(height x width), device {handlers.model.device}. The photo is scaled to the model's height and "
            "padded or cropped around the person. A model trained on synthetic people (the demo) does not make "
            "real photos look real.")
        with gr.Row():
            with gr.Column(scale=2, min_width=260):
                source = gr.Image(label="Source photo (a person, at least 64 px tall)", type="filepath",
                                  image_mode=None, sources=["upload", "webcam"], elem_id="source-photo",
                                  height=image_height)
                if handlers.example_photos:
                    gr.Examples([[str(p)] for p in handlers.example_photos], inputs=[source],
                                label="Example photos", cache_examples=False)
                person = gr.Dropdown(list(PERSON_CHOICES), value=default_person, elem_id="person",
                                     label="Person (largest, nearest the centre, or K-th from the left)")
                seed = gr.Number(label="Seed (same seed, same image)", value=0, precision=0, minimum=0,
                                 maximum=MAX_SEED, elem_id="seed")
            with gr.Column(scale=5):
                with gr.Tabs():
                    with gr.Tab("Transfer", id="transfer-tab"):
                        with gr.Row():
                            with gr.Column(min_width=260):
                                pose_from = gr.Radio(list(POSE_FROM), value="gallery", label="Target pose from",
                                                     elem_id="pose-from")
                                gallery_pose = gr.Dropdown(
                                    poses, value=DEFAULT_GALLERY_POSE if DEFAULT_GALLERY_POSE in poses else poses[0],
                                    label="Gallery pose", elem_id="gallery-pose")
                                pose_photo = gr.Image(label="Pose photo", type="filepath", image_mode=None,
                                                      sources=["upload", "webcam"], elem_id="pose-photo",
                                                      height=image_height - 60, visible=False)
                                target_person = gr.Dropdown(list(PERSON_CHOICES), value=default_target_person,
                                                            label="Person in the pose photo", elem_id="target-person",
                                                            visible=False)
                                pose_json = gr.File(label="OpenPose JSON (its \"size\": [H, W], or canvas_height "
                                                          "and canvas_width, give its frame)",
                                                    file_types=[".json"], type="filepath", elem_id="pose-json",
                                                    visible=False)
                            with gr.Column(min_width=260):
                                mirror = gr.Checkbox(label="Mirror the pose (left and right swap)", value=False,
                                                     elem_id="mirror")
                                scale = gr.Slider(*SCALE_RANGE, value=1.0, step=0.05,
                                                  label="Scale (about the pose's centre)", elem_id="scale")
                                shift_x = gr.Slider(-50, 50, value=0, step=1, label="Shift x (% of the width)",
                                                    elem_id="shift-x")
                                shift_y = gr.Slider(-50, 50, value=0, step=1, label="Shift y (% of the height)",
                                                    elem_id="shift-y")
                                run_transfer = gr.Button("Transfer", variant="primary", elem_id="transfer-button")
                        info = gr.Markdown(elem_id="transfer-info")
                        with gr.Row():
                            src_kp = output_image("Keypoints", "source-keypoints")
                            src_parsing = output_image("Parsing", "source-parsing")
                            tgt_pose = output_image("Target pose", "target-pose")
                            tgt_parsing = output_image("Predicted parsing", "target-parsing")
                            result = output_image("Result", "result")
                    with gr.Tab("Animate", id="animate-tab"):
                        with gr.Row():
                            with gr.Column(min_width=260):
                                sequence = gr.Dropdown(sequences, value=sequences[0] if sequences else None,
                                                       label="Pose sequence", elem_id="sequence")
                                sequence_json = gr.File(label="...or your own pose-sequence JSON (it wins when given)",
                                                        file_types=[".json"], type="filepath",
                                                        elem_id="sequence-json")
                                fps = gr.Slider(*FPS_RANGE, value=8, step=1, label="Frames per second",
                                                elem_id="fps")
                                run_animate = gr.Button("Animate", variant="primary", elem_id="animate-button")
                            with gr.Column(min_width=260):
                                animation = gr.Image(label="Animation", type="filepath", interactive=False,
                                                     height=image_height, elem_id="animation",
                                                     elem_classes=["spg-pixel"])
                                downloads = gr.File(label="Download (GIF, MP4, frame strip)", file_count="multiple",
                                                    interactive=False, elem_id="animation-files")
                        animate_info = gr.Markdown(elem_id="animate-info")

        def show_pose_input(choice: str):
            return (gr.Dropdown(visible=choice == "gallery"), gr.Image(visible=choice == "photo"),
                    gr.Dropdown(visible=choice == "photo"), gr.File(visible=choice == "json"))

        for upload in (source, pose_photo, pose_json, sequence_json):
            refuse_urls(upload)
        pose_from.change(show_pose_input, pose_from, [gallery_pose, pose_photo, target_person, pose_json],
                         queue=False, api_visibility="private")
        run_transfer.click(one_line_errors(transfer),
                           [source, pose_from, gallery_pose, pose_photo, pose_json, mirror, scale, shift_x, shift_y,
                            seed, person, target_person],
                           [result, src_kp, src_parsing, tgt_pose, tgt_parsing, info],
                           api_name="transfer", concurrency_id="model")
        run_animate.click(one_line_errors(animate), [source, sequence, sequence_json, seed, fps, person],
                          [animation, downloads, animate_info], api_name="animate", concurrency_id="model")
    return app


def check_options(port: int, concurrency: int) -> None:
    """One line for a port or concurrency that cannot work (checked before the model loads)."""
    if not 1 <= int(port) <= 65535:
        raise SPGNetError(f"--port {port}: must lie in 1..65535")
    if int(concurrency) < 1:
        raise SPGNetError(f"--concurrency {concurrency}: must be at least 1")


def launch(app, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
           concurrency: int = 1) -> str:
    """Serve ``app`` on ``host:port`` in a background thread (offline, see the module
    docstring; ``app.close()`` stops it); returns its URL. SPGNetError when the address
    cannot be used."""
    check_options(port, concurrency)
    app.queue(default_concurrency_limit=int(concurrency), max_size=MAX_QUEUE)
    try:
        _, url, _ = app.launch(
            server_name=host, server_port=int(port), share=False, inbrowser=False, prevent_thread_lock=True,
            quiet=True, show_error=False, max_file_size=int(max_upload_mb * MB), ssr_mode=False, pwa=False,
            mcp_server=False, enable_monitoring=False, run_history=False, footer_links=["api", "settings"],
            theme=theme(), css=CSS)
    except OSError:
        raise SPGNetError(f"cannot serve on {host}:{port}: the port is in use or the address is not this "
                          "machine's; choose another --port or --host") from None
    return url


def _stop_on_sigterm() -> None:
    """SIGTERM (a service manager, ``kill``) stops the server as Ctrl-C does: cleanly."""
    import signal

    def stop(signum, frame):
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)


def serve(checkpoint: str | os.PathLike | None = None, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
          device: str = "auto", max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB, max_pixels: int = DEFAULT_MAX_PIXELS,
          concurrency: int = 1, overrides: list[str] | None = None, photo_options: dict | None = None) -> int:
    """``spgnet serve``: load the model once, build the page and serve it until Ctrl-C (or SIGTERM)."""
    checkpoint = find_checkpoint(checkpoint)
    check_options(port, concurrency)
    import_gradio()  # before the model loads: a missing gradio is one line, at once
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    with ServeHandlers(checkpoint, device, overrides, max_upload_mb, max_pixels, photo_options) as handlers:
        app = build_app(handlers)
        url = launch(app, host, port, max_upload_mb, concurrency)
        h, w = handlers.size
        print(f"spgnet serve: {url} (checkpoint {checkpoint}, model {h}x{w}, device {handlers.model.device}); "
              "Ctrl-C stops it", flush=True)
        _stop_on_sigterm()
        try:
            while app.is_running:
                time.sleep(0.2)
        except KeyboardInterrupt:
            print("spgnet serve: stopping", flush=True)
        finally:
            app.close()
    return 0


__all__ = [
    "GRADIO_MISSING", "DEMO_CHECKPOINT", "DEFAULT_HOST", "DEFAULT_PORT", "DEFAULT_MAX_UPLOAD_MB", "DEFAULT_MAX_PIXELS",
    "MAX_FRAMES", "GalleryEntry", "TransferOutput", "AnimateOutput", "ServeHandlers", "find_checkpoint",
    "nudge_pose", "json_frame", "load_gallery", "write_example_photos", "import_gradio", "one_line_errors",
    "refuse_urls", "build_app", "check_options", "launch", "serve",
]
