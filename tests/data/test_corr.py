import struct

import numpy as np
import pytest

from spgnet import SPGNetError
from spgnet.data.corr import encode_corr, read_corr, write_corr


def test_corr_layout_by_hand(tmp_path):
    # 2x3 (H x W) file built byte by byte from the documented Intr-Flow layout
    h, w = 2, 3
    coords = np.zeros((h, w, 2), np.float32)
    coords[..., 0] = np.arange(w)[None, :] + 1.5  # source x = x + 1.5
    coords[..., 1] = np.arange(h)[:, None] - 0.25  # source y = y - 0.25
    vis = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
    raw = struct.pack("<ii", w, h) + coords.astype("<f4").tobytes() + vis.tobytes()
    path = tmp_path / "a___b.corr"
    path.write_bytes(raw)
    flow, vis_read = read_corr(path)
    assert flow.shape == (2, h, w)
    np.testing.assert_allclose(flow[0], 1.5)
    np.testing.assert_allclose(flow[1], -0.25)
    np.testing.assert_array_equal(vis_read, vis)
    assert encode_corr(flow, vis) == raw


def test_corr_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    flow = rng.normal(size=(2, 5, 4)).astype(np.float32) * 3
    vis = rng.integers(0, 3, size=(5, 4)).astype(np.uint8)
    write_corr(tmp_path / "x.corr", flow, vis)
    f2, v2 = read_corr(tmp_path / "x.corr")
    np.testing.assert_allclose(f2, flow, atol=1e-5)
    np.testing.assert_array_equal(v2, vis)


@pytest.mark.parametrize("cut", [4, 20, -1])
def test_truncated_corr_names_file(tmp_path, cut):
    path = tmp_path / "t.corr"
    write_corr(path, np.zeros((2, 4, 4), np.float32), np.zeros((4, 4), np.uint8))
    path.write_bytes(path.read_bytes()[:cut])
    with pytest.raises(SPGNetError, match="t.corr"):
        read_corr(path)
