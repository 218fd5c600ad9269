"""The learned SegFormer parser on tiny randomly initialised SegFormers saved to tmp folders
(no real weights, nothing downloaded): output shapes, the label tables against hand-written
expectations (a classifier forced to predict one class everywhere), matching by name, the
combination with the person mask, and the one-line errors."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from spgnet.photo.learned_parsing import PARSERS, SegformerParser, _combine_with_mask, load_parser

from helpers import one_line_error

transformers = pytest.importorskip("transformers")  # the `parser` extra (in `dev`)

# Source classes and the CIHP-20 index each must become, written out by hand (CIHP: 0 background,
# 1 hat, 2 hair, 3 glove, 4 sunglasses, 5 upper-clothes, 6 dress, 7 coat, 8 socks, 9 pants,
# 10 jumpsuits, 11 scarf, 12 skirt, 13 face, 14 left-arm, 15 right-arm, 16 left-leg,
# 17 right-leg, 18 left-shoe, 19 right-shoe).
ATR = [("Background", 0), ("Hat", 1), ("Hair", 2), ("Sunglasses", 4), ("Upper-clothes", 5), ("Skirt", 12),
       ("Pants", 9), ("Dress", 6), ("Belt", 9), ("Left-shoe", 18), ("Right-shoe", 19), ("Face", 13),
       ("Left-leg", 16), ("Right-leg", 17), ("Left-arm", 14), ("Right-arm", 15), ("Bag", 0), ("Scarf", 11)]
LIP = [("Background", 0), ("Hat", 1), ("Hair", 2), ("Glove", 3), ("Sunglasses", 4), ("UpperClothes", 5),
       ("Dress", 6), ("Coat", 7), ("Socks", 8), ("Pants", 9), ("Jumpsuits", 10), ("Scarf", 11), ("Skirt", 12),
       ("Face", 13), ("Left-arm", 14), ("Right-arm", 15), ("Left-leg", 16), ("Right-leg", 17),
       ("Left-shoe", 18), ("Right-shoe", 19)]
CIHP = [("background", 0), ("hat", 1), ("hair", 2), ("glove", 3), ("sunglasses", 4), ("upper_clothes", 5),
        ("dress", 6), ("coat", 7), ("socks", 8), ("pants", 9), ("Torso-skin", 13), ("scarf", 11), ("skirt", 12),
        ("face", 13), ("left arm", 14), ("right arm", 15), ("left leg", 16), ("right leg", 17),
        ("left shoe", 18), ("right shoe", 19)]


@pytest.fixture(autouse=True)
def offline(hf_offline, one_thread):
    """Hub offline, no weights from the environment, no network (conftest.hf_offline)."""


def tiny_config(names):
    """A 4-stage SegFormer with one block per stage, 8-64 channels, classes ``names``."""
    return transformers.SegformerConfig(
        depths=[1, 1, 1, 1], hidden_sizes=[8, 16, 32, 64], num_attention_heads=[1, 1, 1, 1],
        decoder_hidden_size=16, num_labels=len(names), id2label=dict(enumerate(names)),
        label2id={n: i for i, n in enumerate(names)})


def save_model(folder, names, *, forced: int | None = None, processor: bool = True, seed: int = 0):
    """A tiny SegFormer with classes ``names`` saved to ``folder``; ``forced``: a class it predicts
    everywhere (classifier weight 0, bias one-hot)."""
    torch.manual_seed(seed)
    model = transformers.SegformerForSemanticSegmentation(tiny_config(names)).eval()
    if forced is not None:
        force(model, forced)
    model.save_pretrained(folder)
    if processor:
        transformers.SegformerImageProcessor(size={"height": 64, "width": 64}).save_pretrained(folder)
    return folder


def force(model, k: int) -> None:
    with torch.no_grad():
        classifier = model.decode_head.classifier
        classifier.weight.zero_()
        classifier.bias.zero_()
        classifier.bias[k] = 10.0


def photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def atr_folder(tmp_path_factory):
    return save_model(tmp_path_factory.mktemp("atr") / "atr", [n for n, _ in ATR])


def test_shapes_and_values(atr_folder):
    parser = load_parser("segformer", atr_folder)
    assert isinstance(parser, SegformerParser) and parser.label_set == "ATR-18"
    assert parser.input_size == (64, 64)
    producible = {c for _, c in ATR}
    for h, w in ((37, 23), (100, 60)):
        out = parser(photo(h, w))
        assert out.shape == (h, w) and out.dtype == np.uint8
        assert set(np.unique(out)) <= producible
        np.testing.assert_array_equal(out, parser(photo(h, w)))  # deterministic


@pytest.mark.parametrize("table", [ATR, LIP, CIHP], ids=["ATR-18", "LIP-20", "CIHP-20+torso-skin"])
def test_each_class_maps_to_the_expected_cihp_label(tmp_path, table):
    parser = SegformerParser(save_model(tmp_path / "m", [n for n, _ in table]))
    image = photo(21, 17)
    for k, (name, expected) in enumerate(table):
        force(parser.model, k)
        out = parser(image)
        assert (out == expected).all(), (name, np.unique(out))


def test_matching_is_by_name_not_by_index(tmp_path):
    order = np.random.default_rng(3).permutation(len(ATR))
    permuted = [ATR[i] for i in order]
    assert [n for n, _ in permuted] != [n for n, _ in ATR]
    face = [n for n, _ in permuted].index("Face")
    parser = SegformerParser(save_model(tmp_path / "m", [n for n, _ in permuted], forced=face))
    assert parser.label_set == "ATR-18"
    assert (parser(photo(30, 20)) == 13).all()
    for k, (name, expected) in enumerate(permuted):
        force(parser.model, k)
        assert (parser(photo(9, 11)) == expected).all(), name


def test_without_processor_config_uses_512_and_imagenet(tmp_path):
    parser = SegformerParser(save_model(tmp_path / "m", [n for n, _ in ATR], forced=2, processor=False))
    assert parser.input_size == (512, 512)
    torch.testing.assert_close(parser._mean.flatten(), torch.tensor([0.485, 0.456, 0.406]))
    torch.testing.assert_close(parser._std.flatten(), torch.tensor([0.229, 0.224, 0.225]))
    assert (parser(photo(12, 8)) == 2).all()


def test_mask_outside_is_background_inside_keeps_parser_labels(tmp_path):
    names = [n for n, _ in ATR]
    parser = SegformerParser(save_model(tmp_path / "m", names, forced=names.index("Face")))
    mask = np.zeros((40, 30), bool)
    mask[5:30, 8:20] = True
    out = parser(photo(40, 30), mask)
    assert (out[mask] == 13).all() and (out[~mask] == 0).all()


@pytest.mark.parametrize("name", ["Background", "Bag"])
def test_mask_with_no_parser_person_is_upper_clothes(tmp_path, name):
    names = [n for n, _ in ATR]
    parser = SegformerParser(save_model(tmp_path / "m", names, forced=names.index(name)))
    mask = np.zeros((33, 27), bool)
    mask[4:20, 3:9] = True
    mask[25, 20] = True
    out = parser(photo(33, 27), mask)
    assert (out[mask] == 5).all() and (out[~mask] == 0).all()
    assert (parser(photo(33, 27)) == 0).all()  # no mask: background as predicted


def test_mask_holes_take_the_nearest_label_inside_the_mask():
    h, w = 12, 14
    labels = np.zeros((h, w), np.uint8)
    labels[1, 2] = 2  # hair
    labels[8, 8] = 9  # pants
    labels[10, 13] = 13  # face, outside the mask: never a source
    labels[0, 13] = 6  # dress, outside the mask
    mask = np.ones((h, w), bool)
    mask[:, 12:] = False
    out = _combine_with_mask(labels, mask)
    # independent expectation: brute-force nearest of the two seeds inside the mask (no ties:
    # 14 r + 12 c = 123 has no integer solution)
    rr, cc = np.mgrid[:h, :w]
    d_hair = (rr - 1) ** 2 + (cc - 2) ** 2
    d_pants = (rr - 8) ** 2 + (cc - 8) ** 2
    expected = np.where(d_hair < d_pants, 2, 9).astype(np.uint8)
    expected[~mask] = 0
    np.testing.assert_array_equal(out, expected)
    assert out.dtype == np.uint8


def test_mask_combination_keeps_labels_and_fills_only_holes():
    labels = np.array([[0, 0, 0, 0, 0],
                       [0, 5, 5, 0, 0],
                       [0, 0, 9, 0, 14],
                       [0, 0, 0, 0, 0]], np.uint8)
    mask = np.array([[0, 0, 0, 0, 0],
                     [0, 1, 1, 1, 0],
                     [0, 1, 1, 1, 0],
                     [0, 0, 1, 0, 0]], bool)
    expected = np.array([[0, 0, 0, 0, 0],
                         [0, 5, 5, 5, 0],
                         [0, 5, 9, 9, 0],
                         [0, 0, 9, 0, 0]], np.uint8)
    np.testing.assert_array_equal(_combine_with_mask(labels, mask), expected)
    np.testing.assert_array_equal(_combine_with_mask(labels, np.zeros_like(mask)), np.zeros_like(labels))


def test_errors_for_bad_folders(tmp_path, atr_folder):
    one_line_error(lambda: SegformerParser(tmp_path / "nowhere"), str(tmp_path / "nowhere"), "no such folder")
    empty = tmp_path / "empty"
    empty.mkdir()
    one_line_error(lambda: SegformerParser(empty), str(empty), "config.json")
    no_weights = tmp_path / "no-weights"
    no_weights.mkdir()
    (no_weights / "config.json").write_text((atr_folder / "config.json").read_text())
    one_line_error(lambda: SegformerParser(no_weights), str(no_weights), "model.safetensors")
    other = tmp_path / "bert"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "bert"}))
    one_line_error(lambda: SegformerParser(other), str(other), "not a SegFormer", "'bert'")


def test_error_for_unknown_labels(tmp_path):
    folder = save_model(tmp_path / "ade", ["Background", "Face", "wall", "sky"])
    one_line_error(lambda: SegformerParser(folder), str(folder), "'wall'", "'sky'")


def test_error_for_a_backbone_without_decode_head(tmp_path):
    names = [n for n, _ in ATR]
    folder = tmp_path / "backbone"
    transformers.SegformerModel(tiny_config(names)).save_pretrained(folder)
    one_line_error(lambda: SegformerParser(folder), str(folder), "missing", "decode_head")


def test_errors_for_bad_inputs(atr_folder):
    parser = SegformerParser(atr_folder)
    one_line_error(lambda: parser(photo(10, 10).astype(np.float32)), "uint8")
    one_line_error(lambda: parser(photo(10, 10)[..., 0]), "(H, W, 3)")
    one_line_error(lambda: parser(photo(10, 10), np.ones((10, 11), bool)), "mask")


def test_load_parser_kinds(monkeypatch, atr_folder):
    assert PARSERS == ("coarse", "segformer")
    assert load_parser("coarse") is None
    one_line_error(lambda: load_parser("segformer"), "--parser segformer needs --parser-weights DIR",
                   "nothing is downloaded")
    one_line_error(lambda: load_parser("deeplab"), "'deeplab'", "coarse", "segformer")
    monkeypatch.setenv("SPGNET_PARSER_WEIGHTS", str(atr_folder))
    assert load_parser("segformer").weights == atr_folder


def test_missing_transformers_is_one_line(monkeypatch, atr_folder):
    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers -> ImportError
    one_line_error(lambda: SegformerParser(atr_folder), "pip install 'spgnet[parser]'")


# -- through `spgnet prepare` -------------------------------------------------------------------


def test_prepare_with_the_learned_parser(tmp_path, capsys):
    """--parser segformer replaces the coarse parsing inside the same person mask."""
    from PIL import Image
    from skimage import data

    from spgnet.cli import main

    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(data.astronaut()).save(photos / "astro.png")
    pants = save_model(tmp_path / "pants", [n for n, _ in ATR], forced=6)  # ATR 6 = Pants everywhere
    args = ["prepare", "--images", str(photos), "--size", "128x88", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "coarse")]) == 0
    assert main([*args, "--out", str(tmp_path / "learned"), "--parser", "segformer", "--parser-weights", str(pants)]) == 0
    coarse = np.asarray(Image.open(tmp_path / "coarse" / "parsing" / "astro.png"))
    learned = np.asarray(Image.open(tmp_path / "learned" / "parsing" / "astro.png"))
    np.testing.assert_array_equal(learned > 0, coarse > 0)  # the same person mask
    assert set(np.unique(learned)) == {0, 9}  # CIHP pants inside it
    assert f"parsing: SegformerParser from {pants}" in (tmp_path / "learned" / "prepare_report.txt").read_text()
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path / "none"), "--parser", "segformer"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--parser-weights" in err


def test_half_precision_weights_run_in_float32(tmp_path):
    """A checkpoint stored in float16 (newer transformers load it as float16) meets float32 input."""
    folder = save_model(tmp_path / "half", [n for n, _ in ATR], forced=6)
    transformers.SegformerForSemanticSegmentation.from_pretrained(folder).half().save_pretrained(folder)
    parser = SegformerParser(folder)
    assert next(parser.model.parameters()).dtype == torch.float32
    assert set(np.unique(parser(photo(20, 16)))) == {9}  # ATR 6 = Pants everywhere -> CIHP pants
