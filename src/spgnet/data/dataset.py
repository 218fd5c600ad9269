"""The pair dataset over the PATN/GFLA layout (docs/design.md §4) and its loader.

One sample is a (source, target) pair of the same person, sized to ``cfg.load_size``:

    src_image, tgt_image      (3, H, W) float32   RGB in [-1, 1]
    src_kp, tgt_kp            (18, 2) float32     OpenPose-18 (x, y) at load size, missing -1
    src_parsing, tgt_parsing  (H, W) int64        CIHP labels 0..19
    tgt_parsing_provided      (H, W) int64        the pair's provided target parsing (e.g. the
                                                  official stage-1 prediction) [only with
                                                  provided_parsing=True]
    src_pose, tgt_pose        (C, H, W) float32   pose maps, C = cfg.pose.channels (Eq. 2-3)
                                                  [only with cfg.pose_in_loader]
    src_parsing_onehot, tgt_parsing_onehot
                              (20, H, W) float32  one-hot labels [only with cfg.onehot_in_loader]
    flow                      (2, H, W) float32   backward flow target->source in pixels
    vis                       (1, H, W) float32   {0 visible, 1 invisible, 2 background}
    from_name, to_name        str                 names as written in the pairs file
    pair_name                 str                 ``<from-stem>___<to-stem>``

``flow``/``vis`` are present only when ``cfg.use_flow`` (or ``return_flow=True``).

Geometry, applied identically to images, keypoints, parsing and flow:

1. optional ``cfg.crop = (top, left, h, w)`` on the disk image; keypoints shift by
   ``(-left, -top)`` and the ones falling outside the crop become missing;
2. resize to ``cfg.load_size``: images bilinear (antialiased), parsing and flow/vis
   ``nearest-exact`` (pixel-centre nearest). Keypoints map pixel centres to pixel
   centres: ``x' = (x + 0.5) * sx - 0.5``. The flow field is resampled at the new
   pixel centres *and* its displacement rescaled: source coordinates are transformed
   with the source image's crop/scale, so ``warp(resized source, resized flow)``
   still reproduces the resized target. Flow is resampled nearest (not bilinear)
   because it is discontinuous at part boundaries and an average of two parts'
   displacements points at neither part; vis uses the same pixels, so the two agree
   (an edge-aware variant, bilinear where the four taps agree, measured no better on
   the synthetic ground truth);
3. optional random horizontal flip of the *whole pair* (``cfg.hflip``, train split
   only): images and maps mirrored, keypoints mirrored with the left/right index
   permutation, parsing labels with :func:`spgnet.parsing.flip_labels`, flow x negated.

Where the pose maps and the one-hot parsing are made (``cfg.pose_in_loader``,
``cfg.onehot_in_loader``): pose maps default to the loader workers (the exp/sqrt work
runs in parallel with the model); the one-hot parsing defaults to the device, because
a one-hot map is a single ``scatter`` there but 20 float channels per image to copy
between processes here (at 256x176 it cut loader throughput from ~110 to ~80
samples/s on 2 cores). Always pass a batch through :func:`complete_batch`: it moves it
to the device and adds whatever the loader left out, with the very same functions
(:func:`spgnet.pose.pose_maps_from_config`, :func:`spgnet.parsing.one_hot`), so both
placements give identical tensors. On a GPU set ``pose_in_loader: false`` too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset

from spgnet import SPGNetError
from spgnet.config import DatasetConfig
from spgnet.data.layout import (  # noqa: F401  (re-exported: the dataset's names and files)
    IMAGE_SUFFIXES, PAIR_SEPARATOR, SPLITS, SplitPaths, image_stem, index_image_dir, pair_name,
    parse_pairs_rows, read_pairs_csv, write_pairs_csv,
)
from spgnet.utils.io import load_label_png
from spgnet.data.corr import read_corr
from spgnet.parsing import NUM_CLASSES, flip_labels, one_hot
from spgnet.pose import flip_keypoints, is_missing, pose_maps_from_config, read_annotation_csv, transform_keypoints

# --------------------------------------------------------------------------- decoding


def decode_rgb(path: Path) -> torch.Tensor:
    """Image file -> ``(3, H, W)`` uint8 tensor; SPGNetError naming the file."""
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode != "RGB":
                im = im.convert("RGB")
            arr = np.asarray(im)
    except FileNotFoundError:
        raise SPGNetError(f"{path}: image file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise SPGNetError(f"{path}: cannot decode image ({exc})") from None
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)


def check_crop(crop, height: int, width: int, path: Path) -> None:
    top, left, h, w = crop
    if top < 0 or left < 0 or h <= 0 or w <= 0 or top + h > height or left + w > width:
        raise SPGNetError(f"{path}: data.crop {list(crop)} does not fit in the {height}x{width} image")


# --------------------------------------------------------------------------- geometry


def _crop_resize_keypoints(kp: np.ndarray, crop, scale_xy: tuple[float, float]) -> np.ndarray:
    """``(18, 2)`` disk keypoints -> load-size keypoints (crop shift, outside -> missing, centre scaling)."""
    kp = np.asarray(kp, dtype=np.float32)
    if crop is not None:
        top, left, h, w = crop
        missing = is_missing(kp)
        kp = kp - np.array([left, top], dtype=np.float32)
        outside = (kp[:, 0] < -0.5) | (kp[:, 1] < -0.5) | (kp[:, 0] > w - 0.5) | (kp[:, 1] > h - 0.5)
        kp = np.where((missing | outside)[:, None], np.float32(-1), kp)
    return np.asarray(transform_keypoints(kp, scale_xy, (0.0, 0.0)), dtype=np.float32)


def resize_tensor(x: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    """``(C, H, W)`` -> ``(C, *size)``; a no-op when the size already matches."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if mode == "bilinear":
        return F.interpolate(x[None], size=size, mode="bilinear", align_corners=False, antialias=True)[0]
    return F.interpolate(x[None], size=size, mode="nearest-exact")[0]


