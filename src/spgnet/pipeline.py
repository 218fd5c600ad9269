"""Both stages as one module, and the no-grad inference path.

:class:`SPGNet` holds stage 1 (SPATN) and stage 2 (the generator) plus the flow
provider that links them; :meth:`SPGNet.infer` is the inference path (stage 1 ->
predicted parsing -> flow -> stage 2) used by validation, ``generate``, ``transfer``
and the demo report. Training schemes live in :mod:`spgnet.training.trainer`.
"""

from __future__ import annotations

import contextlib
import dataclasses

import torch
import torch.nn as nn

from spgnet.config import Config
from spgnet.parsing import one_hot


def check_config(cfg: Config) -> None:
    """The model sections must agree with the data's pose representation."""
    from spgnet import SPGNetError

    c = cfg.data.pose.channels
    for key, value in (("model.generator.pose_channels", cfg.model.generator.pose_channels),
                       ("model.spatn.pose_channels", cfg.model.spatn.pose_channels)):
        if value != c:
            raise SPGNetError(f"{key} is {value} but data.pose.kind={cfg.data.pose.kind!r} gives {c} channels")


def build_stage1(cfg: Config) -> nn.Module:
    from spgnet.models.spatn import SPATN

    s = cfg.model.spatn
    return SPATN(**dataclasses.asdict(s))  # the config's fields are SPATN's keyword arguments


def build_generator(cfg: Config) -> nn.Module:
    from spgnet.models.generator import SPGNetGenerator

    return SPGNetGenerator(cfg.model.generator)


def build_discriminator(cfg: Config) -> nn.Module:
    from spgnet.models.discriminator import NLayerDiscriminator

    d = cfg.model.discriminator
    return NLayerDiscriminator(in_channels=3 + 3 + cfg.data.pose.channels, **dataclasses.asdict(d))


class SPGNet(nn.Module):
    """Stage 1 + stage 2 + flow provider (``cfg.train.flow``)."""

    def __init__(self, cfg: Config):
        super().__init__()
        from spgnet.flow import make_flow_provider

        check_config(cfg)
        self.cfg = cfg
        self.stage1 = build_stage1(cfg)
        self.generator = build_generator(cfg)
        self.flow_kind = cfg.train.flow
        self._flow = make_flow_provider(cfg.train.flow)

    def stage1_input(self, batch: dict) -> torch.Tensor:
        """``S_s`` one-hot (SPATN) or ``I_s`` (SPATN*)."""
        return batch["src_image"] if self.cfg.model.spatn.input == "image" else batch["src_parsing_onehot"]

    def flow(self, batch: dict, tgt_labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Flow + visibility for the pair, with ``tgt_labels`` (B, H, W) as the target parsing."""
        return self._flow(batch, tgt_parsing=tgt_labels)

    @torch.no_grad()
    def infer(self, batch: dict, autocast=None, stage2: bool = True) -> dict:
        """Inference: ``{"logits", "parsing" (B, H, W), "image" (B, 3, H, W) in [-1, 1]}``.

        ``batch`` needs src_image, src_parsing_onehot, src_pose, tgt_pose, src_kp, tgt_kp,
        src_parsing (and flow/vis for the ``file`` provider), as :class:`PairDataset` gives.
        """
        ctx = autocast() if autocast is not None else contextlib.nullcontext()
        with ctx:
            logits = self.stage1(self.stage1_input(batch), batch["src_pose"], batch["tgt_pose"])
            parsing = logits.argmax(1)
            out = {"logits": logits.float(), "parsing": parsing}
            if stage2:
                tgt_onehot = one_hot(parsing).to(batch["src_image"].dtype)
                flow, vis = self.flow(batch, parsing)
                image = self.generator(batch["src_image"], batch["src_parsing_onehot"], tgt_onehot,
                                       batch["tgt_pose"], flow, vis)
                out["image"] = image.float().clamp(-1, 1)
        return out


def evaluate_batches(net: SPGNet, batches, stage2: bool = True, autocast=None) -> dict[str, float]:
    """Validation numbers over ``batches`` with the project's one metric code path
    (:class:`spgnet.evaluate.BatchEvaluator`): l1, ssim, psnr (when ``stage2``),
    stage-1 ``miou`` and cross-entropy ``ce``."""
    import torch.nn.functional as F

    from spgnet.evaluate import BatchEvaluator

    names = ("ssim", "psnr", "l1", "parsing_miou") if stage2 else ("parsing_miou",)
    evaluator = None
    ce_sum, n = 0.0, 0
    for b in batches:
        out = net.infer(b, autocast=autocast, stage2=stage2)
        if evaluator is None:
            evaluator = BatchEvaluator(metrics=names, device=b["src_image"].device)
        evaluator.update(out.get("image"), b["tgt_image"], pred_parsing=out["parsing"], target_parsing=b["tgt_parsing"])
        ce_sum += float(F.cross_entropy(out["logits"], b["tgt_parsing"], reduction="sum")) / b["tgt_parsing"][0].numel()
        n += b["tgt_parsing"].shape[0]
    result = evaluator.compute() if evaluator is not None else {}
    result["ce"] = ce_sum / max(n, 1)
    if "parsing_miou" in result:
        result["miou"] = result.pop("parsing_miou")
    return result


def load_pipeline(checkpoint, device: str | torch.device = "cpu", overrides: list[str] | None = None) -> SPGNet:
    """Rebuild :class:`SPGNet` from a checkpoint alone (its embedded config) and load
    stage 1 and the generator; eval mode. ``overrides`` (``key=value``) adjust the
    saved config, e.g. ``data.root=...`` for another dataset location."""
    from spgnet.checkpoint import load_checkpoint, read_checkpoint_config
    from spgnet.config import apply_overrides, config_from_dict

    raw = read_checkpoint_config(checkpoint)
    cfg = config_from_dict(apply_overrides(raw, overrides or []), f"{checkpoint} config")
    net = SPGNet(cfg)
    load_checkpoint(checkpoint, models={"stage1": net.stage1, "generator": net.generator},
                    restore_rng=False, map_location="cpu")
    return net.to(device).eval()
