"""The look-up indices without per-resolution host syncs: sizes read once
(:func:`spgnet.ops.class_window.read_counts`), then ``nonzero_static`` — the same indices as
``nonzero``; a SemanticCondition reads the hard-one-hot flag and every resolution of a
decoder in one go."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from spgnet.models.sean import SemanticCondition
from spgnet.ops.class_window import ClassWindowLayout, read_counts
from spgnet.parsing import one_hot

from helpers import labels_of, people

K = 20


class HostReads(TorchFunctionMode):
    """Every way a tensor's values reach Python, by name."""

    def __init__(self):
        super().__init__()
        self.reads: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in ("tolist", "item", "numpy", "cpu", "__int__", "__bool__", "__float__"):
            self.reads.append(func.__name__)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("kernel", [3, 5])
def test_counted_layouts_equal_the_nonzero_ones(kernel):
    labels = labels_of(people(4, (48, 32), seed=2))
    labels[1, :, :5] = K  # "no class" columns
    maps = [labels, F.interpolate(labels[:, None].float(), size=(24, 16), mode="nearest")[:, 0].long()]
    plain = [ClassWindowLayout(m, K, kernel) for m in maps]
    counted = [ClassWindowLayout(m, K, kernel) for m in maps]
    flag = torch.tensor(True)
    with HostReads() as host:
        assert read_counts(counted, shell=True, extra=[flag]) == [1]
        for layout in counted:  # the indices: no further read
            layout.band, layout.band_rows, layout.shell()
    assert host.reads == ["tolist"]
    for a, b in zip(plain, counted):
        assert b.band_count == a.band.numel() > 0 and b.shell_count == a.shell()[0].numel() > 0
        assert torch.equal(a.band, b.band) and torch.equal(a.band_rows, b.band_rows)
        assert torch.equal(a.shell()[0], b.shell()[0]) and torch.equal(a.shell()[1], b.shell()[1])


def test_a_condition_reads_the_device_once_for_a_decoder():
    labels = labels_of(people(2, (64, 48), seed=4))
    parsing = one_hot(labels)
    cond = SemanticCondition(parsing, route="shell")
    with HostReads() as host:
        # a decoder from the bottom: 8x6, then every doubling up to the parsing's size
        layouts = [cond.layout((8 * 2**i, 6 * 2**i), 3) for i in range(4)]
    assert host.reads == ["tolist"] and all(layout is not None for layout in layouts)
    assert [layout.shape for layout in layouts] == [(2, 8 * 2**i, 6 * 2**i) for i in range(4)]
    for layout in layouts:  # what the counts say is what the indices are
        reference = ClassWindowLayout(layout.labels, K, 3)
        assert torch.equal(layout.band, reference.band) and torch.equal(layout.shell()[0], reference.shell()[0])
    with HostReads() as host:
        assert cond.layout((64, 48), 3) is layouts[-1]  # cached
        cond.layout((20, 15), 3)  # not a doubling of the first: one more read
        cond.layout((64, 48), 5)  # another kernel: one more
    assert host.reads == ["tolist", "tolist"]


def test_the_automatic_route_on_the_cpu_decides_from_the_counts():
    parsing = one_hot(labels_of(people(2, (64, 48), seed=4)))
    auto = SemanticCondition(parsing)
    with HostReads() as host:
        layout = auto.layout((64, 48), 5)
        shell = auto.use_shell(layout)
    assert host.reads == ["tolist"]
    b, h, w = layout.shape
    assert shell == (ClassWindowLayout(layout.labels, K, 5).shell()[0].numel() <= 0.5 * b * h * w)


def test_a_soft_parsing_costs_one_read_and_takes_the_conv_route():
    parsing = one_hot(labels_of(people(2, (32, 24), seed=4)))
    parsing[0, 3, 0, 0] = 0.5
    cond = SemanticCondition(parsing)
    with HostReads() as host:
        assert cond.layout((8, 6), 3) is None and cond.layout((32, 24), 3) is None and cond.labels() is None
    assert host.reads == ["tolist"]
    with HostReads() as host:  # the conv route asks nothing
        assert SemanticCondition(one_hot(labels_of(people(2, (32, 24), seed=4))), route="conv").layout((8, 6), 3) is None
    assert host.reads == []
