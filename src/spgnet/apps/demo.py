"""The end-to-end demo on embedded synthetic people (the README's ``make demo``).

1. synthesise a dataset in the docs/design.md §4 layout (ground-truth flow included) and
   validate it with the same checker users run on real data;
2. train both stages with ``configs/synthetic-small.yaml`` (S1‖S2);
3. run the trained model on the held-out test pairs;
4. score it next to two baselines with the project's one metric code path:
   *copy the source image* and *warp the source by the part-affine flow* (computed
   from the predicted target parsing, the information the model has at test time), and stage 1's
   mIoU next to *target parsing = source parsing*;
5. write ``report.html``, ``results.png`` (source | target pose | predicted parsing |
   warp baseline | generated | ground truth), ``metrics.json`` and ``metrics.md``.
"""

from __future__ import annotations

import base64
import html
import json
import time
from pathlib import Path

import numpy as np
import torch

from spgnet.config import Config, load_config, packaged_config
from spgnet.utils.io import atomic_write_text, encode_png, save_image, tensor_to_image

DEFAULT_CONFIG = packaged_config("synthetic-small")


def _log(msg: str) -> None:
    print(msg, flush=True)


@torch.no_grad()
def score_test_set(net, cfg: Config, batch_size: int = 16, device="cpu", grid_rows: int = 6):
    """Model and baselines on every test pair -> (metrics table, uint8 result grid)."""
    from spgnet.data.dataset import PairDataset, complete_batch
    from spgnet.evaluation.batch import BatchEvaluator
    from spgnet.flow import make_flow_provider
    from spgnet.ops.warp import warp
    from spgnet.parsing import colorize
    from spgnet.pose import render_pose_image

    dataset = PairDataset(cfg.data, "test", return_flow=cfg.train.flow == "file")
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)
    part_affine = make_flow_provider("part-affine")
    names = ("ssim", "psnr", "l1")
    evals = {k: BatchEvaluator(metrics=names, device=device) for k in ("copy source", "part-affine warp", "SPGNet (ours)")}
    parse_evals = {k: BatchEvaluator(metrics=("parsing_miou",), device=device)
                   for k in ("source parsing", "SPGNet stage 1 (ours)")}
    rows: list[np.ndarray] = []
    net.eval()
    for batch in loader:
        b = complete_batch(batch, cfg.data, device)
        out = net.infer(b)
        # the baseline sees what the model sees at test time: the target pose and the
        # predicted target parsing (the ground-truth target parsing is not known then)
        flow, vis = part_affine(b, tgt_parsing=out["parsing"])
        warped = warp(b["src_image"], flow)
        evals["copy source"].update(b["src_image"], b["tgt_image"])
        evals["part-affine warp"].update(warped, b["tgt_image"])
        evals["SPGNet (ours)"].update(out["image"], b["tgt_image"])
        parse_evals["source parsing"].update(None, None, pred_parsing=b["src_parsing"], target_parsing=b["tgt_parsing"])
        parse_evals["SPGNet stage 1 (ours)"].update(None, None, pred_parsing=out["parsing"], target_parsing=b["tgt_parsing"])
        for i in range(b["src_image"].shape[0]):
            if len(rows) >= grid_rows:
                break
            h, w = b["src_image"].shape[-2:]
            pose = render_pose_image(b["tgt_kp"][i].cpu().numpy(), (h, w))
            tiles = [tensor_to_image(b["src_image"][i]), pose, colorize(out["parsing"][i]),
                     tensor_to_image(warped[i]), tensor_to_image(out["image"][i]), tensor_to_image(b["tgt_image"][i])]
            rows.append(np.concatenate(tiles, axis=1))
    table = {k: e.compute() for k, e in evals.items()}
    table.update({k: {"miou": e.compute()["parsing_miou"]} for k, e in parse_evals.items()})
    return table, np.concatenate(rows, axis=0), len(dataset)


def _markdown(table: dict) -> str:
    lines = ["| method | SSIM ↑ | L1 ↓ | PSNR ↑ | stage-1 mIoU ↑ |", "|---|---|---|---|---|"]
    for name, m in table.items():
        cell = lambda k, fmt: fmt.format(m[k]) if k in m else "–"  # noqa: E731
        lines.append(f"| {name} | {cell('ssim', '{:.4f}')} | {cell('l1', '{:.4f}')} | {cell('psnr', '{:.2f}')} | "
                     f"{cell('miou', '{:.4f}')} |")
    return "\n".join(lines) + "\n"


