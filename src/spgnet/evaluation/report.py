"""The files ``spgnet evaluate`` writes (all atomically, ``spgnet.utils.io``):

* ``metrics.json`` — headline values, unavailable metrics with their reasons, counts,
  the full protocol and every metric's detailed output. Standard JSON: a non-finite
  number (PSNR of identical images is +inf, as skimage) is written as the string
  ``"inf"`` / ``"-inf"`` / ``"nan"``;
* ``metrics.md`` — the same as a Markdown table plus the protocol in a list;
* ``per_image.csv`` — one row per evaluated pair: ``pair, from, to`` and the per-image
  metrics computed (ssim, mask_ssim, psnr, l1, lpips, mask_lpips);
* ``report.html`` — a self-contained page (images embedded as base64 PNGs): the
  numbers, then the best and the worst cases by SSIM, each as
  source | target | generated at the evaluated geometry.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
from pathlib import Path

import numpy as np

from spgnet.utils.io import atomic_write_text, encode_png
from spgnet.evaluation.metrics import METRICS

DISPLAY = {
    "ssim": "SSIM", "mask_ssim": "Mask-SSIM", "psnr": "PSNR (dB)", "l1": "L1", "lpips": "LPIPS",
    "mask_lpips": "Mask-LPIPS", "fid": "FID", "pckh": "PCKh", "parsing_miou": "stage-1 mIoU",
}
PER_IMAGE_ORDER = ("ssim", "mask_ssim", "psnr", "l1", "lpips", "mask_lpips")
RANK_PREFERENCE = ("ssim", "mask_ssim", "psnr", "lpips", "l1", "mask_lpips")


def jsonable(value):
    """Plain JSON types; non-finite floats as "inf"/"-inf"/"nan"; paths and tuples converted."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if math.isfinite(v):
            return v
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)


def result_json(result) -> dict:
    return jsonable({
        "metrics": result.metrics,
        "complete": not result.unavailable,
        "exit_code": result.exit_code,
        "unavailable": result.unavailable,
        "counts": result.counts,
        "protocol": result.protocol,
        "details": result.details,
        "missing_generated": result.missing,
    })


def _fmt(value: float, name: str) -> str:
    if not math.isfinite(value):
        return str(value)
    if name == "psnr":
        return f"{value:.3f}"
    if name == "fid":
        return f"{value:.3f}"
    return f"{value:.4f}"


def markdown(result) -> str:
    p = result.protocol
    lines = [
        f"# Evaluation: {p['generated_dir']}",
        "",
        f"Split `{p['split']}`: {result.counts['evaluated']} of {result.counts['pairs']} pairs evaluated"
        + (f" ({result.counts['missing_generated']} generated images missing)" if result.counts["missing_generated"] else "")
        + ".",
        "",
        "| metric | value | better | matches |",
        "|---|---|---|---|",
    ]
    for name in p["metrics"]:
        arrow = "↑" if METRICS[name].higher_is_better else "↓"
        if name in result.metrics:
            value = _fmt(result.metrics[name], name)
        else:
            value = "unavailable"
        matches = METRICS[name].matches.replace("|", "\\|")  # a literal pipe would split the cell
        lines.append(f"| {DISPLAY[name]} | {value} | {arrow} | {matches} |")
    if result.unavailable:
        lines += ["", "Unavailable:", ""]
        lines += [f"- **{DISPLAY[k]}**: {v}" for k, v in result.unavailable.items()]
    pad = p["padding"]
    padding = "none" if pad is None else f"to {pad['to'][0]}x{pad['to'][1]} with value {pad['value']}"
    lines += [
        "", "Protocol:", "",
        f"- evaluation size {p['eval_size'][0]}x{p['eval_size'][1]}; real images: {p['real_images']}",
        f"- generated images: `.{p['image_format']}`, resized: {p['generated_resize']} "
        f"({result.counts['resized_generated']} resized)",
        f"- padding: {padding}",
    ]
    for name, proto in p["metrics"].items():
        extra = {k: v for k, v in proto.items() if k != "matches"}
        if extra:
            lines.append(f"- {DISPLAY[name]}: " + ", ".join(f"{k} = {v}" for k, v in extra.items()))
    if "fid_real_set" in p:
        lines.append(f"- FID real set: {json.dumps(jsonable(p['fid_real_set']))}")
    if p["weights"]:
        lines.append("- weights: " + ", ".join(f"{k}: `{v}`" for k, v in p["weights"].items()))
    return "\n".join(lines) + "\n"


