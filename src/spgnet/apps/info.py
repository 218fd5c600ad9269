"""Model size and cost for a config: trainable parameters per module and GFLOPs per
forward (``torch.utils.flop_counter``; a multiply-add counts as 2 FLOPs), evaluated on
the ``meta`` device so even the 87.8 M-parameter generator costs no real compute."""

from __future__ import annotations

import torch

from spgnet.config import Config
from spgnet.parsing import NUM_CLASSES
from spgnet.utils.torch_utils import count_flops, count_parameters


def _meta_inputs(cfg: Config, batch: int, size: tuple[int, int]) -> dict[str, torch.Tensor]:
    h, w = size
    c = cfg.data.pose.channels
    z = lambda *s: torch.zeros(*s, device="meta")  # noqa: E731
    return {"src_image": z(batch, 3, h, w), "src_parsing_onehot": z(batch, NUM_CLASSES, h, w),
            "tgt_parsing_onehot": z(batch, NUM_CLASSES, h, w), "src_pose": z(batch, c, h, w),
            "tgt_pose": z(batch, c, h, w),
            "flow": z(batch, 2, h, w), "vis": z(batch, 1, h, w)}


def model_table(cfg: Config, size: tuple[int, int] | None = None) -> list[dict]:
    """One row per network (and the generator's top-level parts): params, GFLOP/forward/image."""
    from spgnet.pipeline import build_discriminator, build_generator, build_stage1

    size = tuple(size or cfg.data.load_size)
    with torch.device("meta"):
        # eval mode: FLOPs are the same, and BatchNorm in training mode refuses one value per
        # channel (batch 1 at the 1x1 bottleneck of a generator deeper than its input)
        stage1, generator, disc = (m.eval() for m in (build_stage1(cfg), build_generator(cfg),
                                                      build_discriminator(cfg)))
    x = _meta_inputs(cfg, 1, size)
    s1_in = x["src_image"] if cfg.model.spatn.input == "image" else x["src_parsing_onehot"]
    rows = []

    def flops(fn) -> float:
        return count_flops(fn) / 1e9

    rows.append({"module": "stage1 (SPATN)", "params": count_parameters(stage1),
                 "gflops": flops(lambda: stage1(s1_in, x["src_pose"], x["tgt_pose"]))})
    rows.append({"module": "generator", "params": count_parameters(generator),
                 "gflops": flops(lambda: generator(x["src_image"], x["src_parsing_onehot"], x["tgt_parsing_onehot"], x["tgt_pose"],
                                                   x["flow"], x["vis"]))})
    for name, child in generator.named_children():
        rows.append({"module": f"  generator.{name}", "params": count_parameters(child), "gflops": None})
    d_in = torch.zeros(1, 6 + cfg.data.pose.channels, *size, device="meta")
    rows.append({"module": "discriminator", "params": count_parameters(disc), "gflops": flops(lambda: disc(d_in))})
    return rows


def format_table(rows: list[dict], size: tuple[int, int]) -> str:
    lines = [f"| module | trainable parameters | GFLOP / forward / image at {size[0]}x{size[1]} |", "|---|---:|---:|"]
    for r in rows:
        g = f"{r['gflops']:.2f}" if r["gflops"] is not None else ""
        lines.append(f"| {r['module']} | {r['params']:,} | {g} |")
    return "\n".join(lines)
