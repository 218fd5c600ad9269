"""The ACE kernels of spgnet.ops.class_window against their plain PyTorch equivalents
(F.conv2d on the one-hot parsing) and hand-built label maps."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from spgnet.models.sean import SemanticCondition
from spgnet.ops.class_window import ClassWindowLayout, class_window_sum, hard_labels
from spgnet.parsing import one_hot

from helpers import labels_of, people

K = 20


@pytest.mark.parametrize("kernel", [3, 5])
def test_class_window_sum_equals_conv_of_the_one_hot(kernel):
    """Forward and table gradient against F.conv2d on the one-hot (per-sample kernels),
    including pixels without any class and the zero padding at the border."""
    torch.manual_seed(0)
    labels = labels_of(people(2, (40, 28), seed=1))
    labels[0, :3] = K  # "no class" rows (an all-zero one-hot pixel)
    b, h, w = labels.shape
    o = 6
    table = torch.randn(b, K + 1, kernel * kernel, o, dtype=torch.float64)
    table[:, K] = 0
    table.requires_grad_()
    out = class_window_sum(table, ClassWindowLayout(labels, K, kernel))  # (B·h·w, O)
    onehot = F.one_hot(labels, K + 1)[..., :K].permute(0, 3, 1, 2).double()  # class K -> all zero
    # kernels[b, o, k, dy, dx] = table[b, k, dy·kernel + dx, o]
    kernels = table[:, :K].reshape(b, K, kernel, kernel, o).permute(0, 4, 1, 2, 3)
    expected = torch.cat([F.conv2d(onehot[i:i + 1], kernels[i], padding=kernel // 2) for i in range(b)])
    expected = expected.permute(0, 2, 3, 1).reshape(-1, o)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    grad = torch.randn_like(out)
    (g_ours,) = torch.autograd.grad(out, table, grad)
    (g_conv,) = torch.autograd.grad(expected, table, grad)
    torch.testing.assert_close(g_ours[:, :K], g_conv[:, :K], rtol=1e-12, atol=1e-12)


def test_shell_is_where_the_double_window_sees_another_class_or_the_edge():
    labels = torch.zeros(1, 12, 14, dtype=torch.long)
    labels[0, :, 9:] = 3
    labels[0, 0, 0] = K  # "no class" inside the map still counts as a class of its own
    shell, windows = ClassWindowLayout(labels, K, 3).shell()
    expected = torch.ones(12, 14, dtype=torch.bool)
    expected[2:10, 2:7] = False  # 5x5 windows inside class 0, away from the edge
    expected[2:10, 11:12] = False  # ... inside class 3
    expected[2, 2] = True  # sees the "no class" pixel at (0, 0)
    assert torch.equal(shell, expected.reshape(-1).nonzero().squeeze(1))
    # windows: flat indices into the map padded by 1, row-major offsets
    y, x = divmod(int(shell[0]), 14)
    assert windows[0].tolist() == [(y + dy) * 16 + x + dx for dy in range(3) for dx in range(3)]


def test_layout_interior_and_band():
    labels = torch.zeros(1, 8, 9, dtype=torch.long)
    labels[0, :, 5:] = 3
    layout = ClassWindowLayout(labels, K, 3)
    interior = layout.interior.view(8, 9)
    # interior: away from the image edge (zero padding = no class) and from the 4|5 border
    expected = torch.zeros(8, 9, dtype=torch.bool)
    expected[1:7, 1:4] = True
    expected[1:7, 6:8] = True
    assert torch.equal(interior, expected)
    assert layout.band.numel() == 72 - int(expected.sum())


def test_hard_labels():
    labels = torch.tensor([[[0, 5], [19, 2]]])
    onehot = one_hot(labels)
    assert torch.equal(hard_labels(onehot), labels)
    onehot[0, :, 0, 1] = 0  # a pixel without class (zero padding) -> label K
    assert hard_labels(onehot)[0, 0, 1] == K
    soft = onehot.clone()
    soft[0, 2, 1, 1] = 0.5
    assert hard_labels(soft) is None
    assert hard_labels(onehot * 2) is None
    two = onehot.clone()
    two[0, 3, 0, 0] = 1  # two classes at one pixel
    assert hard_labels(two) is None
    assert SemanticCondition(onehot, route="conv").labels() is None
    assert SemanticCondition(onehot.requires_grad_()).labels() is None  # joint scheme: conv route
    with pytest.raises(ValueError, match="route"):
        SemanticCondition(onehot, route="fast")
