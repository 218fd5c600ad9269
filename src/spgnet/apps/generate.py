"""Batch generation over a dataset split (the library side of ``spgnet generate``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from spgnet.data.dataset import PairDataset, complete_batch, original_error
from spgnet.utils.io import save_image, tensor_to_image
from spgnet import SPGNetError
from spgnet.pipeline import load_pipeline
from spgnet.utils.device import resolve_device


def generated_names(pair_name: str) -> tuple[str, str]:
    """File names of a pair's generated image and the target parsing stage 2 used."""
    return f"{pair_name}.png", f"{pair_name}_parsing.png"


def _check_arguments(out_dir: Path, batch_size, workers, limit) -> None:
    """One line naming the argument for a value ``generate`` cannot use."""
    for flag, value, minimum, allowed in (("--batch-size", batch_size, 1, "at least 1"),
                                          ("--workers", workers, 0, "0 (load in this process) or more"),
                                          ("--limit", limit, 0, "0 (every pair) or a positive number of pairs")):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise SPGNetError(f"{flag} {value!r}: must be {allowed}")
    if out_dir.exists() and not out_dir.is_dir():
        raise SPGNetError(f"--out {out_dir}: is a file, not a folder (generate writes two PNG files per pair into it)")


@torch.no_grad()
def generate_split(checkpoint, split: str, out_dir, overrides=None, batch_size: int = 8, workers: int = 2,
                   device: str = "auto", limit: int = 0, progress: bool = True, seed: int = 0,
                   target_parsing: str = "ours") -> int:
    """Generate every pair of ``split`` (the first ``limit`` when > 0) into ``out_dir``;
    returns the number of pairs. ``seed`` seeds the SEAN noise (added at inference too,
    as in the official code), so the same checkpoint and seed give the same images.
    ``target_parsing`` (:data:`spgnet.config.TARGET_PARSINGS`): the target parsing stage 2
    sees: stage 1's prediction (``ours``), the dataset's ``pred_parsing_dir`` files
    (``provided``, e.g. the official stage-1 predictions) or the ground truth.

    Before the model runs, every file the pairs need is checked (headers only,
    :func:`spgnet.data.check.preflight`); a split without pairs is an error, never zero
    images; an error inside a loader worker is raised as the worker's own one line."""
    from spgnet.data.check import preflight

    out_dir = Path(out_dir)
    _check_arguments(out_dir, batch_size, workers, limit)
    dev = resolve_device(device, what="--device")
    net = load_pipeline(checkpoint, dev, overrides)
    try:
        net.check_target_parsing(target_parsing)
    except SPGNetError as exc:
        raise SPGNetError(f"checkpoint {checkpoint}: {exc}") from None
    cfg = net.cfg
    flow = cfg.train.flow == "file"
    if preflight(cfg.data, split, flow=flow, provided_parsing=target_parsing == "provided", limit=limit or None) == 0:
        raise SPGNetError(f"{cfg.data.path('pairs_file', split)}: split '{split}' has no pairs: nothing to generate")
    torch.manual_seed(seed)
    if dev.type == "cuda":
        torch.cuda.manual_seed_all(seed)
    dataset = PairDataset(cfg.data, split, return_flow=flow, provided_parsing=target_parsing == "provided")
    if limit:
        dataset = torch.utils.data.Subset(dataset, range(min(limit, len(dataset))))
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=workers, shuffle=False)
    out_dir.mkdir(parents=True, exist_ok=True)
    count = 0
    try:
        for batch in tqdm(loader, desc=f"generate {split}", disable=not progress, dynamic_ncols=True):
            b = complete_batch(batch, cfg.data, dev)
            out = net.infer(b, target_parsing=target_parsing)
            for i, name in enumerate(b["pair_name"]):
                image_name, parsing_name = generated_names(name)
                save_image(tensor_to_image(out["image"][i]), out_dir / image_name)
                save_image(out["parsing"][i].cpu().numpy().astype(np.uint8), out_dir / parsing_name)
                count += 1
    except SPGNetError as exc:
        clean = original_error(exc)
        if clean is exc:
            raise
        raise clean from None
    return count
