"""Model size and cost for a config: trainable parameters per module and GFLOPs per
forward (``torch.utils.flop_counter``; a multiply-add counts as 2 FLOPs), evaluated on
the ``meta`` device so even the 87.8 M-parameter generator costs no real compute."""

from __future__ import annotations

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from spgnet.config import Config
from spgnet.parsing import NUM_CLASSES


def count_trainable(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def _meta_inputs(cfg: Config, batch: int, size: tuple[int, int]) -> dict[str, torch.Tensor]:
    h, w = size
    c = cfg.data.pose.channels
    z = lambda *s: torch.zeros(*s, device="meta")  # noqa: E731
    return {"src_image": z(batch, 3, h, w), "src_onehot": z(batch, NUM_CLASSES, h, w),
            "tgt_onehot": z(batch, NUM_CLASSES, h, w), "pose": z(batch, c, h, w),
            "flow": z(batch, 2, h, w), "vis": z(batch, 1, h, w)}


def model_table(cfg: Config, size: tuple[int, int] | None = None) -> list[dict]:
    """One row per network (and the generator's top-level parts): params, GFLOP/forward/image."""
    from spgnet.pipeline import build_discriminator, build_generator, build_stage1, check_config

    check_config(cfg)
    size = tuple(size or cfg.data.load_size)
    with torch.device("meta"):
        stage1, generator, disc = build_stage1(cfg), build_generator(cfg), build_discriminator(cfg)
    x = _meta_inputs(cfg, 1, size)
    s1_in = x["src_image"] if cfg.model.spatn.input == "image" else x["src_onehot"]
    rows = []

    def flops(fn) -> float:
        with FlopCounterMode(display=False) as counter:
            fn()
        return counter.get_total_flops() / 1e9

    rows.append({"module": "stage1 (SPATN)", "params": count_trainable(stage1),
                 "gflops": flops(lambda: stage1(s1_in, x["pose"], x["pose"]))})
    rows.append({"module": "generator", "params": count_trainable(generator),
                 "gflops": flops(lambda: generator(x["src_image"], x["src_onehot"], x["tgt_onehot"], x["pose"],
                                                   x["flow"], x["vis"]))})
    for name, child in generator.named_children():
        rows.append({"module": f"  generator.{name}", "params": count_trainable(child), "gflops": None})
    d_in = torch.zeros(1, 6 + cfg.data.pose.channels, *size, device="meta")
    rows.append({"module": "discriminator", "params": count_trainable(disc), "gflops": flops(lambda: disc(d_in))})
    return rows


def format_table(rows: list[dict], size: tuple[int, int]) -> str:
    lines = [f"| module | trainable parameters | GFLOP / forward / image at {size[0]}x{size[1]} |", "|---|---:|---:|"]
    for r in rows:
        g = f"{r['gflops']:.2f}" if r["gflops"] is not None else ""
        lines.append(f"| {r['module']} | {r['params']:,} | {g} |")
    return "\n".join(lines)
