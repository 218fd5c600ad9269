"""Synthetic people (docs/design.md §5): a procedural dataset in exactly the docs/design.md §4 layout.

Procedural clothed 2D figures (``synth_body``: identity, pose, part placement;
``synth_render``: per-pixel rendering, CIHP parsing, ground-truth flow) written as::

    OUT/train/<name>.png   OUT/test/<name>.png          # lossless RGB
    OUT/annotation-{train,test}.csv                      # PATN "name:keypoints_y:keypoints_x"
    OUT/pairs-{train,test}.csv                           # "from,to"
    OUT/parsing/<stem>.png                               # uint8 CIHP labels (mode L)
    OUT/flow/<from-stem>___<to-stem>.corr                # GT backward flow + visibility
    OUT/synth.json                                       # the parameters (marks a synth output)

Names are ``id<identity:05d>_pose<pose:02d>.png``. Every identity has
``poses_per_identity`` pictures and contributes the pairs of the cycle
``0->1, 1->2, ..., (P-1)->0`` (``0->1, 1->0`` for P = 2) until the requested number of
pairs is reached; identities never cross splits (test identities are numbered after the
train ones). Every identity and every pose draws from its own ``numpy`` Generator seeded
with ``(seed, split, identity, pose)``, so the files are byte-identical for a seed
whatever the worker count, and the test split does not depend on the train size.
"""

from __future__ import annotations

import contextlib
import json
import math
import multiprocessing
import os
import re
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from spgnet import SPGNetError
from spgnet.data.corr import encode_corr
from spgnet.data.synth_body import (  # noqa: F401  (public API re-exported here)
    PART_ID, PARTS, Body, Identity, Pose, Texture, place_figure, sample_body, sample_identity, sample_pose,
)
from spgnet.data.synth_render import ground_truth_flow, render_person, texture  # noqa: F401
from spgnet.utils.io import atomic_write_text, encode_png
from spgnet.pose import write_annotation_csv

SPLITS = ("train", "test")
MARKER = "synth.json"
P_BACK_VIEW = 0.2
_IMAGE_RE = re.compile(r"^id\d+_pose\d+\.png$")
_FLOW_RE = re.compile(r"^id\d+_pose\d+___id\d+_pose\d+\.corr$")


def image_name(identity: int, pose: int) -> str:
    return f"id{identity:05d}_pose{pose:02d}.png"


def identity_pairs(poses_per_identity: int) -> list[tuple[int, int]]:
    """The (from, to) pose indices of one identity, in order."""
    p = poses_per_identity
    return [(0, 1), (1, 0)] if p == 2 else [(i, (i + 1) % p) for i in range(p)]


def _plan(n_pairs: int, poses_per_identity: int) -> list[int]:
    """Pairs contributed by each identity of a split."""
    per = len(identity_pairs(poses_per_identity))
    full, rest = divmod(n_pairs, per)
    return [per] * full + ([rest] if rest else [])


def _png(array: np.ndarray) -> bytes:
    return encode_png(array, compress_level=1)


def _write(path: Path, data: bytes) -> None:
    # plain writes: thousands of small files, each rewritten whole on a rerun (synth.json
    # marks a completed run); atomic renames + fsync would cost more than the rendering
    with open(path, "wb") as f:
        f.write(data)


def synthesize_identity(out: str | os.PathLike, split: str, index: int, gid: int, n_pairs: int,
                        size: tuple[int, int], seed: int, poses_per_identity: int) -> tuple[dict, list]:
    """Render and write one identity's pictures, parsings and flows.

    ``index`` is the identity's number within its split (seeds the generators), ``gid``
    its global number (names the files). Returns ``({name: keypoints (18, 2)}, [(from, to)])``.
    """
    out = Path(out)
    code = SPLITS.index(split)
    identity = sample_identity(np.random.default_rng([seed, code, index]))
    pairs = identity_pairs(poses_per_identity)[:n_pairs]
    used = sorted({i for pair in pairs for i in pair})
    renders, keypoints = {}, {}
    for p in used:
        rng = np.random.default_rng([seed, code, index, 1 + p])
        view = "back" if rng.random() < P_BACK_VIEW else "front"
        r = render_person(identity, sample_pose(rng, view=view), size)
        name = image_name(gid, p)
        _write(out / split / name, _png(r["image"]))
        _write(out / "parsing" / f"{Path(name).stem}.png", _png(r["parsing"]))
        renders[p], keypoints[name] = r, r["keypoints"]
    names = []
    for a, b in pairs:
        flow, vis = ground_truth_flow(renders[a], renders[b])
        na, nb = image_name(gid, a), image_name(gid, b)
        _write(out / "flow" / f"{Path(na).stem}___{Path(nb).stem}.corr", encode_corr(flow, vis))
        names.append((na, nb))
    return keypoints, names


