"""Both stages as one module, and the no-grad inference path.

:class:`SPGNet` holds stage 1 (SPATN) and stage 2 (the generator) plus the flow
provider that links them; :meth:`SPGNet.infer` is the inference path (stage 1 ->
predicted parsing -> flow -> stage 2) used by validation, ``generate``, ``transfer``
and the demo report. Training schemes live in :mod:`spgnet.training.trainer`.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn as nn

from spgnet.config import Config
from spgnet.parsing import one_hot


def build_stage1(cfg: Config) -> nn.Module:
    from spgnet.models.spatn import SPATN

    return SPATN(cfg.model.spatn)


def build_generator(cfg: Config) -> nn.Module:
    from spgnet.models.generator import SPGNetGenerator

    return SPGNetGenerator(cfg.model.generator)


def build_discriminator(cfg: Config) -> nn.Module:
    from spgnet.models.discriminator import NLayerDiscriminator

    return NLayerDiscriminator(cfg.model.discriminator, in_channels=3 + 3 + cfg.data.pose.channels)


class SPGNet(nn.Module):
    """Stage 1 + stage 2 + flow provider (``cfg.train.flow``)."""

    def __init__(self, cfg: Config):
        super().__init__()
        from spgnet.flow import make_flow_provider

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


def load_pipeline(checkpoint, device: str | torch.device = "cpu", overrides: list[str] | None = None,
                  ema: bool | None = None) -> SPGNet:
    """Rebuild :class:`SPGNet` from a checkpoint alone (its embedded config) and load
    stage 1 and the generator; eval mode. ``overrides`` (``key=value``) adjust the
    saved config, e.g. ``data.root=...`` for another dataset location.

    ``ema``: which weights. ``None`` (default): the EMA weights when the checkpoint has
    them for both stage 1 and the generator (trained with ``train.ema_decay`` > 0), the
    raw ones otherwise; ``True``: the EMA weights, :class:`~spgnet.SPGNetError` if they
    are missing; ``False``: the raw weights."""
    from spgnet import SPGNetError
    from spgnet.config import apply_overrides, config_from_dict
    from spgnet.utils.checkpoint import load_checkpoint, read_checkpoint_config, read_checkpoint_info

    raw = read_checkpoint_config(checkpoint)
    cfg = config_from_dict(apply_overrides(raw, overrides or []), f"{checkpoint} config")
    info = read_checkpoint_info(checkpoint)
    has_ema = {"stage1", "generator"} <= set(info.get("ema", {}))
    if ema and not has_ema:
        raise SPGNetError(f"{info['path']}: no EMA weights of stage 1 and the generator in this checkpoint "
                          "(trained with train.ema_decay=0); load its raw weights instead")
    use_ema = has_ema if ema is None else bool(ema)
    net = SPGNet(cfg)
    modules = {"stage1": net.stage1, "generator": net.generator}
    load_checkpoint(checkpoint, models={} if use_ema else modules, ema=modules if use_ema else None,
                    restore_rng=False, map_location="cpu")
    return net.to(device).eval()
