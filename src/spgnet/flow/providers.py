"""Flow providers: where stage 2's flow and visibility come from (config ``train.flow``)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from spgnet import SPGNetError
from spgnet.config import FLOW_KINDS
from spgnet.flow.part_affine import parsing_labels, part_affine_flow


class FlowProvider:
    """``provider(batch, tgt_parsing=None) -> (flow (B, 2, H, W), vis (B, 1, H, W))``; see
    :func:`make_flow_provider`. ``kind`` names the source of the flow."""

    def __init__(self, kind: str, affine_reg: float = 0.5,
                 network: Callable[[torch.Tensor, torch.Tensor, tuple[int, int]], tuple] | None = None):
        if kind not in FLOW_KINDS:
            raise SPGNetError(f"unknown flow provider '{kind}' (choose from {', '.join(FLOW_KINDS)})")
        if kind == "official" and network is None:
            raise SPGNetError("flow provider 'official' runs the official flow network: build it with "
                              "spgnet.pipeline.SPGNet (train.flow: official), which holds the network")
        self.kind = kind
        self.affine_reg = affine_reg
        self.network = network

    def __call__(self, batch: dict, tgt_parsing: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        target = batch["tgt_parsing"] if tgt_parsing is None else tgt_parsing
        if self.kind == "part-affine":
            return part_affine_flow(batch["src_kp"], batch["tgt_kp"], batch["src_parsing"], target, self.affine_reg)
        if self.kind == "file":
            if "flow" not in batch or "vis" not in batch:
                raise SPGNetError("flow provider 'file' needs precomputed .corr flow in the batch: "
                                  "set dataset.use_flow=true and put the files in the dataset's flow_dir")
            return batch["flow"].float(), batch["vis"].float()
        if self.kind == "official":  # from the keypoints alone, as the official test path
            return self.network(batch["src_kp"], batch["tgt_kp"], tuple(batch["src_image"].shape[-2:]))
        labels = parsing_labels(target, "tgt_parsing")  # "none"
        b, h, w = labels.shape
        flow = torch.zeros(b, 2, h, w, device=labels.device)
        return flow, torch.where(labels == 0, 2.0, 0.0)[:, None]

    def __repr__(self) -> str:
        return f"FlowProvider({self.kind!r})"


def make_flow_provider(kind: str, affine_reg: float = 0.5, network=None) -> FlowProvider:
    """The flow source of stage 2 (config ``train.flow``): a callable
    ``provider(batch, tgt_parsing=None) -> (flow (B, 2, H, W), vis (B, 1, H, W))``.

    ``batch`` is a (collated) dataset batch: ``src_kp, tgt_kp (B, 18, 2)``,
    ``src_parsing, tgt_parsing (B, H, W)`` labels, and for ``"file"`` the ``flow``/``vis``
    the dataset read from ``.corr`` files. ``tgt_parsing``, when given, replaces the
    batch's target parsing (pass the stage-1 prediction ``Ŝ_t`` at inference).

    * ``"part-affine"`` (default, weight-free): :func:`part_affine_flow`.
    * ``"file"``: the precomputed flow and visibility of the batch (e.g. Intr-Flow's
      ``.corr``; needs ``dataset.use_flow``); ``tgt_parsing`` is ignored.
    * ``"official"``: the official release's flow network from the two poses' keypoint disks
      (``network(src_kp, tgt_kp, (H, W)) -> (flow, vis)``, given by
      :class:`spgnet.pipeline.SPGNet`, which holds the network); ``tgt_parsing`` is ignored.
    * ``"none"`` (ablation, no deformation): zero flow, vis 0 on target foreground and
      2 on background.
    """
    return FlowProvider(kind, affine_reg, network)