def resize_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(H, W)`` label map -> ``size`` by nearest at pixel centres (the loader's parsing resize)."""
    return resize_tensor(torch.from_numpy(np.ascontiguousarray(labels))[None], tuple(size), "nearest")[0].numpy()


def _transform_flow(flow: np.ndarray, vis: np.ndarray, crop, src_hw, size) -> tuple[torch.Tensor, torch.Tensor]:
    """Disk flow/vis of the target -> load size, consistent with the images' crop + resize.

    ``flow (2, Ht, Wt)`` backward displacement (source = p + flow(p)) in disk pixels;
    ``src_hw`` the source image's disk size. The displacement and vis are resampled
    nearest at the load-size pixel centres ``p'`` and the displacement is mapped through
    both images' geometry: ``p = (p' + 0.5) / s_t - 0.5``, ``q = p + flow``,
    ``flow' = (q + 0.5) * s_s - 0.5 - p'``, i.e. ``flow' = s * flow`` when source and
    target share a size. A crop shifts both images alike and leaves the displacement
    unchanged. Returns ``(2, H, W)`` and ``(1, H, W)`` float32 at ``size``.
    """
    tgt_h, tgt_w = flow.shape[1:]
    src_h, src_w = src_hw
    disp = torch.from_numpy(np.ascontiguousarray(flow, dtype=np.float32))
    vis_t = torch.from_numpy(np.ascontiguousarray(vis, dtype=np.float32))[None]
    if crop is not None:
        top, left, h, w = crop
        disp, vis_t = disp[:, top : top + h, left : left + w], vis_t[:, top : top + h, left : left + w]
        src_h, src_w, tgt_h, tgt_w = h, w, h, w
    if (src_h, src_w) == (tgt_h, tgt_w) == tuple(size):
        return disp.contiguous(), vis_t.contiguous()
    disp, vis_t = resize_tensor(disp, size, "nearest"), resize_tensor(vis_t, size, "nearest")
    out = torch.empty_like(disp)
    for c, (n_out, n_tgt, n_src) in enumerate(((size[1], tgt_w, src_w), (size[0], tgt_h, src_h))):
        g = torch.arange(n_out, dtype=torch.float32)
        g = g[None, :] if c == 0 else g[:, None]  # x varies along columns, y along rows
        s_t, s_s = n_out / n_tgt, n_out / n_src
        out[c] = ((g + 0.5) / s_t + disp[c]) * s_s - 0.5 - g
    return out, vis_t.contiguous()


# --------------------------------------------------------------------------- the dataset


class PairDataset(Dataset):
    """Pose-transfer pairs of one split (see the module docstring for the sample dict).

    Indexing (pairs, annotations, the image folder) happens once here and fails with
    an SPGNetError naming the file and line of the first problem; ``spgnet check``
    lists them all.
    """

    def __init__(self, cfg: DatasetConfig, split: str, return_flow: bool | None = None,
                 provided_parsing: bool = False):
        self.cfg = cfg
        self.split = split
        self.paths = SplitPaths.of(cfg, split)
        self.return_flow = cfg.use_flow if return_flow is None else bool(return_flow)
        # also return the pair's provided target parsing (pred_parsing_dir) as tgt_parsing_provided
        self.provided_parsing = bool(provided_parsing)
        if self.provided_parsing and not self.paths.pred_parsing_dir.is_dir():
            raise SPGNetError(f"{self.paths.pred_parsing_dir}: folder of provided target parsings not found "
                              "(data.pred_parsing_dir; `spgnet import-official` writes it from the official "
                              "release's pred_seg/)")
        self.size = (int(cfg.load_size[0]), int(cfg.load_size[1]))
        self.crop = tuple(int(v) for v in cfg.crop) if cfg.crop is not None else None
        if self.crop is not None and len(self.crop) != 4:
            raise SPGNetError(f"data.crop must be [top, left, height, width], got {cfg.crop}")
        self.hflip = bool(cfg.hflip) and split == "train"

        if not self.paths.image_dir.is_dir():
            raise SPGNetError(f"{self.paths.image_dir}: image folder of split '{split}' not found")
        annotations = read_annotation_csv(self.paths.annotation_file)
        self._kp = {image_stem(name): np.asarray(kp, dtype=np.float32) for name, kp in annotations.items()}
        files = index_image_dir(self.paths.image_dir)
        pairs = read_pairs_csv(self.paths.pairs_file)
        bad = []
        for line, *names in pairs:
            for name in names:
                stem = image_stem(name)
                if stem not in self._kp:
                    bad.append(f"line {line}: '{name}' has no row in {self.paths.annotation_file.name}")
                elif stem not in files:
                    bad.append(f"line {line}: '{name}' has no image file in {self.paths.image_dir}")
        if bad:
            more = f" (and {len(bad) - 1} more; run `spgnet check` for the full list)" if len(bad) > 1 else ""
            raise SPGNetError(f"{self.paths.pairs_file} {bad[0]}{more}")
        self._files = files
        self.pairs: list[tuple[str, str]] = [(a, b) for _, a, b in pairs]

    def __len__(self) -> int:
        return len(self.pairs)

    def load_item(self, name: str):
        """One image with keypoints and parsing, cropped and resized; also its disk (H, W)."""
        stem = image_stem(name)
        path = self.paths.image_dir / self._files[stem]
        image = decode_rgb(path)
        h, w = disk_hw = tuple(image.shape[1:])
        parsing = self.load_labels(self.paths.parsing(stem), disk_hw, path.name)
        if self.crop is not None:
            check_crop(self.crop, h, w, path)
            top, left, ch, cw = self.crop
            image = image[:, top : top + ch, left : left + cw]
            h, w = ch, cw
        scale = (self.size[1] / w, self.size[0] / h)
        kp = _crop_resize_keypoints(self._kp[stem], self.crop, scale)
        # antialiased bilinear weights are positive: the result stays in [0, 255]
        image = resize_tensor(image.float(), self.size, "bilinear").div_(127.5).sub_(1.0)
        return image, torch.from_numpy(kp), parsing, disk_hw

    def load_labels(self, parsing_path: Path, disk_hw: tuple[int, int], image_name: str) -> torch.Tensor:
        """A CIHP label PNG of an image of disk size ``disk_hw``: checked, cropped (``data.crop``)
        and resized (nearest) to the load size -> ``(H, W)`` int64."""
        h, w = disk_hw
        labels = load_label_png(parsing_path)
        if labels.shape != (h, w):
            raise SPGNetError(f"{parsing_path}: parsing is {labels.shape[0]}x{labels.shape[1]}, image {image_name} is {h}x{w}")
        if labels.max(initial=0) >= NUM_CLASSES:
            raise SPGNetError(f"{parsing_path}: parsing label {int(labels.max())} is not a CIHP label (0..{NUM_CLASSES - 1})")
        parsing = torch.from_numpy(labels)[None]
        if self.crop is not None:
            top, left, ch, cw = self.crop
            parsing = parsing[:, top : top + ch, left : left + cw]
        return resize_tensor(parsing, self.size, "nearest")[0].long()

    def get(self, index: int, flip: bool | None = None) -> dict:
        """Sample ``index``; ``flip`` forces (True/False) or draws (None, when hflip is on) the mirror."""
        a, b = self.pairs[index]
        src_image, src_kp, src_parsing, src_hw = self.load_item(a)
        tgt_image, tgt_kp, tgt_parsing, tgt_hw = self.load_item(b)
        sample: dict = {}
        if self.return_flow:
            flow_path = self.paths.flow(a, b)
            flow, vis = read_corr(flow_path)
            if flow.shape[1:] != tgt_hw:
                raise SPGNetError(f"{flow_path}: flow is {flow.shape[1]}x{flow.shape[2]}, target image is {tgt_hw[0]}x{tgt_hw[1]}")
            sample["flow"], sample["vis"] = _transform_flow(flow, vis, self.crop, src_hw, self.size)
        if flip is None:
            flip = self.hflip and bool(torch.rand(()) < 0.5)
        kp = torch.stack([src_kp, tgt_kp])  # (2, 18, 2)
        parsing = [src_parsing, tgt_parsing]
        if self.provided_parsing:
            parsing.append(self.load_labels(self.paths.pred_parsing(a, b), tgt_hw, f"{b} (target of the pair)"))
        parsing = torch.stack(parsing)  # (2 or 3, H, W): source, target[, provided target]
        images = torch.stack([src_image, tgt_image])  # (2, 3, H, W)
        if flip:
            width = self.size[1]
            images = images.flip(-1)
            parsing = torch.from_numpy(flip_labels(parsing.flip(-1).numpy()))
            kp = torch.as_tensor(np.asarray(flip_keypoints(kp.numpy(), width), dtype=np.float32))
            if "flow" in sample:
                sample["flow"] = sample["flow"].flip(-1) * torch.tensor([-1.0, 1.0])[:, None, None]
                sample["vis"] = sample["vis"].flip(-1)
        sample.update(
            src_image=images[0].contiguous(), tgt_image=images[1].contiguous(),
            src_kp=kp[0].contiguous(), tgt_kp=kp[1].contiguous(),
            src_parsing=parsing[0].contiguous(), tgt_parsing=parsing[1].contiguous(),
        )
        if self.provided_parsing:
            sample["tgt_parsing_provided"] = parsing[2].contiguous()
        if self.cfg.pose_in_loader:
            pose = pose_maps_from_config(kp, self.size, self.cfg.pose)  # (2, C, H, W)
            sample["src_pose"], sample["tgt_pose"] = pose[0], pose[1]
        if self.cfg.onehot_in_loader:
            oh = one_hot(parsing[:2])  # (2, 20, H, W)
            sample["src_parsing_onehot"], sample["tgt_parsing_onehot"] = oh[0], oh[1]
        sample.update(from_name=a, to_name=b, pair_name=pair_name(a, b))
        return sample

    def __getitem__(self, item: int | tuple[int, bool]) -> dict:
        """``ds[i]``, or ``ds[(i, flip)]`` from a sampler that draws the flips itself."""
        if isinstance(item, tuple):
            index, flip = item
            return self.get(int(index), flip=bool(flip))
        return self.get(item)


# --------------------------------------------------------------------------- batches and loaders


def original_error(exc: BaseException) -> BaseException:
    """The error a DataLoader worker raised, as the user should see it.

    PyTorch re-raises a worker's exception in the main process as the same type with the
    worker's whole traceback as its message ("Caught SPGNetError in DataLoader worker
    process 0. Original Traceback (most recent call last): ..."). This returns an
    exception of that type whose message is the original one (the traceback's last line,
    e.g. ``data/test/a.jpg: cannot decode image (...)``); any other exception is returned
    unchanged. Every consumer of a loader (train, generate, evaluate, the CLI) uses it.
    """
    text = str(exc)
    if "in DataLoader worker process" not in text or "Original Traceback" not in text:
        return exc
    lines = [line for line in text.strip().splitlines() if line.strip()]
    name, sep, message = lines[-1].partition(": ")
    if not sep or " " in name:  # "ValueError" / "spgnet.SPGNetError": message
        message = lines[-1]
    try:
        clean = type(exc)(message.strip())
    except Exception:  # an exception type that takes other arguments
        return exc
    return clean


def complete_batch(batch: dict, cfg: DatasetConfig, device: torch.device | str | None = None) -> dict:
    """Move a batch to ``device`` and add the pose maps / one-hot parsing the loader left out.

    Uses the same functions as the loader, so the result does not depend on where the
    maps were made. Returns a new dict; strings pass through.
    """
    out = {k: (v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) and device is not None else v) for k, v in batch.items()}
    size = tuple(out["src_image"].shape[-2:])
    for side in ("src", "tgt"):
        if f"{side}_pose" not in out:
            out[f"{side}_pose"] = pose_maps_from_config(out[f"{side}_kp"], size, cfg.pose)
        if f"{side}_parsing_onehot" not in out:
            out[f"{side}_parsing_onehot"] = one_hot(out[f"{side}_parsing"])
    return out


