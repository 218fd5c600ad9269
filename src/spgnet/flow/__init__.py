"""Flow and visibility for feature deformation (docs/design.md §7).

* :mod:`.part_affine` — the weight-free part-affine flow from keypoints and parsings;
* :mod:`.providers` — the ``train.flow`` choice: ``part-affine``, ``file`` (``.corr``
  files, e.g. from Intr-Flow) or ``none``.

Warping itself is :func:`spgnet.ops.warp.warp`.
"""

from spgnet.flow.part_affine import (CLASS_PARTS, PARTS, VISIBLE_CLASSES, parsing_labels, part_affine_flow,
                                     part_transforms)
from spgnet.flow.providers import FlowProvider, make_flow_provider

__all__ = ["CLASS_PARTS", "PARTS", "VISIBLE_CLASSES", "FlowProvider", "make_flow_provider", "parsing_labels",
           "part_affine_flow", "part_transforms"]
