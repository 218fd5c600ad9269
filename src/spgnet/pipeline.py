"""Both stages as one module, and the no-grad inference path.

:class:`SPGNet` holds stage 1 (SPATN) and stage 2 (the generator) plus the flow
provider that links them; :meth:`SPGNet.infer` is the inference path (stage 1 ->
predicted parsing -> flow -> stage 2) used by validation, ``generate``, ``transfer``
and the demo report. Training schemes live in :mod:`spgnet.training.trainer`.

The target parsing stage 2 sees at inference (:data:`TARGET_PARSINGS`): ``ours`` (stage
1's prediction, the default), ``provided`` (a parsing given per pair, e.g. the official
release's stage-1 predictions: the batch's ``tgt_parsing_provided``) or ``ground-truth``
(the dataset's target parsing, an upper bound). A checkpoint without stage 1 (a converted
official generator) builds an :class:`SPGNet` with ``stage1 = None``: it runs with a
provided or ground-truth parsing only.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn as nn

from spgnet import SPGNetError
from spgnet.config import TARGET_PARSINGS, Config
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
    """Stage 1 + stage 2 + flow provider (``cfg.train.flow``); ``with_stage1=False`` leaves
    ``stage1`` None (a generator-only checkpoint, e.g. converted official weights). With
    ``train.flow: official`` it also holds the official flow network ``flow_net`` (never
    trained: its weights come from the release, through ``spgnet convert-official``)."""

    def __init__(self, cfg: Config, with_stage1: bool = True):
        super().__init__()
        from spgnet.flow import make_flow_provider

        self.cfg = cfg
        self.stage1 = build_stage1(cfg) if with_stage1 else None
        self.generator = build_generator(cfg)
        self.flow_kind = cfg.train.flow
        self.flow_net = None
        network = None
        if cfg.train.flow == "official":
            from spgnet.models.official_flow import OfficialFlowNet, official_flow

            self.flow_net = OfficialFlowNet(cfg.model.flow_net).eval().requires_grad_(False)
            radius = cfg.model.flow_net.disk_radius

            def network(src_kp, tgt_kp, size):
                return official_flow(self.flow_net, src_kp, tgt_kp, size, radius)

        self._flow = make_flow_provider(cfg.train.flow, network=network)

    def stage1_input(self, batch: dict) -> torch.Tensor:
        """``S_s`` one-hot (SPATN) or ``I_s`` (SPATN*)."""
        return batch["src_image"] if self.cfg.model.spatn.input == "image" else batch["src_parsing_onehot"]

    def flow(self, batch: dict, tgt_labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Flow + visibility for the pair, with ``tgt_labels`` (B, H, W) as the target parsing."""
        return self._flow(batch, tgt_parsing=tgt_labels)

    def check_target_parsing(self, target_parsing: str) -> None:
        """SPGNetError unless this network can run with ``target_parsing``."""
        if target_parsing not in TARGET_PARSINGS:
            raise SPGNetError(f"--target-parsing {target_parsing!r}: choose from {', '.join(TARGET_PARSINGS)}")
        if target_parsing == "ours" and self.stage1 is None:
            raise SPGNetError("this checkpoint has no stage 1 (a generator-only checkpoint, e.g. converted official "
                              "weights): use --target-parsing provided (a parsing per pair, such as the official "
                              "stage-1 predictions) or ground-truth")

    @torch.no_grad()
    def infer(self, batch: dict, autocast=None, stage2: bool = True, target_parsing: str = "ours") -> dict:
        """Inference: ``{"logits" (stage 1 only), "parsing" (B, H, W), "image" (B, 3, H, W)
        in [-1, 1]}``; ``parsing`` is the target parsing stage 2 used (``target_parsing``).

        ``batch`` needs src_image, src_parsing_onehot, src_pose, tgt_pose, src_kp, tgt_kp,
        src_parsing (and flow/vis for the ``file`` provider; tgt_parsing_provided or
        tgt_parsing for those target parsings), as :class:`PairDataset` gives.
        """
        self.check_target_parsing(target_parsing)
        ctx = autocast() if autocast is not None else contextlib.nullcontext()
        with ctx:
            out = {}
            if target_parsing == "ours":
                logits = self.stage1(self.stage1_input(batch), batch["src_pose"], batch["tgt_pose"])
                parsing = logits.argmax(1)
                out["logits"] = logits.float()
            else:
                key = "tgt_parsing_provided" if target_parsing == "provided" else "tgt_parsing"
                if key not in batch:
                    raise SPGNetError(f"target parsing {target_parsing!r}: the batch has no {key!r} "
                                      "(PairDataset(..., provided_parsing=True) loads the provided one)")
                parsing = batch[key].long()
            out["parsing"] = parsing
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
    the generator and stage 1 (``stage1`` is None when the checkpoint has none); eval mode. ``overrides`` (``key=value``) adjust the
    saved config, e.g. ``data.root=...`` for another dataset location.

    ``ema``: which weights. ``None`` (default): the EMA weights when the checkpoint has
    them for both stage 1 and the generator (trained with ``train.ema_decay`` > 0), the
    raw ones otherwise; ``True``: the EMA weights, :class:`~spgnet.SPGNetError` if they
    are missing; ``False``: the raw weights."""
    from spgnet.config import apply_overrides, config_from_dict
    from spgnet.utils.checkpoint import load_checkpoint, read_checkpoint_config, read_checkpoint_info

    raw = read_checkpoint_config(checkpoint)
    cfg = config_from_dict(apply_overrides(raw, overrides or []), f"{checkpoint} config")
    info = read_checkpoint_info(checkpoint)
    with_stage1 = "stage1" in info.get("models", [])
    stages = {"stage1", "generator"} if with_stage1 else {"generator"}
    has_ema = stages <= set(info.get("ema", {}))
    if ema and not has_ema:
        raise SPGNetError(f"{info['path']}: no EMA weights of {' and '.join(sorted(stages))} in this checkpoint "
                          "(trained with train.ema_decay=0); load its raw weights instead")
    use_ema = has_ema if ema is None else bool(ema)
    net = SPGNet(cfg, with_stage1=with_stage1)
    modules = {"stage1": net.stage1, "generator": net.generator} if with_stage1 else {"generator": net.generator}
    fixed = {"flow": net.flow_net} if net.flow_net is not None else {}  # never averaged: no EMA copy
    load_checkpoint(checkpoint, models=fixed if use_ema else {**modules, **fixed}, ema=modules if use_ema else None,
                    restore_rng=False, map_location="cpu", training_state=False)  # weights + config only
    return net.to(device).eval()
