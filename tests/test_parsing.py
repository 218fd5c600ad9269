import numpy as np
import pytest
import torch

from spgnet import parsing


def test_labels_and_palette_cover_twenty_classes():
    assert len(parsing.CIHP_LABELS) == parsing.NUM_CLASSES == 20
    assert parsing.CIHP_PALETTE.shape == (20, 3)
    assert len({tuple(c) for c in parsing.CIHP_PALETTE}) == 20  # distinct colours
    assert parsing.LABEL_INDEX["face"] == 13 and parsing.LABEL_INDEX["right-shoe"] == 19


def test_one_hot_matches_per_pixel_reference():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 20, size=(2, 5, 7))
    oh = parsing.one_hot(labels)
    assert oh.shape == (2, 20, 5, 7)
    for b in range(2):
        for y in range(5):
            for x in range(7):
                expected = np.zeros(20)
                expected[labels[b, y, x]] = 1
                np.testing.assert_array_equal(oh[b, :, y, x].numpy(), expected)
    assert parsing.one_hot(labels[0]).shape == (1, 20, 5, 7)


def test_one_hot_rejects_out_of_range():
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 20\), got \[0, 20\]"):
        parsing.one_hot(np.array([[0, 20]]))
    with pytest.raises(ValueError, match=r"got \[-1, 3\]"):
        parsing.one_hot(torch.tensor([[-1, 3]]), check=True)


def test_one_hot_of_a_tensor_reads_nothing_back_unless_debugging(monkeypatch):
    """Range checks on a device tensor are host syncs: tensors are checked only with
    SPGNET_DEBUG_CHECKS=1 (the loader checks every label map it reads). Unchecked, an
    out-of-range label is still an error (scatter's own)."""
    from torch.overrides import TorchFunctionMode

    reads = []

    class Reads(TorchFunctionMode):  # every way a tensor's values reach Python
        def __torch_function__(self, func, types, args=(), kwargs=None):
            if getattr(func, "__name__", "") in ("tolist", "item", "numpy", "cpu", "__int__", "__bool__", "__float__"):
                reads.append(func.__name__)
            return func(*args, **(kwargs or {}))

    labels = torch.tensor([[[0, 5], [19, 2]]])
    monkeypatch.delenv(parsing.DEBUG_CHECKS_ENV, raising=False)
    with Reads():
        oh = parsing.one_hot(labels)
    assert reads == [] and torch.equal(oh.argmax(1), labels)
    with pytest.raises(RuntimeError, match="out of bounds"):
        parsing.one_hot(torch.tensor([[0, 20]]))
    monkeypatch.setenv(parsing.DEBUG_CHECKS_ENV, "1")
    with Reads():
        parsing.one_hot(labels)
    assert reads == ["tolist"]  # min and max, read together
    with pytest.raises(ValueError, match="labels must lie"):
        parsing.one_hot(torch.tensor([[0, 20]]))


def test_coarse8_table_by_name():
    # spot-check the documented table by class name, independent of index arithmetic
    names = parsing.COARSE8_NAMES
    expect = {
        "hair": "hair", "hat": "hair", "face": "face", "upper-clothes": "upper-clothes",
        "coat": "upper-clothes", "dress": "upper-clothes", "pants": "pants", "skirt": "pants",
        "left-arm": "arms", "right-arm": "arms", "glove": "arms", "left-leg": "legs",
        "socks": "legs", "left-shoe": "shoes", "right-shoe": "shoes", "background": "background",
    }
    for cihp, coarse in expect.items():
        assert names[parsing.CIHP_TO_COARSE8[parsing.LABEL_INDEX[cihp]]] == coarse
    t = torch.tensor([[13, 19]])
    assert parsing.to_coarse8(t).tolist() == [[4, 7]]
    assert parsing.to_coarse8(np.array([2])).tolist() == [2]


def test_flip_labels_swaps_left_right_only():
    labels = np.arange(20)
    flipped = parsing.flip_labels(labels)
    assert flipped[14] == 15 and flipped[15] == 14 and flipped[18] == 19 and flipped[16] == 17
    assert flipped[5] == 5 and flipped[0] == 0
    np.testing.assert_array_equal(parsing.flip_labels(flipped), labels)


def test_colorize_uses_palette():
    img = parsing.colorize(np.array([[0, 13]]))
    assert img.dtype == np.uint8 and img.shape == (1, 2, 3)
    assert img[0, 1].tolist() == [0, 0, 255]


def test_miou_hand_computed():
    target = torch.tensor([0, 0, 1, 1, 2, 2])
    pred = torch.tensor([0, 1, 1, 1, 2, 0])
    # class 0: inter 1, union 3 ; class 1: inter 2, union 3 ; class 2: inter 1, union 2
    expected = (1 / 3 + 2 / 3 + 1 / 2) / 3
    assert parsing.miou(pred, target) == pytest.approx(expected)
