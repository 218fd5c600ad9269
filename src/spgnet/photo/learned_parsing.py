"""An optional learned human parser for your own photos (docs/design.md §11, docs/parsers.md):
a SegFormer human-parsing model, loaded with Hugging Face ``transformers`` from a **local**
folder only, its labels mapped to the project's CIHP-20 labels and combined with the
person mask of :mod:`spgnet.photo.detect`.

The default parser of the photo pipeline is :func:`spgnet.photo.coarse_parsing.coarse_parsing`
(mask + keypoints, no weights); ``--parser segformer --parser-weights DIR`` swaps in this
one. Nothing is downloaded: the model is read with ``local_files_only=True`` from ``DIR``
(or from the environment variable ``SPGNET_PARSER_WEIGHTS`` when no folder is given), and
only ``model.safetensors`` weights are accepted (nothing is unpickled, docs/design.md §13).

**Input size and normalisation** come from the folder's ``preprocessor_config.json`` (the
``SegformerImageProcessor`` settings ``size``, ``do_resize``, ``do_rescale``,
``rescale_factor``, ``do_normalize``, ``image_mean``, ``image_std``); without that file the
image is resized to 512x512 and normalised with the ImageNet mean (0.485, 0.456, 0.406) and
std (0.229, 0.224, 0.225) after scaling to [0, 1], the SegFormer processor's defaults. The
preprocessing runs in torch (bilinear resize with antialiasing), the forward pass under
``torch.inference_mode()`` in eval mode; the logits are upsampled bilinearly to the photo's
size, the argmax is taken and mapped to CIHP-20 through a lookup table. One image at a
time, no randomness: the same photo and weights give the same labels.

**Label sets.** A model's ``config.id2label`` is matched **by name**, not by index order:
names are normalised (lowercase; spaces, underscores and hyphens removed) and looked up in
the explicit tables below, so ``"Upper-clothes"``, ``"UpperClothes"`` and ``"upper_clothes"``
are one label and a model whose classes come in another order still maps correctly. A
model with a name that no table knows is refused with one error naming the folder and the
unknown names. Left/right are the person's, as in CIHP/LIP (the names are mapped as they
are; a model trained with the image's left/right would come out mirrored).

* **LIP-20** and **CIHP-20**: the project's own classes (:data:`spgnet.parsing.CIHP_LABELS`,
  index 10 = jumpsuits as in LIP), one to one.
* CIHP's **Torso-skin** (index 10 in the CIHP release, where LIP has jumpsuits) -> **face**:
  it is skin, and SPGNet's face region is the one that carries the person's skin (the
  coarse parser labels the neck face too, and the neck and the neckline are where torso
  skin shows in most clothed photos). Upper-clothes would mix skin into the garment's
  style; background would cut a hole in the person. The cost: a large bare torso becomes
  a face-labelled region.
* **ATR-18** (e.g. the ``id2label`` of the widely used ``segformer_b2_clothes`` model): the
  garments and body parts it shares with CIHP map to their namesakes; **Belt -> pants**: a
  belt sits on the waistband of the lower garment and moves with it (pants and skirt are
  one class of the coarse-8 merge, and pants, skirt, dress and jumpsuits one "bottoms"
  group of :mod:`spgnet.flow.part_affine`); **Bag -> background**: SPGNet's regions are body parts
  and garments whose styles are transferred to a new pose, and a bag is neither. With a
  person mask, bag pixels inside the mask are then filled from the neighbouring labels
  (the rule below).

**Combination with the person mask** (when ``mask`` is given): pixels outside the mask
are background 0; pixels inside it that the parser calls background take the label of the
**nearest** (Euclidean) pixel inside the mask that the parser does not call background
(``scipy.ndimage.distance_transform_edt(..., return_indices=True)``); if the parser found
nothing inside the mask, the whole mask is upper-clothes (the coarse parser's fallback
too). Parser labels outside the mask are never used as sources.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from spgnet import SPGNetError
from spgnet.parsing import CIHP_LABELS, LABEL_INDEX
from spgnet.photo.local_models import load_model, model_folder, weights_or_env

PARSERS = ("coarse", "segformer")
WEIGHTS_ENV = "SPGNET_PARSER_WEIGHTS"

UPPER = LABEL_INDEX["upper-clothes"]

# Without a preprocessor_config.json: the SegformerImageProcessor defaults.
DEFAULT_INPUT_SIZE = (512, 512)  # (H, W)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Source label name (as models spell it) -> CIHP-20 name, one explicit table per label set.
ATR18_TO_CIHP: dict[str, str] = {
    "Background": "background",
    "Hat": "hat",
    "Hair": "hair",
    "Sunglasses": "sunglasses",
    "Upper-clothes": "upper-clothes",
    "Skirt": "skirt",
    "Pants": "pants",
    "Dress": "dress",
    "Belt": "pants",  # on the lower garment's waistband, moves with it
    "Left-shoe": "left-shoe",
    "Right-shoe": "right-shoe",
    "Face": "face",
    "Left-leg": "left-leg",
    "Right-leg": "right-leg",
    "Left-arm": "left-arm",
    "Right-arm": "right-arm",
    "Bag": "background",  # not a body part or garment (inside the mask: filled from its neighbours)
    "Scarf": "scarf",
}
LIP20_TO_CIHP: dict[str, str] = {
    "Background": "background",
    "Hat": "hat",
    "Hair": "hair",
    "Glove": "glove",
    "Sunglasses": "sunglasses",
    "UpperClothes": "upper-clothes",
    "Dress": "dress",
    "Coat": "coat",
    "Socks": "socks",
    "Pants": "pants",
    "Jumpsuits": "jumpsuits",
    "Scarf": "scarf",
    "Skirt": "skirt",
    "Face": "face",
    "Left-arm": "left-arm",
    "Right-arm": "right-arm",
    "Left-leg": "left-leg",
    "Right-leg": "right-leg",
    "Left-shoe": "left-shoe",
    "Right-shoe": "right-shoe",
}
CIHP20_TO_CIHP: dict[str, str] = {
    **{name: name for name in CIHP_LABELS},
    "Torso-skin": "face",  # skin: the face region carries the person's skin (module docstring)
}
LABEL_SETS: dict[str, dict[str, str]] = {"ATR-18": ATR18_TO_CIHP, "LIP-20": LIP20_TO_CIHP, "CIHP-20": CIHP20_TO_CIHP}


def normalise_label(name: str) -> str:
    """A label name for matching: lowercase, without spaces, underscores and hyphens."""
    return "".join(c for c in str(name).lower() if c not in " _-")


def _normalised_tables() -> dict[str, dict[str, int]]:
    tables = {}
    for set_name, table in LABEL_SETS.items():
        tables[set_name] = {normalise_label(k): LABEL_INDEX[v] for k, v in table.items()}
    return tables


def _all_names(tables: dict[str, dict[str, int]]) -> dict[str, int]:
    """Every known normalised name -> CIHP index (a name means one label in every set)."""
    out: dict[str, int] = {}
    for table in tables.values():
        for name, index in table.items():
            if out.setdefault(name, index) != index:
                raise RuntimeError(f"label {name!r} maps to two CIHP labels in LABEL_SETS")
    return out


_TABLES = _normalised_tables()
_ALL_NAMES = _all_names(_TABLES)


def match_label_set(id2label: dict, where: str = "the model") -> tuple[str, np.ndarray]:
    """``config.id2label`` -> (label set name, ``(num_labels,)`` uint8 source index -> CIHP index).

    The set is the first of :data:`LABEL_SETS` that holds every name (after
    :func:`normalise_label`); names from several sets (they never disagree) give ``"mixed"``.
    Raises :class:`SPGNetError` naming ``where`` and the unknown names.
    """
    if not id2label:
        raise SPGNetError(f"{where}: the model config has no id2label (its class names)")
    try:
        ids = sorted(int(k) for k in id2label)
    except (TypeError, ValueError):
        raise SPGNetError(f"{where}: id2label has non-integer class ids {sorted(map(str, id2label))}") from None
    if not ids or ids != list(range(len(ids))):
        raise SPGNetError(f"{where}: id2label must number the classes 0..N-1, got ids {ids}")
    by_id = {int(k): str(v) for k, v in id2label.items()}
    names = [by_id[i] for i in ids]
    keys = [normalise_label(n) for n in names]
    unknown = [n for n, k in zip(names, keys) if k not in _ALL_NAMES]
    if unknown:
        raise SPGNetError(
            f"{where}: labels {', '.join(repr(n) for n in unknown)} are not in any known label set "
            f"({', '.join(LABEL_SETS)}); a human-parsing model with those labels is needed (see docs/parsers.md)")
    set_name = next((s for s, t in _TABLES.items() if all(k in t for k in keys)), "mixed")
    return set_name, np.array([_ALL_NAMES[k] for k in keys], dtype=np.uint8)


def _combine_with_mask(labels: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Parser labels ``(H, W)`` + person ``mask (H, W)`` bool -> combined labels (module docstring)."""
    from scipy.ndimage import distance_transform_edt

    labels = np.asarray(labels)
    out = np.where(mask, labels, 0).astype(np.uint8)
    holes = mask & (labels == 0)
    if not holes.any():
        return out
    sources = mask & (labels != 0)
    if not sources.any():
        out[holes] = UPPER
        return out
    # the transform gives every pixel the index of its nearest zero: the sources are the zeros
    rows, cols = distance_transform_edt(~sources, return_distances=False, return_indices=True)
    out[holes] = labels[rows[holes], cols[holes]]
    return out


