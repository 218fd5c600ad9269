"""`spgnet prepare`: a folder of photos -> the docs/design.md §4 layout that `spgnet check` accepts
and PairDataset loads; the pad/crop geometry against an independent PIL resize; skipped
photos; pairs; errors that name the file; EXIF orientation and transparency."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from spgnet import SPGNetError
from spgnet.cli import main
from spgnet.config import DatasetConfig
from spgnet.data.dataset import PairDataset
from spgnet.photo.detect import PoseDetector
from spgnet.pose import KEYPOINT_NAMES
from spgnet.photo.prepare import DEFAULT_VISIBILITY, load_photo, make_pairs, prepare_photos

H, W = 128, 88
NARROW = (slice(None), slice(100, 330))  # a 512 x 230 cut of the astronaut: narrower than H x W, padded


@pytest.fixture(scope="module")
def detector():
    with PoseDetector(DEFAULT_VISIBILITY) as det:
        yield det


def detected_on_photo(detector, photo: np.ndarray, height: int) -> np.ndarray:
    """Keypoints of the (only) person, found on the photo itself and brought by hand onto
    the picture scaled to ``height``: pixel centres scale about the corner."""
    people = detector.detect_people(photo)
    assert len(people) == 1
    s = height / photo.shape[0]
    kp = people[0].keypoints
    return np.where((kp >= 0).all(1, keepdims=True), (kp + 0.5) * s - 0.5, -1.0).astype(np.float32)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    a = data.astronaut()
    Image.fromarray(a).save(folder / "astro_1.jpg", quality=90)
    Image.fromarray(np.ascontiguousarray(a[:, ::-1])).save(folder / "astro_2.jpg", quality=90)
    Image.fromarray(np.ascontiguousarray(a[NARROW])).save(folder / "astro_3.png")
    Image.fromarray(np.full((300, 200, 3), 190, np.uint8)).save(folder / "blank.jpg")
    (folder / "notes.txt").write_text("not a photo, ignored\n")
    return folder


@pytest.fixture(scope="module")
def prepared(photos, tmp_path_factory) -> tuple[Path, int, str]:
    root = tmp_path_factory.mktemp("prepared") / "data"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main(["prepare", "--images", str(photos), "--out", str(root), "--size", f"{H}x{W}", "--split", "both",
                   "--quiet"])
    return root, rc, out.getvalue()


def read_csv_rows(path: Path) -> dict[str, np.ndarray]:
    """Independent PATN reader: {name: (18, 2) (x, y)} from 'name: ys: xs'."""
    rows = {}
    for line in path.read_text().splitlines()[1:]:
        name, ys, xs = line.split(":")
        rows[name.strip()] = np.stack([json.loads(xs), json.loads(ys)], -1).astype(np.float32)
    return rows


def pil_resize(array: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.asarray(Image.fromarray(array).resize((width, height), Image.Resampling.LANCZOS))


def expected_annotation(kp: np.ndarray, dx: int) -> np.ndarray:
    """Detected keypoints shifted by dx and rounded as the CSV stores them; off-image -> -1."""
    present = (kp >= 0).all(1)
    out = np.rint(kp + np.array([dx, 0], np.float32))
    off = (out[:, 0] < 0) | (out[:, 0] > W - 1) | (out[:, 1] > H - 1)
    out[~present | off] = -1
    return out


# -- the whole folder --------------------------------------------------------------------


def test_prepare_output_passes_check(prepared, capsys):
    root, rc, printed = prepared
    assert rc == 0
    assert main(["check", str(root)]) == 0  # both splits, every file
    assert "no problems found" in capsys.readouterr().out
    skipped = [line for line in printed.splitlines() if line.startswith("no person found in ")]
    assert len(skipped) == 1 and skipped[0].endswith("blank.jpg")


def test_layout_report_and_pairs(prepared, photos):
    root, _, _ = prepared
    names = ["astro_1.png", "astro_2.png", "astro_3.png"]
    for split in ("train", "test"):
        assert sorted(p.name for p in (root / split).iterdir()) == names
        assert sorted(read_csv_rows(root / f"annotation-{split}.csv")) == names
        lines = (root / f"pairs-{split}.csv").read_text().splitlines()
        assert lines[0] == "from,to"
        assert sorted(tuple(x.split(",")) for x in lines[1:]) == sorted((a, b) for a in names for b in names if a != b)
    assert sorted(p.name for p in (root / "parsing").iterdir()) == names
    report = (root / "prepare_report.txt").read_text()
    assert f"no person found in {photos / 'blank.jpg'}" in report
    assert "3 image(s) with a person, 1 skipped, 6 pair(s)" in report
    assert "keypoints: BlazePose (mediapipe), visibility >= " in report and "parsing: coarse" in report
    for name in names:
        with Image.open(root / "test" / name) as im:
            assert im.size == (W, H) and im.mode == "RGB"
        with Image.open(root / "parsing" / name) as im:
            assert im.size == (W, H) and im.mode == "L"


def test_square_photo_is_cropped_around_the_person(prepared, photos, detector):
    root, _, _ = prepared
    with Image.open(photos / "astro_1.jpg") as im:
        decoded = np.asarray(im.convert("RGB"))
    scaled = pil_resize(decoded, H, H)  # 512 x 512 -> 128 x 128, then an 88-wide window
    written = np.asarray(Image.open(root / "test" / "astro_1.png"))
    offsets = [o for o in range(H - W + 1) if np.array_equal(scaled[:, o : o + W], written)]
    assert len(offsets) == 1
    kp = detected_on_photo(detector, decoded, H)
    nose = kp[KEYPOINT_NAMES.index("nose")]
    assert abs(nose[0] - offsets[0] - W / 2) < 20  # the window is centred on the person, not the picture
    stored = read_csv_rows(root / "annotation-test.csv")["astro_1.png"]
    np.testing.assert_allclose(stored, expected_annotation(kp, -offsets[0]), atol=1)


def test_narrow_photo_is_padded(prepared, photos, detector):
    root, _, _ = prepared
    cut = data.astronaut()[NARROW]
    scaled_w = round(cut.shape[1] * H / cut.shape[0])  # 58
    scaled = pil_resize(cut, scaled_w, H)
    pad = (W - scaled_w) // 2
    written = np.asarray(Image.open(root / "test" / "astro_3.png"))
    np.testing.assert_array_equal(written[:, pad : pad + scaled_w], scaled)
    np.testing.assert_array_equal(written[:, :pad], np.broadcast_to(written[:1, :1], (H, pad, 3)))
    np.testing.assert_array_equal(written[:, pad + scaled_w :], np.broadcast_to(written[:1, -1:], (H, W - pad - scaled_w, 3)))
    parsing = np.asarray(Image.open(root / "parsing" / "astro_3.png"))
    assert (parsing[:, :pad] == 0).all() and (parsing[:, pad + scaled_w :] == 0).all()
    with Image.open(photos / "astro_3.png") as im:
        kp = detected_on_photo(detector, np.asarray(im.convert("RGB")), H)
    stored = read_csv_rows(root / "annotation-test.csv")["astro_3.png"]
    np.testing.assert_allclose(stored, expected_annotation(kp, pad), atol=1)


def test_pair_dataset_round_trip(prepared):
    root, _, _ = prepared
    ds = PairDataset(DatasetConfig(root=str(root), load_size=[H, W]), "test")
    assert len(ds) == 6
    sample = ds[0]
    name = sample["from_name"]
    image = np.asarray(Image.open(root / "test" / name), dtype=np.float32)
    torch.testing.assert_close(sample["src_image"], torch.from_numpy(image).permute(2, 0, 1) / 127.5 - 1)
    parsing = np.asarray(Image.open(root / "parsing" / name)).astype(np.int64)
    torch.testing.assert_close(sample["src_parsing"], torch.from_numpy(parsing))
    torch.testing.assert_close(sample["src_kp"], torch.from_numpy(read_csv_rows(root / "annotation-test.csv")[name]))
    assert sample["src_pose"].shape == (30, H, W)
    # the parsing agrees with the keypoints: face under the nose, a body part under every joint
    kp = sample["src_kp"].numpy()
    x, y = kp[KEYPOINT_NAMES.index("nose")].astype(int)
    assert parsing[y, x] == 13
    present = kp[(kp >= 0).all(1)].astype(int)
    assert (parsing[present[:, 1], present[:, 0]] > 0).mean() >= 0.8


def test_by_prefix_pairs_and_all_pairs():
    names = ["anna_1.png", "anna_2.png", "bob_1.png", "carl.png", "bob_x_2.png"]
    assert make_pairs(names, "by-prefix") == [
        ("anna_1.png", "anna_2.png"), ("anna_2.png", "anna_1.png"),
        ("bob_1.png", "bob_x_2.png"), ("bob_x_2.png", "bob_1.png"),
    ]
    everything = make_pairs(names, "all")
    assert len(everything) == 20 == len(set(everything)) and all(a != b for a, b in everything)
    with pytest.raises(SPGNetError, match="--pairs"):
        make_pairs(names, "some")


# -- errors ------------------------------------------------------------------------------


def run_cli(*argv) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(["prepare", *argv])
    return rc, err.getvalue()


def test_unreadable_image_is_named(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(data.astronaut()).save(folder / "a.jpg")
    (folder / "broken.jpg").write_bytes(b"this is not a JPEG")
    rc, err = run_cli("--images", str(folder), "--out", str(tmp_path / "out"), "--quiet")
    assert rc == 2
    assert len(err.strip().splitlines()) == 1 and "broken.jpg" in err and "cannot read image" in err
    assert not (tmp_path / "out" / "test").exists()  # nothing written before the check


def test_truncated_image_is_named(tmp_path, detector):
    folder = tmp_path / "in"
    folder.mkdir()
    buf = io.BytesIO()
    Image.fromarray(data.astronaut()).save(buf, format="JPEG")
    (folder / "cut.jpg").write_bytes(buf.getvalue()[:2000])
    with pytest.raises(SPGNetError, match="cut.jpg"):
        prepare_photos(folder, tmp_path / "out", size=(H, W), progress=False, detector=detector)


@pytest.mark.parametrize("size", ["abc", "12x7", "256"])
def test_bad_size(tmp_path, photos, size):
    rc, err = run_cli("--images", str(photos), "--out", str(tmp_path / "out"), "--size", size)
    assert rc == 2 and "--size" in err


def test_empty_and_missing_folders(tmp_path, detector):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("x")
    with pytest.raises(SPGNetError, match="no JPEG or PNG"):
        prepare_photos(empty, tmp_path / "out", progress=False, detector=detector)
    with pytest.raises(SPGNetError, match="not found"):
        prepare_photos(tmp_path / "nowhere", tmp_path / "out", progress=False, detector=detector)


def test_no_person_anywhere_is_an_error_with_a_report(tmp_path, detector):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(np.zeros((64, 48, 3), np.uint8)).save(folder / "dark.png")
    with pytest.raises(SPGNetError, match="no person found in any"):
        prepare_photos(folder, tmp_path / "out", size=(H, W), progress=False, detector=detector)
    assert f"no person found in {folder / 'dark.png'}" in (tmp_path / "out" / "prepare_report.txt").read_text()


def test_refuses_a_non_empty_split_folder(tmp_path, photos, detector):
    out = tmp_path / "out"
    (out / "test").mkdir(parents=True)
    (out / "test" / "old.png").write_bytes(b"x")
    with pytest.raises(SPGNetError, match="not empty"):
        prepare_photos(photos, out, size=(H, W), progress=False, detector=detector)


# -- reading photos ----------------------------------------------------------------------


def test_load_photo_applies_exif_orientation_and_alpha(tmp_path):
    a = data.astronaut()[:, :300]  # not square, so a missing rotation shows in the shape
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation 6: the stored pixels are the upright picture turned 90 degrees left
    Image.fromarray(np.ascontiguousarray(np.rot90(a, 1))).save(tmp_path / "turned.jpg", quality=95, exif=exif)
    upright = load_photo(tmp_path / "turned.jpg")
    assert upright.shape == a.shape
    assert np.abs(upright.astype(int) - a).mean() < 4
    rgba = np.zeros((20, 30, 4), np.uint8)
    rgba[..., 0] = 255  # red, fully transparent
    Image.fromarray(rgba).save(tmp_path / "clear.png")
    np.testing.assert_array_equal(load_photo(tmp_path / "clear.png"), np.full((20, 30, 3), 255, np.uint8))


def test_a_back_view_is_written_without_a_face(detector):
    """A synthetic back view (seed [41, 7]): BlazePose places a nose and eyes on the back of
    the head and draws the skeleton as if seen from the front. Prepared, the pose has no
    nose and no eyes (a pose with them asks the generator for a face), keeps its ears, and
    its right shoulder lies on the image's right, as seen from behind. The front view of
    the astronaut keeps her face."""
    from spgnet.data.synth_body import sample_identity, sample_pose
    from spgnet.data.synth_render import render_person
    from spgnet.photo.prepare import prepare_photo

    rng = np.random.default_rng([41, 7])
    person = render_person(sample_identity(rng), sample_pose(rng, view="back"), (256, 176))
    raw = detector.detect_people(person["image"])[0]
    assert (raw.landmarks[[0, 2, 5], 2] >= DEFAULT_VISIBILITY).all()  # BlazePose's nose and eyes are there
    got = prepare_photo(person["image"], (256, 176), detector)
    assert got.facing == "back"
    names = list(KEYPOINT_NAMES)
    kp = got.keypoints
    assert (kp[[names.index("nose"), names.index("r-eye"), names.index("l-eye")]] == -1).all()
    assert (kp[[names.index("r-ear"), names.index("l-ear")]] >= 0).all(1).any()
    assert kp[names.index("r-shoulder"), 0] > kp[names.index("l-shoulder"), 0]
    front = prepare_photo(data.astronaut(), (256, 176), detector)
    assert front.facing == "front" and (front.keypoints[[names.index("nose"), names.index("r-eye")]] >= 0).all()


def test_a_prepared_photo_takes_its_face_from_the_face_outline(detector):
    """A synthetic woman at 512 x 352 (seed [31, 36]: hair beside her face), prepared at
    256 x 176 (exactly half: no crop, no padding), against her true parsing halved. The
    face's outline, found on the photo and carried to the model's size with the keypoints,
    gives the face (IoU 0.66 and hair 0.62 with the face ellipse)."""
    from spgnet.data.synth_body import sample_identity, sample_pose
    from spgnet.data.synth_render import render_person
    from spgnet.parsing import LABEL_INDEX as L
    from spgnet.photo.prepare import prepare_photo

    rng = np.random.default_rng([31, 36])
    person = render_person(sample_identity(rng), sample_pose(rng, view="front"), (512, 352))
    got = prepare_photo(person["image"], (256, 176), detector)
    truth = np.asarray(Image.fromarray(person["parsing"]).resize((176, 256), Image.Resampling.NEAREST))
    for part, least in (("face", 0.8), ("hair", 0.75)):
        a, b = truth == L[part], got.parsing == L[part]
        assert (a & b).sum() / (a | b).sum() > least, part