def _html(table: dict, grid_png: bytes, sheet_png: bytes | None, info: dict) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(n)}</td>" + "".join(
            f"<td>{m[k]:.4f}</td>" if k in m else "<td>–</td>" for k in ("ssim", "l1", "psnr", "miou")) + "</tr>"
        for n, m in table.items())
    img = lambda data: f'<img src="data:image/png;base64,{base64.b64encode(data).decode()}">'  # noqa: E731
    facts = "".join(f"<li><b>{html.escape(str(k))}</b>: {html.escape(str(v))}</li>" for k, v in info.items())
    sheet = f"<h2>Training data (contact sheet)</h2>{img(sheet_png)}" if sheet_png else ""
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>SPGNet demo</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #999;padding:4px 10px}}
img{{image-rendering:pixelated;max-width:100%}}</style></head><body>
<h1>SPGNet demo on synthetic people</h1>
<h2>Held-out test pairs</h2>
<table><tr><th>method</th><th>SSIM ↑</th><th>L1 ↓</th><th>PSNR ↑</th><th>stage-1 mIoU ↑</th></tr>{rows}</table>
<p>Columns of the grid: source | target pose | predicted parsing | part-affine warp baseline | generated | ground truth.</p>
{img(grid_png)}
<h2>Run</h2><ul>{facts}</ul>{sheet}</body></html>"""


def run_demo(out: str | Path = "runs/demo", config: str | Path | None = None, overrides: list[str] | None = None,
             train_pairs: int | None = None, test_pairs: int | None = None, seed: int = 0) -> dict:
    from spgnet.data.check import check_dataset
    from spgnet.data.synth import write_synthetic_dataset
    from spgnet.apps.sheet import make_contact_sheet
    from spgnet.training.trainer import Trainer

    t_start = time.perf_counter()
    out = Path(out)
    cfg = load_config(config or DEFAULT_CONFIG, [f"data.root={out / 'data'}", *(overrides or [])])
    size = tuple(cfg.data.load_size)
    train_pairs = train_pairs or 400
    test_pairs = test_pairs or 40
    _log(f"[1/4] synthesising {train_pairs} train + {test_pairs} test pairs at {size[0]}x{size[1]} -> {cfg.data.root}")
    write_synthetic_dataset(cfg.data.root, train_pairs, test_pairs=test_pairs, size=size, seed=seed, force=True)
    report = check_dataset(cfg.data)
    if not report.ok:
        raise RuntimeError("the synthetic dataset failed validation:\n" + report.format())
    make_contact_sheet(cfg.data.root, "train", 6, out / "contact_sheet.png")
    t_data = time.perf_counter() - t_start

    _log(f"[2/4] training both stages ({cfg.train.scheme}, {cfg.train.max_steps or cfg.train.epochs} "
         f"{'steps' if cfg.train.max_steps else 'epochs'}) -> {out / 'train'}")
    run_dir = out / "train"
    if run_dir.exists():
        import shutil

        shutil.rmtree(run_dir)
    trainer = Trainer(cfg, run_dir=run_dir)
    t0 = time.perf_counter()
    trainer.fit()
    t_train = time.perf_counter() - t0

    _log("[3/4] generating the held-out test pairs and scoring model and baselines")
    table, grid, n_test = score_test_set(trainer.inference_net(), cfg, device=trainer.device)
    save_image(grid, out / "results.png")

    _log("[4/4] writing the report")
    info = {
        "test pairs": n_test, "train pairs": len(trainer.train_set), "image size": f"{size[0]}x{size[1]}",
        "training steps": trainer.step, "scheme": cfg.train.scheme,
        "data + check seconds": round(t_data, 1), "training seconds": round(t_train, 1),
        "torch threads": torch.get_num_threads(), "device": str(trainer.device),
        "stage-2 baselines": "copy source; warp source by the part-affine flow from the predicted target parsing",
    }
    atomic_write_text(out / "metrics.json", json.dumps({"metrics": table, "run": info}, indent=2))
    atomic_write_text(out / "metrics.md", _markdown(table))
    sheet = (out / "contact_sheet.png").read_bytes()
    atomic_write_text(out / "report.html", _html(table, encode_png(grid), sheet, info))
    _log(_markdown(table))
    _log(f"done in {time.perf_counter() - t_start:.0f}s: {out / 'report.html'}")
    return {"metrics": table, "run": info}