def _input_settings(folder: Path) -> dict:
    """The preprocessing of the folder's ``preprocessor_config.json`` or the defaults."""
    settings = {"size": DEFAULT_INPUT_SIZE, "resize": True, "scale": 1.0 / 255.0,
                "mean": IMAGENET_MEAN, "std": IMAGENET_STD}
    path = folder / "preprocessor_config.json"
    if not path.is_file():
        return settings
    try:
        cfg = json.loads(path.read_text())
        size = cfg.get("size", {"height": DEFAULT_INPUT_SIZE[0], "width": DEFAULT_INPUT_SIZE[1]})
        if isinstance(size, int):
            size = (size, size)
        elif "height" in size and "width" in size:
            size = (int(size["height"]), int(size["width"]))
        elif "shortest_edge" in size:
            size = (int(size["shortest_edge"]),) * 2
        else:
            raise ValueError(f"size {size} has no height/width")
        if min(size) < 1:
            raise ValueError(f"size {size} is not positive")
        settings["size"] = size
        settings["resize"] = bool(cfg.get("do_resize", True))
        settings["scale"] = float(cfg.get("rescale_factor", 1.0 / 255.0)) if cfg.get("do_rescale", True) else 1.0
        if cfg.get("do_normalize", True):
            mean, std = cfg.get("image_mean", IMAGENET_MEAN), cfg.get("image_std", IMAGENET_STD)
            mean, std = [mean] * 3 if np.isscalar(mean) else mean, [std] * 3 if np.isscalar(std) else std
            if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
                raise ValueError(f"image_mean {mean} / image_std {std} are not 3 values (std > 0)")
            settings["mean"], settings["std"] = tuple(map(float, mean)), tuple(map(float, std))
        else:
            settings["mean"], settings["std"] = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    except (ValueError, TypeError, AttributeError, KeyError) as e:
        raise SPGNetError(f"{path}: not a usable image processor config ({e})") from None
    return settings


