"""``spgnet study``: the paper's ablations in miniature, measured on synthetic people.

A **study** is a YAML file: a base config, overrides every run shares, variants (each a list
of overrides), seeds, and the synthetic dataset they all train on::

    name: stage2-variants
    description: paper Table 3, the stage-2 generator variants
    base: synthetic-small                  # a packaged config name or a YAML path
    set: [train.max_steps=300]             # overrides of every run
    seeds: [0, 1, 2]
    data: {train_pairs: 600, test_pairs: 120, size: [96, 64], seed: 0}
    variants:
      Full: [model.generator.variant=full]
      Baseline: [model.generator.variant=baseline]

Every variant x seed is one training run (``train.seed`` = the seed; the data and the
budget are the same for all), then scored on the whole test split with the project's one
metric code path (:class:`spgnet.evaluation.batch.BatchEvaluator`): SSIM, L1, PSNR, LPIPS
(when its AlexNet weights are on disk, else left out and said so), stage-1 mIoU and the IoU
of the small classes (face, arms, shoes). Written under ``OUT``::

    OUT/data/                       the synthetic dataset (made once)
    OUT/runs/<variant>/seed<k>/     the run (train/ = the usual run directory) and result.json
    OUT/results.json                every run's numbers, and mean / std per variant
    OUT/table.md, OUT/summary.md    the table (mean ± std over seeds) and a summary
    OUT/metrics.png, OUT/curves.png bars with error bars; validation curves per variant

**Resumable**: a run with a ``result.json`` is finished and never redone; a run that was
killed continues from its last checkpoint (bit-identically, as ``train --resume`` does) or,
without one, starts over. Rerunning the same command after an interruption completes the
study. The study file is checked whole before anything runs: an unknown key, a variant
whose overrides do not make a valid config, or no seeds is one line naming it.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from spgnet import SPGNetError
from spgnet.config import Config, load_config
from spgnet.utils.io import atomic_write_text

STUDY_KEYS = ("name", "description", "base", "set", "seeds", "data", "variants")
DATA_KEYS = ("train_pairs", "test_pairs", "size", "seed")
SMALL_CLASSES = ("face", "left-arm", "right-arm", "left-shoe", "right-shoe")
# Columns of the table: (key in a run's result, heading, higher is better).
COLUMNS = (("ssim", "SSIM", True), ("l1", "L1", False), ("psnr", "PSNR", True), ("lpips", "LPIPS", False),
           ("miou", "stage-1 mIoU", True), ("iou/face", "IoU face", True), ("iou/arms", "IoU arms", True),
           ("iou/shoes", "IoU shoes", True))


@dataclass
class Study:
    """A parsed, checked study file (see the module docstring)."""

    name: str
    base: str
    variants: dict[str, list[str]]
    seeds: list[int]
    overrides: list[str] = field(default_factory=list)
    description: str = ""
    data: dict = field(default_factory=dict)
    path: Path | None = None

    def config(self, variant: str, seed: int, data_root: str | os.PathLike | None = None) -> Config:
        """The run's config: base, shared overrides, the variant's, the seed (and the data root)."""
        extra = [f"train.seed={seed}"]
        if data_root is not None:
            extra.append(f"data.root={data_root}")
        size = self.data.get("size")
        if size is not None:
            extra += [f"data.image_size=[{size[0]},{size[1]}]", f"data.load_size=[{size[0]},{size[1]}]"]
        return load_config(self.base, [*self.overrides, *extra, *self.variants[variant]])


def _fail(where: str, message: str) -> SPGNetError:
    return SPGNetError(f"{where}: {message}")


def load_study(path: str | os.PathLike) -> Study:
    """Read and check a study file; every variant's config is built once to validate it."""
    path = Path(path)
    if not path.is_file():
        raise SPGNetError(f"{path}: study file not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise _fail(str(path), f"not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise _fail(str(path), "a study is a mapping with keys " + ", ".join(STUDY_KEYS))
    unknown = sorted(set(raw) - set(STUDY_KEYS))
    if unknown:
        raise _fail(str(path), f"unknown key(s) {', '.join(unknown)}; a study has {', '.join(STUDY_KEYS)}")
    for key in ("name", "base", "variants", "seeds"):
        if key not in raw:
            raise _fail(str(path), f"missing key '{key}'")
    variants = raw["variants"]
    if not isinstance(variants, dict) or not variants:
        raise _fail(f"{path}: variants", "must map variant names to lists of KEY=VALUE overrides")
    for name, items in variants.items():
        if not isinstance(items, list) or not all(isinstance(i, str) and "=" in i for i in items):
            raise _fail(f"{path}: variants.{name}", "must be a list of KEY=VALUE overrides")
        if not str(name) or "/" in str(name) or str(name).startswith("."):
            raise _fail(f"{path}: variants.{name}", "a variant name must be a plain folder name")
    seeds = raw["seeds"]
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise _fail(f"{path}: seeds", "must be a non-empty list of integers")
    if len(set(seeds)) != len(seeds):
        raise _fail(f"{path}: seeds", "must not repeat")
    overrides = raw.get("set") or []
    if not isinstance(overrides, list) or not all(isinstance(i, str) and "=" in i for i in overrides):
        raise _fail(f"{path}: set", "must be a list of KEY=VALUE overrides")
    data = raw.get("data") or {}
    if not isinstance(data, dict):
        raise _fail(f"{path}: data", f"must be a mapping with keys {', '.join(DATA_KEYS)}")
    bad = sorted(set(data) - set(DATA_KEYS))
    if bad:
        raise _fail(f"{path}: data", f"unknown key(s) {', '.join(bad)}; allowed: {', '.join(DATA_KEYS)}")
    for key in ("train_pairs", "test_pairs"):
        if key in data and (not isinstance(data[key], int) or data[key] < 1):
            raise _fail(f"{path}: data.{key}", f"must be a positive integer, got {data[key]!r}")
    if "size" in data and not (isinstance(data["size"], list) and len(data["size"]) == 2
                               and all(isinstance(v, int) and v >= 16 for v in data["size"])):
        raise _fail(f"{path}: data.size", f"must be [height, width] (integers >= 16), got {data['size']!r}")
    study = Study(name=str(raw["name"]), base=str(raw["base"]), variants={str(k): list(v) for k, v in variants.items()},
                  seeds=list(seeds), overrides=list(overrides), description=str(raw.get("description", "")),
                  data=dict(data), path=path)
    for name in study.variants:
        try:
            study.config(name, study.seeds[0])
        except SPGNetError as exc:
            raise _fail(f"{path}: variant {name}", str(exc)) from None
    return study


# --------------------------------------------------------------------------- one run


def _lpips_available() -> bool:
    """LPIPS can be scored: the lpips package and torchvision's AlexNet weights are here."""
    from spgnet.utils.weights import MissingWeightsError, find_weights

    try:
        import lpips  # noqa: F401

        from spgnet.evaluation.metrics.lpips_metric import ALEXNET_ENV, ALEXNET_WEIGHTS
        find_weights(ALEXNET_WEIGHTS, env_var=ALEXNET_ENV)
    except (ImportError, MissingWeightsError):
        return False
    return True


def score_run(net, cfg: Config, device, lpips: bool) -> dict[str, float]:
    """The test split through ``net``: image metrics, stage-1 mIoU and per-class IoU."""
    import torch

    from spgnet.data.dataset import PairDataset, complete_batch
    from spgnet.evaluation.batch import BatchEvaluator

    dataset = PairDataset(cfg.data, "test")
    loader = torch.utils.data.DataLoader(dataset, batch_size=16, shuffle=False, num_workers=0)
    names = ("ssim", "psnr", "l1", "parsing_miou") + (("lpips",) if lpips else ())
    evaluator = BatchEvaluator(metrics=names, device=device)
    net.eval()
    with torch.no_grad():
        for batch in loader:
            b = complete_batch(batch, cfg.data, device)
            out = net.infer(b)
            evaluator.update(out["image"], b["tgt_image"], pred_parsing=out["parsing"], target_parsing=b["tgt_parsing"])
    result = evaluator.compute()
    result["miou"] = result.pop("parsing_miou")
    iou = {k[4:]: v for k, v in evaluator.details()["parsing_miou"].items() if k.startswith("iou/")}
    # a class absent from prediction and ground truth has no IoU (NaN): left out of its group
    result["iou/face"] = iou["face"]
    for group, classes in (("arms", ("left-arm", "right-arm")), ("shoes", ("left-shoe", "right-shoe"))):
        values = [iou[c] for c in classes if not math.isnan(iou[c])]
        result[f"iou/{group}"] = float(np.mean(values)) if values else math.nan
    result["pairs"] = len(dataset)
    return {k: float(v) for k, v in result.items()}


def run_one(study: Study, variant: str, seed: int, out: Path, progress: bool, lpips: bool, log=print) -> dict:
    """Train and score one variant x seed (or return its finished result)."""
    from spgnet.training.trainer import Trainer, TrainingStopped

    folder = out / "runs" / variant / f"seed{seed}"
    result_file = folder / "result.json"
    if result_file.is_file():
        return json.loads(result_file.read_text())
    cfg = study.config(variant, seed, out / "data")
    run_dir = folder / "train"
    last = run_dir / "checkpoints" / "last"
    t0 = time.perf_counter()
    if last.is_dir():
        log(f"[{study.name}] {variant} seed {seed}: continuing from {last}")
        trainer = Trainer(cfg, run_dir=run_dir, resume=last, progress=progress)
    else:
        if folder.exists():
            shutil.rmtree(folder)  # a run killed before its first checkpoint: start over
        folder.mkdir(parents=True)
        log(f"[{study.name}] {variant} seed {seed}: training {cfg.train.max_steps} steps")
        trainer = Trainer(cfg, run_dir=run_dir, progress=progress)
    try:
        trainer.fit()
    except TrainingStopped as exc:  # the study continues the run, not `spgnet train --resume`
        again = f"spgnet study --study {study.path} --out {out}" if study.path else "the same spgnet study command"
        raise TrainingStopped(f"[{study.name}] {variant} seed {seed}: stopped by {exc.signal_name} at step {exc.step}, "
                              f"its checkpoint kept; continue the study with: {again}",
                              signal_name=exc.signal_name, step=exc.step) from None
    scores = score_run(trainer.inference_net(), cfg, trainer.device, lpips)
    result = {"variant": variant, "seed": seed, "steps": trainer.step, "seconds": round(time.perf_counter() - t0, 1),
              **scores}
    atomic_write_text(result_file, json.dumps(result, indent=1) + "\n")
    log(f"[{study.name}] {variant} seed {seed}: " + " ".join(
        f"{k}={result[k]:.4f}" for k, _, _ in COLUMNS if k in result))
    return result


# --------------------------------------------------------------------------- the whole study


def summarise(study: Study, results: list[dict]) -> dict:
    """Mean and sample standard deviation over seeds, per variant and column."""
    summary = {}
    for variant in study.variants:
        rows = [r for r in results if r["variant"] == variant]
        entry = {"seeds": [r["seed"] for r in rows]}
        for key, _, _ in COLUMNS:
            values = [r[key] for r in rows if key in r and not math.isnan(r[key])]
            if values:
                entry[key] = {"mean": float(np.mean(values)),
                              "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0, "n": len(values)}
        summary[variant] = entry
    return summary


def table_markdown(study: Study, summary: dict) -> str:
    columns = [(k, h, up) for k, h, up in COLUMNS if any(k in s for s in summary.values())]
    lines = ["| variant | " + " | ".join(f"{h} {'↑' if up else '↓'}" for _, h, up in columns) + " |",
             "|---|" + "---|" * len(columns)]
    for variant, s in summary.items():
        cells = [f"{s[k]['mean']:.4f} ± {s[k]['std']:.4f}" if k in s else "–" for k, _, _ in columns]
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plots(study: Study, summary: dict, out: Path) -> list[Path]:
    """Bars with error bars per metric, and validation curves (mean over seeds) per variant."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    written = []
    columns = [(k, h) for k, h, _ in COLUMNS if any(k in s for s in summary.values())]
    fig, axes = plt.subplots(1, len(columns), figsize=(2.6 * len(columns), 3.2), squeeze=False)
    names = list(summary)
    for ax, (key, heading) in zip(axes[0], columns):
        means = [summary[v][key]["mean"] if key in summary[v] else np.nan for v in names]
        stds = [summary[v][key]["std"] if key in summary[v] else 0.0 for v in names]
        ax.bar(range(len(names)), means, yerr=stds, capsize=3, color="#4c72b0")
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=45, ha="right", fontsize=7)
        ax.set_title(heading, fontsize=9)
        finite = [m for m in means if not np.isnan(m)]
        if finite:
            lo, hi = min(finite), max(finite)
            pad = max(hi - lo, 1e-3) * 0.8 + max(stds)
            ax.set_ylim(lo - pad, hi + pad)
    fig.suptitle(f"{study.name}: mean ± std over seeds {study.seeds}", fontsize=9)
    fig.tight_layout()
    path = out / "metrics.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)

    # training curves: the logged training losses (every log_every steps), mean over seeds
    curve_keys = (("train", "l1", "training L1 (stage 2)"), ("train", "ce", "training CE (stage 1)"),
                  ("val", "ssim", "validation SSIM"), ("val", "miou", "validation mIoU"))
    fig, axes = plt.subplots(1, len(curve_keys), figsize=(4 * len(curve_keys), 3.2), squeeze=False)
    for variant in study.variants:
        logs = []
        for seed in study.seeds:
            log = out / "runs" / variant / f"seed{seed}" / "train" / "metrics.jsonl"
            if log.is_file():
                logs.append([json.loads(line) for line in log.read_text().splitlines() if line.strip()])
        for ax, (kind, key, _) in zip(axes[0], curve_keys):
            per_seed = [{r["step"]: r[key] for r in records if r.get("kind") == kind and key in r} for records in logs]
            steps = sorted(set.intersection(*(set(s) for s in per_seed))) if per_seed else []
            if steps:
                ax.plot(steps, [np.mean([s[t] for s in per_seed]) for t in steps], marker="." if kind == "val" else None,
                        label=variant)
    for ax, (_, _, title) in zip(axes[0], curve_keys):
        ax.set_xlabel("step")
        ax.set_title(f"{title} (mean over seeds)", fontsize=9)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    path = out / "curves.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)
    return written


def run_study(study: Study, out: str | os.PathLike, progress: bool = False, log=print) -> dict:
    """Run (or finish) every variant x seed of ``study`` under ``out``; write the tables and plots."""
    from spgnet.data.synth import write_synthetic_dataset

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    data = out / "data"
    if not (data / "synth.json").is_file():
        d = study.data
        size = tuple(d.get("size") or study.config(next(iter(study.variants)), study.seeds[0]).data.load_size)
        log(f"[{study.name}] synthesising the dataset in {data}")
        write_synthetic_dataset(data, d.get("train_pairs", 600), test_pairs=d.get("test_pairs", 120),
                                size=size, seed=d.get("seed", 0), progress=False, force=True)
    lpips = _lpips_available()
    if not lpips:
        log(f"[{study.name}] LPIPS left out: its AlexNet weights are not on this machine")
    results = [run_one(study, v, s, out, progress, lpips, log) for v in study.variants for s in study.seeds]
    summary = summarise(study, results)
    table = table_markdown(study, summary)
    seconds = sum(r["seconds"] for r in results)
    record = {"study": study.name, "description": study.description, "base": study.base, "set": study.overrides,
              "seeds": study.seeds, "variants": study.variants, "data": study.data, "runs": results,
              "summary": summary, "train_and_score_seconds": seconds, "lpips": lpips}
    atomic_write_text(out / "results.json", json.dumps(record, indent=1) + "\n")
    atomic_write_text(out / "table.md", table)
    figures = plots(study, summary, out)
    steps = sorted({r["steps"] for r in results})
    summary_md = (f"# {study.name}\n\n{study.description}\n\n"
                  f"Base config `{study.base}`, shared overrides `{' '.join(study.overrides) or '-'}`, "
                  f"seeds {study.seeds}, {steps} training steps per run, test pairs per run "
                  f"{sorted({int(r['pairs']) for r in results})}; {seconds / 60:.1f} min of training and scoring "
                  f"in all.\n\nMean ± sample std over seeds:\n\n{table}\n"
                  + "".join(f"![{p.stem}]({p.name})\n" for p in figures))
    atomic_write_text(out / "summary.md", summary_md)
    log(f"[{study.name}] done in {time.perf_counter() - t0:.0f}s: {out / 'table.md'}")
    return record


__all__ = ["STUDY_KEYS", "Study", "load_study", "score_run", "run_one", "summarise", "table_markdown", "plots",
           "run_study"]