def _task(args) -> tuple[dict, list]:
    return synthesize_identity(*args)


def _prepare_out(out: Path, force: bool) -> None:
    """Refuse a non-empty folder that is not a previous synth output (unless ``force``);
    remove the files a previous run wrote (and only those) so no stale file survives."""
    if out.exists() and not out.is_dir():
        raise SPGNetError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file() and not force:
        raise SPGNetError(f"{out}: folder is not empty and is not a previous `spgnet synth` output "
                          "(--force / force=True writes into it)")
    for sub, pattern in (("train", _IMAGE_RE), ("test", _IMAGE_RE), ("parsing", _IMAGE_RE), ("flow", _FLOW_RE)):
        folder = out / sub
        if folder.is_dir():
            for entry in os.scandir(folder):
                if pattern.match(entry.name) and entry.is_file():
                    os.unlink(entry.path)
    for name in (MARKER, *(f"{kind}-{split}.csv" for kind in ("annotation", "pairs") for split in SPLITS)):
        if (out / name).is_file():
            (out / name).unlink()


def write_synthetic_dataset(out: str | os.PathLike, train_pairs: int, test_pairs: int | None = None,
                            size: tuple[int, int] = (256, 176), seed: int = 0, poses_per_identity: int = 3,
                            workers: int = 1, progress: bool = True, force: bool = False) -> dict:
    """Write a synthetic dataset in the docs/design.md §4 layout under ``out``; return a summary dict.

    ``test_pairs`` defaults to a tenth of ``train_pairs`` (at least 1). ``size`` is
    ``(H, W)``. ``workers`` > 1 renders identities in that many processes (same bytes).
    A non-empty ``out`` that is not a previous synth output is refused unless ``force``.
    """
    h, w = (int(v) for v in size)
    if test_pairs is None:
        test_pairs = max(1, math.ceil(train_pairs / 10))
    counts = {"train": int(train_pairs), "test": int(test_pairs)}
    if counts["train"] < 1 or counts["test"] < 0:
        raise SPGNetError(f"pairs: need at least 1 train pair and no negative count, got {counts}")
    if h < 16 or w < 16 or h > 4096 or w > 4096:
        raise SPGNetError(f"size {h}x{w}: height and width must lie in [16, 4096]")
    if poses_per_identity < 2:
        raise SPGNetError(f"poses_per_identity must be at least 2, got {poses_per_identity}")
    if seed < 0:
        raise SPGNetError(f"seed must be >= 0, got {seed}")
    out = Path(out)
    _prepare_out(out, force)
    for sub in (*SPLITS, "parsing", "flow"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    params = {"generator": "spgnet.data.synth", "size": [h, w], "seed": int(seed),
              "poses_per_identity": int(poses_per_identity), "pairs": counts}
    atomic_write_text(out / MARKER, json.dumps(dict(params, complete=False), indent=2) + "\n")

    tasks, gid = [], 0
    for split in SPLITS:
        for index, n in enumerate(_plan(counts[split], poses_per_identity)):
            tasks.append((str(out), split, index, gid, n, (h, w), int(seed), int(poses_per_identity)))
            gid += 1
    t0 = time.perf_counter()
    results = {split: ({}, []) for split in SPLITS}
    context = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
    bar = tqdm(total=sum(counts.values()), desc="synth", unit="pair", disable=not progress, dynamic_ncols=True)
    with (context.Pool(workers) if workers > 1 else contextlib.nullcontext()) as pool, bar:
        stream = pool.imap(_task, tasks, chunksize=4) if pool else map(_task, tasks)
        for task, (kps, pairs) in zip(tasks, stream):  # in task order: the CSVs do not depend on workers
            results[task[1]][0].update(kps)
            results[task[1]][1].extend(pairs)
            bar.update(len(pairs))
    seconds = time.perf_counter() - t0

    summary = dict(params, root=str(out))
    for split in SPLITS:
        kps, pairs = results[split]
        write_annotation_csv(out / f"annotation-{split}.csv", kps)
        atomic_write_text(out / f"pairs-{split}.csv", "from,to\n" + "".join(f"{a},{b}\n" for a, b in pairs))
        summary[split] = {"identities": len(_plan(counts[split], poses_per_identity)), "images": len(kps),
                          "pairs": len(pairs)}
    atomic_write_text(out / MARKER, json.dumps(dict(params, complete=True, train=summary["train"],
                                                    test=summary["test"]), indent=2) + "\n")
    summary["seconds"] = seconds
    summary["pairs_per_second"] = sum(counts.values()) / max(seconds, 1e-9)
    return summary


__all__ = [
    "write_synthetic_dataset", "synthesize_identity", "sample_identity", "sample_pose", "render_person",
    "ground_truth_flow", "image_name", "identity_pairs", "PARTS", "PART_ID", "Identity", "Pose", "Body", "Texture",
]