def make_loader(
    cfg: DatasetConfig,
    split: str,
    batch_size: int,
    shuffle: bool,
    workers: int = 2,
    distributed: bool = False,
    drop_last: bool | None = None,
    return_flow: bool | None = None,
) -> DataLoader:
    """A DataLoader over :class:`PairDataset` (default collate).

    With ``distributed`` a :class:`DistributedSampler` shards the pairs over ranks
    (call ``loader.sampler.set_epoch(epoch)`` each epoch). ``drop_last`` defaults to
    ``shuffle`` (training drops the ragged batch, evaluation keeps every pair).
    """
    dataset = PairDataset(cfg, split, return_flow=return_flow)
    drop_last = shuffle if drop_last is None else drop_last
    sampler = None
    if distributed:
        from torch.utils.data.distributed import DistributedSampler

        sampler = DistributedSampler(dataset, shuffle=shuffle, drop_last=drop_last)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle if sampler is None else False,
        sampler=sampler,
        num_workers=workers,
        drop_last=drop_last,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=workers > 0,
    )


__all__ = [
    "IMAGE_SUFFIXES", "PAIR_SEPARATOR", "SPLITS", "SplitPaths", "PairDataset", "complete_batch", "make_loader",
    "original_error",
    "resize_labels",
    "image_stem", "pair_name", "index_image_dir", "parse_pairs_rows", "read_pairs_csv", "write_pairs_csv",
]