class SegformerParser:
    """A SegFormer human parser from a local folder: ``parser(image, mask=None) -> (H, W)`` uint8
    CIHP-20 labels (module docstring).

    ``weights``: a folder with ``config.json`` (a ``segformer`` model with human-parsing
    labels), ``model.safetensors`` and optionally ``preprocessor_config.json``, as written
    by ``save_pretrained`` or ``huggingface-cli download REPO --local-dir DIR``.
    Attributes: ``label_set`` (``"ATR-18"``, ``"LIP-20"``, ``"CIHP-20"`` or ``"mixed"``),
    ``source_labels`` (the model's names by class id), ``table`` (class id -> CIHP index),
    ``input_size`` ((H, W) fed to the model, None when the folder says not to resize).
    """

    def __init__(self, weights: str | os.PathLike, device: str = "cpu"):
        try:
            from transformers import SegformerForSemanticSegmentation
        except ImportError:
            raise SPGNetError("the SegFormer parser needs transformers; install it with: "
                              "pip install 'spgnet[parser]'") from None
        where = f"parser weights {Path(weights).expanduser()}"
        folder, config = model_folder(weights, where, "segformer", "SegFormer")
        self.label_set, table = match_label_set(config.get("id2label") or {}, where)
        try:
            self.device = torch.device(device)
        except (RuntimeError, TypeError) as e:
            raise SPGNetError(f"parser device {device!r}: {e}") from None

        model = load_model(SegformerForSemanticSegmentation, folder, where, "SegFormer", "semantic-segmentation")
        if model.config.num_labels != len(table):
            raise SPGNetError(f"{where}: {model.config.num_labels} classes but {len(table)} label names")
        self.source_labels = tuple(str(model.config.id2label[i]) for i in range(len(table)))
        self.table = table
        self.model = model.to(self.device)
        self.weights = folder
        settings = _input_settings(folder)
        self.input_size = settings["size"] if settings["resize"] else None
        self._scale = settings["scale"]
        self._mean = torch.tensor(settings["mean"], dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(settings["std"], dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self._lookup = torch.as_tensor(table, device=self.device)

    def logits(self, image: np.ndarray) -> torch.Tensor:
        """``(H, W, 3)`` uint8 RGB -> ``(1, num_labels, H, W)`` float logits at the photo's size."""
        h, w = image.shape[:2]
        x = torch.from_numpy(np.array(image, dtype=np.uint8, copy=True)).to(self.device)
        x = x.permute(2, 0, 1)[None].float()
        if self.input_size is not None and tuple(self.input_size) != (h, w):
            x = F.interpolate(x, size=tuple(self.input_size), mode="bilinear", align_corners=False, antialias=True)
        x = (x * self._scale - self._mean) / self._std
        out = self.model(pixel_values=x).logits
        return F.interpolate(out.float(), size=(h, w), mode="bilinear", align_corners=False)

    def __call__(self, image: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """CIHP-20 labels ``(H, W)`` uint8 of an ``(H, W, 3)`` uint8 RGB photo, combined with the
        person ``mask (H, W)`` bool when it is given (module docstring)."""
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise SPGNetError(f"SegFormer parser: the image must be (H, W, 3) uint8 RGB, got shape "
                              f"{image.shape} {image.dtype}")
        if min(image.shape[:2]) < 1:
            raise SPGNetError(f"SegFormer parser: empty image of shape {image.shape}")
        if mask is not None:
            mask = np.asarray(mask)
            if mask.shape != image.shape[:2]:
                raise SPGNetError(f"SegFormer parser: the mask must be (H, W) = {image.shape[:2]}, got {mask.shape}")
            mask = mask.astype(bool)
        with torch.inference_mode():
            labels = self._lookup[self.logits(image).argmax(1)[0]].cpu().numpy()
        return labels if mask is None else _combine_with_mask(labels, mask)


def load_parser(kind: str, weights: str | os.PathLike | None = None, device: str = "cpu") -> SegformerParser | None:
    """The parser chosen by ``--parser KIND``: None for ``"coarse"`` (the caller uses
    :func:`spgnet.photo.coarse_parsing.coarse_parsing`; ``weights`` is ignored), a
    :class:`SegformerParser` for ``"segformer"`` with ``weights`` or, when that is None, the
    folder in the environment variable ``SPGNET_PARSER_WEIGHTS``."""
    if kind not in PARSERS:
        raise SPGNetError(f"--parser {kind!r}: unknown parser; choose one of {', '.join(PARSERS)}")
    if kind == "coarse":
        return None
    weights = weights_or_env(weights, WEIGHTS_ENV, "--parser segformer needs --parser-weights DIR (a local SegFormer "
                             "human-parsing model; nothing is downloaded)")
    return SegformerParser(weights, device=device)


__all__ = ["PARSERS", "WEIGHTS_ENV", "LABEL_SETS", "ATR18_TO_CIHP", "LIP20_TO_CIHP", "CIHP20_TO_CIHP",
           "SegformerParser", "load_parser", "match_label_set", "normalise_label"]
