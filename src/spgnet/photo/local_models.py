"""Hugging Face ``transformers`` models read from a **local** folder only, for the optional
learned parts of the photo pipeline (the SegFormer parser of :mod:`.learned_parsing`, the
ViTPose keypoints of :mod:`.learned_keypoints`).

A folder is what ``save_pretrained`` or ``huggingface-cli download REPO --local-dir DIR``
writes: ``config.json`` (whose ``model_type`` must be the expected one) and
``model.safetensors`` (or its sharded index). Pickled ``pytorch_model.bin`` weights are
refused (nothing is unpickled, docs/design.md §13). Loading passes ``local_files_only=True``
and ``use_safetensors=True``, and a folder whose weights do not fill the model (missing or
mismatched tensors) is refused instead of running with random layers. Every problem is one
:class:`~spgnet.SPGNetError` line naming the folder.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from spgnet import SPGNetError

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")
PICKLE_FILES = ("pytorch_model.bin", "pytorch_model.bin.index.json")


@contextlib.contextmanager
def quiet_transformers():
    """No progress bars and no load report while loading (the load info is checked here)."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    if bars:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def weights_or_env(weights: str | os.PathLike | None, env: str, missing: str) -> str | os.PathLike:
    """``weights``, or when it is None or empty the folder named by the environment variable
    ``env``; neither: :class:`~spgnet.SPGNetError` with the message ``missing``."""
    if weights is None or str(weights) == "":
        weights = os.environ.get(env) or None
    if weights is None:
        raise SPGNetError(missing)
    return weights


def model_folder(weights: str | os.PathLike, where: str, model_type: str, kind: str) -> tuple[Path, dict]:
    """Check a model folder before loading it: ``(folder, config.json as a dict)``.

    ``where`` starts every error line (e.g. ``"parser weights DIR"``), ``model_type`` is the
    ``config.json`` value required, ``kind`` the model's name for the user (``"SegFormer"``).
    """
    folder = Path(weights).expanduser()
    if not folder.exists():
        raise SPGNetError(f"{where}: no such folder")
    if not folder.is_dir():
        raise SPGNetError(f"{where}: not a folder (give the folder that holds config.json and model.safetensors)")
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise SPGNetError(f"{where}: no config.json, not a Hugging Face model folder "
                          "(see docs/parsers.md for how to get one)")
    try:
        config = json.loads(config_path.read_text())
        found = config.get("model_type")
    except (ValueError, AttributeError) as e:
        raise SPGNetError(f"{config_path}: not a model config ({e})") from None
    if found != model_type:
        raise SPGNetError(f"{where}: not a {kind} model (config.json says model_type {found!r})")
    if not any((folder / name).is_file() for name in WEIGHT_FILES):
        pickled = [name for name in PICKLE_FILES if (folder / name).is_file()]
        hint = (f"; it has only {pickled[0]}, which is not unpickled here: convert it to safetensors once "
                "(load it on a trusted machine and save_pretrained)") if pickled else ""
        raise SPGNetError(f"{where}: no model weights (model.safetensors){hint}")
    return folder, config


def load_model(model_class, folder: Path, where: str, kind: str, task: str):
    """``model_class.from_pretrained(folder)`` offline and from safetensors, in float32 and eval mode; refused
    (one line) when it cannot load or its weights do not fill the model (``task``: what the
    model is, e.g. ``"semantic-segmentation"``, for the message)."""
    try:
        with quiet_transformers():
            model, info = model_class.from_pretrained(
                folder, local_files_only=True, use_safetensors=True, output_loading_info=True)
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SPGNetError(f"{where}: cannot load the {kind} model ({first})") from None
    # older checkpoints may lack the batch-norm counter, which inference does not use
    missing = sorted(k for k in info.get("missing_keys") or () if not k.endswith("num_batches_tracked"))
    mismatched = sorted(str(k) for k in info.get("mismatched_keys") or ())
    if missing or mismatched:
        bad = missing or mismatched
        raise SPGNetError(f"{where}: the weights do not fit a {kind} {task} model "
                          f"({'missing' if missing else 'mismatched'}: {', '.join(bad[:4])}"
                          f"{', ...' if len(bad) > 4 else ''})")
    # newer transformers keep a checkpoint's own dtype: half-precision weights would meet float32 inputs
    return model.float().eval()


__all__ = ["WEIGHT_FILES", "PICKLE_FILES", "quiet_transformers", "weights_or_env", "model_folder", "load_model"]