def per_image_csv(result) -> str:
    columns = ["pair", "from", "to"] + [n for n in PER_IMAGE_ORDER if any(n in r for r in result.per_image)]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in result.per_image:
        writer.writerow([row.get(c, "") if c in ("pair", "from", "to") else
                         (repr(float(row[c])) if c in row else "") for c in columns])
    return buf.getvalue()


def _ranked(result, n: int) -> tuple[str | None, list[dict], list[dict]]:
    """(metric ranked by, best n rows, worst n rows)."""
    key = next((k for k in RANK_PREFERENCE if any(k in r for r in result.per_image)), None)
    if key is None or n <= 0:
        return key, [], []
    rows = [r for r in result.per_image if key in r and not math.isnan(r[key])]
    sign = -1.0 if METRICS[key].higher_is_better else 1.0
    rows.sort(key=lambda r: sign * r[key])  # best first
    return key, rows[:n], rows[::-1][:n]


def _img_tag(image: np.ndarray, alt: str) -> str:
    data = base64.b64encode(encode_png(image)).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


def report_html(result, items, cases: int = 8) -> str:
    key, best, worst = _ranked(result, cases)
    index_of = {r["pair"]: i for i, r in enumerate(result.per_image)}
    e = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>spgnet evaluate</title><style>",
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
        "padding:4px 8px;text-align:left}img{image-rendering:pixelated;margin-right:4px}.case{margin:1em 0}"
        "pre{background:#f6f6f6;padding:1em;overflow:auto}",
        "</style></head><body>",
        f"<h1>Evaluation of {e(result.protocol['generated_dir'])}</h1>",
        f"<p>split <code>{e(result.protocol['split'])}</code>: {result.counts['evaluated']} of "
        f"{result.counts['pairs']} pairs evaluated.</p>",
        "<table><tr><th>metric</th><th>value</th><th>better</th></tr>",
    ]
    for name in result.protocol["metrics"]:
        value = _fmt(result.metrics[name], name) if name in result.metrics else \
            f"unavailable: {result.unavailable.get(name, '')}"
        arrow = "↑" if METRICS[name].higher_is_better else "↓"
        parts.append(f"<tr><td>{e(DISPLAY[name])}</td><td>{e(value)}</td><td>{arrow}</td></tr>")
    parts.append("</table>")
    if key is None:
        parts.append("<p>No per-image metric was computed, so there are no best/worst cases.</p>")
    for title, rows in ((f"Best {len(best)} by {DISPLAY[key]}" if key else "", best),
                        (f"Worst {len(worst)} by {DISPLAY[key]}" if key else "", worst)):
        if not rows:
            continue
        parts.append(f"<h2>{e(title)}</h2><p>source | target | generated</p>")
        for row in rows:
            item = items[index_of[row["pair"]]]
            source, _, _ = items.load_pair_image(row["from"])
            tiles = [items.geometry.pad(source), item["real"], item["fake"]]
            values = ", ".join(f"{DISPLAY[n]} {_fmt(row[n], n)}" for n in PER_IMAGE_ORDER if n in row)
            imgs = "".join(_img_tag(t.permute(1, 2, 0).numpy(), alt) for t, alt in zip(tiles, ("source", "target", "generated")))
            parts.append(f"<div class='case'><div><code>{e(row['pair'])}</code> — {e(values)}</div>{imgs}</div>")
    parts.append("<h2>Protocol</h2><pre>" + e(json.dumps(jsonable(result.protocol), indent=2)) + "</pre>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_outputs(result, items, cases: int = 8) -> dict[str, Path]:
    """Write the four files into ``result.out_dir``; returns ``{kind: path}``."""
    out = Path(result.out_dir)
    files = {"json": out / "metrics.json", "markdown": out / "metrics.md", "csv": out / "per_image.csv",
             "html": out / "report.html"}
    atomic_write_text(files["json"], json.dumps(result_json(result), indent=2, allow_nan=False) + "\n")
    atomic_write_text(files["markdown"], markdown(result))
    atomic_write_text(files["csv"], per_image_csv(result))
    atomic_write_text(files["html"], report_html(result, items, cases))
    result.files = files
    return files
