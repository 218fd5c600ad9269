"""The ``heatmap`` pose kind (the paper's stage-1 ablation: heat maps without the skeleton
distance maps) is exactly the first 18 channels of ``heatmap+distance``, and a config with it
gets 18-channel networks."""

from __future__ import annotations

import numpy as np
import torch

from spgnet.config import POSE_CHANNELS, config_from_dict
from spgnet.pose import pose_channels, pose_maps


def test_heatmap_kind_is_the_heat_maps_of_the_full_kind():
    kp = np.random.default_rng(0).uniform(0, 60, (3, 18, 2)).astype(np.float32)
    kp[0, 4] = -1  # a missing joint
    full = pose_maps(kp, (64, 48), kind="heatmap+distance", sigma=3.0)
    heat = pose_maps(kp, (64, 48), kind="heatmap", sigma=3.0)
    assert heat.shape == (3, 18, 64, 48) and pose_channels("heatmap") == POSE_CHANNELS["heatmap"] == 18
    torch.testing.assert_close(heat, full[:, :18])
    ys, xs = np.mgrid[0:64, 0:48]
    x, y = kp[1, 7]
    expected = np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * 3.0**2))  # a Gaussian by hand
    np.testing.assert_allclose(heat[1, 7].numpy(), expected, atol=1e-5)
    assert float(heat[0, 4].abs().max()) == 0.0


def test_config_with_heatmap_kind_gets_18_channel_networks():
    cfg = config_from_dict({"data": {"pose": {"kind": "heatmap"}}})
    assert cfg.data.pose.channels == 18
    assert cfg.model.generator.pose_channels == 18 and cfg.model.spatn.pose_channels == 18
