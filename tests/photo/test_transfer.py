"""`spgnet transfer` / `spgnet animate` on a real photo (scikit-image's astronaut) with a tiny
checkpoint trained here: output sizes, byte-identical reruns, the source prepared exactly as
`spgnet prepare` writes it, a flipped photo giving mirrored target keypoints, JSON poses in
another frame scaled by hand-computed geometry, the batch matching the dataset's
`complete_batch` path, GIF frames and strips, and one-line errors."""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.ndimage import binary_dilation
from skimage import data

from spgnet.cli import main
from spgnet.data.dataset import complete_batch
from spgnet.utils.io import image_to_tensor, load_image, tensor_to_image
from spgnet.parsing import CIHP_PALETTE
from spgnet.pose import FLIP_INDEX, read_annotation_csv, render_pose_image, write_openpose_json
from spgnet.photo.pose_sequence import fit_keypoints, read_pose_sequence
from spgnet.photo.transfer import PoseTransfer

from helpers import SIZE

H, W = SIZE  # 64 x 44, the tiny checkpoint's load size


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def env(tmp_path_factory, tiny_run) -> dict:
    """The 2-step tiny checkpoint, photos and pose files."""
    base = tmp_path_factory.mktemp("transfer")
    root = tiny_run["root"]

    photos = base / "photos"
    photos.mkdir()
    astronaut = data.astronaut()
    Image.fromarray(astronaut).save(photos / "astro.jpg", quality=90)
    Image.fromarray(np.ascontiguousarray(astronaut[:, ::-1])).save(photos / "flip.jpg", quality=90)
    Image.fromarray(np.full((120, 80, 3), 128, np.uint8)).save(base / "blank.jpg")
    (base / "broken.jpg").write_bytes(b"this is not a JPEG")

    kps = read_annotation_csv(root / "annotation-test.csv")  # synthetic poses at the load size
    poses = np.stack([kps[name] for name in sorted(kps)][:3])  # (3, 18, 2), integer pixels, -1 missing
    write_openpose_json(base / "pose0.json", poses[0])
    return {"base": base, "ckpt": tiny_run["ckpt"], "photos": photos, "poses": poses}


def run_ok(capsys, *argv) -> str:
    code = main(list(argv))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


def one_line_error(capsys, *argv) -> str:
    code = main(list(argv))
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("spgnet "), err
    return err


def scaled_2x(kp: np.ndarray) -> np.ndarray:
    """Pixel centres of an H x W image -> the same points on a 2H x 2W image (missing stays -1)."""
    return np.where(kp < 0, -1.0, 2 * kp + 0.5)


# --------------------------------------------------------------------------- transfer


def test_transfer_from_photo_is_deterministic_and_sheet_has_four_tiles(env, tmp_path, capsys):
    ckpt, photos = str(env["ckpt"]), env["photos"]
    args = ["transfer", "--checkpoint", ckpt, "--source", str(photos / "astro.jpg"),
            "--target-pose", str(photos / "flip.jpg"), "--device", "cpu"]
    run_ok(capsys, *args, "--out", str(tmp_path / "a.png"))
    run_ok(capsys, *args, "--out", str(tmp_path / "b.png"))
    run_ok(capsys, *args, "--out", str(tmp_path / "sheet.png"), "--sheet")
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    result = load_image(tmp_path / "a.png")
    assert result.shape == (H, W, 3)

    sheet = load_image(tmp_path / "sheet.png")
    assert sheet.shape == (H, 4 * W, 3)
    source, pose, parsing, generated = (sheet[:, i * W : (i + 1) * W] for i in range(4))
    np.testing.assert_array_equal(generated, result)
    # the source tile is the picture `spgnet prepare` writes for the same photo
    run_ok(capsys, "prepare", "--images", str(photos), "--out", str(tmp_path / "prepared"), "--size", f"{H}x{W}",
           "--quiet")
    np.testing.assert_array_equal(source, load_image(tmp_path / "prepared" / "test" / "astro.png"))
    colours = {tuple(c) for c in parsing.reshape(-1, 3)}
    assert colours <= {tuple(c) for c in CIHP_PALETTE.tolist()}  # (a 2-step stage 1 predicts mostly background)
    target_kp = read_annotation_csv(tmp_path / "prepared" / "annotation-test.csv")["flip.png"]
    # the skeleton of the target photo's keypoints; the CSV rounds them to integer pixels: within 1 px
    drawn, tile = render_pose_image(target_kp, (H, W)).any(-1), pose.any(-1)
    assert tile.sum() > 50
    assert (tile <= binary_dilation(drawn, np.ones((3, 3)))).all() and (drawn <= binary_dilation(tile, np.ones((3, 3)))).all()


def test_flipped_photo_gives_mirrored_pose_and_rng_is_untouched(env):
    with PoseTransfer(env["ckpt"], "cpu") as model:
        src = model.prepare(env["photos"] / "astro.jpg")
        tgt = model.target_pose(env["photos"] / "flip.jpg")
        before = torch.get_rng_state()
        images, _ = model.render(src, np.stack([tgt, tgt]))
        assert torch.equal(torch.get_rng_state(), before)
    # the mirror of the source by hand: joint j of the mirrored person is joint FLIP_INDEX[j], x -> W - 1 - x
    mirrored = src.keypoints[list(FLIP_INDEX)].copy()
    mirrored[:, 0] = W - 1 - mirrored[:, 0]
    head_and_shoulders = [0, 1, 2, 5, 14, 15, 16, 17]
    both = [j for j in head_and_shoulders if (src.keypoints[FLIP_INDEX[j]] >= 0).all() and (tgt[j] >= 0).all()]
    assert len(both) >= 6
    error = np.linalg.norm(tgt[both] - mirrored[both], axis=-1)  # BlazePose is not exactly mirror-symmetric
    assert error.mean() < 2.5 and error.max() < 6.0, error
    assert images.shape == (2, H, W, 3)


def test_render_matches_the_dataset_batch_path(env):
    """The batch transfer builds equals what complete_batch makes from dataset-style tensors."""
    with PoseTransfer(env["ckpt"], "cpu", seed=5, batch_size=2) as model:
        src = model.prepare(env["photos"] / "astro.jpg")
        images, parsing = model.render(src, env["poses"][:2])
        net, cfg = model.net, model.cfg
    labels = torch.from_numpy(src.parsing.astype(np.int64))[None].repeat(2, 1, 1)
    batch = {"src_image": image_to_tensor(src.image)[None].repeat(2, 1, 1, 1), "src_parsing": labels,
             "tgt_parsing": labels,  # complete_batch wants it; inference uses the predicted parsing
             "src_kp": torch.from_numpy(src.keypoints)[None].repeat(2, 1, 1),
             "tgt_kp": torch.from_numpy(env["poses"][:2].astype(np.float32))}
    torch.manual_seed(5)
    ref = net.infer(complete_batch(batch, cfg.data, "cpu"))
    np.testing.assert_array_equal(parsing, ref["parsing"].numpy())
    np.testing.assert_array_equal(images, np.stack([tensor_to_image(t) for t in ref["image"]]))


def test_transfer_from_json_in_another_frame(env, tmp_path, capsys):
    base, pose = env["base"], env["poses"][0]
    write_openpose_json(tmp_path / "big.json", scaled_2x(pose))
    common = ["transfer", "--checkpoint", str(env["ckpt"]), "--source", str(env["photos"] / "astro.jpg"),
              "--device", "cpu"]
    run_ok(capsys, *common, "--target-pose", str(base / "pose0.json"), "--out", str(tmp_path / "a.png"))
    run_ok(capsys, *common, "--target-pose", str(tmp_path / "big.json"), "--pose-size", f"{2 * H}x{2 * W}",
           "--out", str(tmp_path / "b.png"))
    run_ok(capsys, *common, "--target-pose", str(base / "pose0.json"), "--out", str(tmp_path / "s.jpg"), "--sheet")
    assert load_image(tmp_path / "a.png").shape == (H, W, 3)
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    sheet = load_image(tmp_path / "s.jpg")
    assert sheet.shape == (H, 4 * W, 3)


def test_fit_keypoints_hand_computed():
    missing = [-1.0, -1.0]
    # 128 x 256 frame -> 64 x 44: scale 0.5 (x' = (x + 0.5) / 2 - 0.5), width 128 cropped to a
    # window centred on the joints: centre (99.75 + 119.75) / 2 = 109.75, left = round(88.25) = 88,
    # clipped to 128 - 44 = 84
    kp = np.array([[200.0, 20.0], [240.0, 40.0]] + [missing] * 16)
    out = fit_keypoints(kp, (128, 256), (64, 44))
    np.testing.assert_allclose(out[:2], [[99.75 - 84, 9.75], [119.75 - 84, 19.75]])
    assert (out[2:] == -1).all()
    # 64 x 22 frame: same height, padded by (44 - 22) // 2 = 11 on the left; a joint below the picture is dropped
    kp = np.array([[5.0, 10.0], [3.0, 70.0]] + [missing] * 16)
    out = fit_keypoints(kp, (64, 22), (64, 44))
    np.testing.assert_allclose(out[0], [16.0, 10.0])
    assert (out[1:] == -1).all()
    # a sequence shares one window: frames (N, 18, 2)
    seq = np.stack([np.array([[200.0, 20.0]] + [missing] * 17), np.array([[240.0, 40.0]] + [missing] * 17)])
    np.testing.assert_allclose(fit_keypoints(seq, (128, 256), (64, 44))[:, 0], [[15.75, 9.75], [35.75, 19.75]])


# --------------------------------------------------------------------------- animate


def test_animate_writes_gif_and_strip(env, tmp_path, capsys):
    poses = env["poses"]
    seq = tmp_path / "seq.json"
    seq.write_text(json.dumps({"size": [2 * H, 2 * W], "poses": scaled_2x(poses).tolist()}))
    out = run_ok(capsys, "animate", "--checkpoint", str(env["ckpt"]), "--source", str(env["photos"] / "astro.jpg"),
                 "--poses", str(seq), "--out", str(tmp_path / "a.gif"), "--strip", str(tmp_path / "strip.png"),
                 "--fps", "5", "--batch-size", "1", "--device", "cpu")
    assert "3 frame(s)" in out
    with Image.open(tmp_path / "a.gif") as gif:
        assert gif.n_frames == 3 and gif.size == (W, H)
        assert gif.info["duration"] == 200 and gif.info["loop"] == 0
    strip = load_image(tmp_path / "strip.png")
    assert strip.shape == (H, 3 * W, 3)
    # frame 0 with batches of one and the same seed is the single transfer to pose 0
    run_ok(capsys, "transfer", "--checkpoint", str(env["ckpt"]), "--source", str(env["photos"] / "astro.jpg"),
           "--target-pose", str(env["base"] / "pose0.json"), "--out", str(tmp_path / "t.png"), "--device", "cpu")
    np.testing.assert_array_equal(strip[:, :W], load_image(tmp_path / "t.png"))


def test_animate_writes_mp4(env, tmp_path, capsys):
    """MP4 through imageio-ffmpeg (in the photo and dev extras): H.264 frames that decode back
    to the frame strip's frames (lossy: close, not equal), the size padded to even numbers."""
    import imageio_ffmpeg

    seq = tmp_path / "seq.json"
    seq.write_text(json.dumps({"size": [2 * H, 2 * W], "poses": scaled_2x(env["poses"]).tolist()}))
    run_ok(capsys, "animate", "--checkpoint", str(env["ckpt"]), "--source", str(env["photos"] / "astro.jpg"),
           "--poses", str(seq), "--out", str(tmp_path / "a.mp4"), "--strip", str(tmp_path / "strip.png"),
           "--fps", "5", "--device", "cpu")
    reader = imageio_ffmpeg.read_frames(str(tmp_path / "a.mp4"))
    meta = next(reader)
    assert tuple(meta["size"]) == (W + W % 2, H + H % 2) and meta["fps"] == 5
    frames = [np.frombuffer(f, np.uint8).reshape(H + H % 2, W + W % 2, 3)[:H, :W] for f in reader]
    strip = load_image(tmp_path / "strip.png")
    assert len(frames) == 3
    # the tiny model's frames are noise-like, which H.264 at 64x44 smooths a lot; compare
    # 4x4-block means: each decoded frame is closest to its own frame of the strip
    blocks = lambda im: im.astype(float).reshape(H // 4, 4, W // 4, 4, 3).mean((1, 3))  # noqa: E731
    dist = np.array([[np.abs(blocks(f) - blocks(strip[:, j * W:(j + 1) * W])).mean() for j in range(3)]
                     for f in frames])
    assert (dist.argmin(1) == np.arange(3)).all(), dist


def test_pose_sequence_formats_and_folders(env, tmp_path):
    poses = env["poses"]
    people = tmp_path / "people.json"  # a list of OpenPose people objects at the load size
    people.write_text(json.dumps([
        {"pose_keypoints_2d": [v for x, y in p for v in ((0.0, 0.0, 0.0) if x < 0 else (x, y, 0.9))]}
        for p in poses.tolist()]))
    got, size = read_pose_sequence(people)
    assert size is None
    np.testing.assert_array_equal(got, poses)

    folder = tmp_path / "frames"
    folder.mkdir()
    write_openpose_json(folder / "b.json", poses[1])
    write_openpose_json(folder / "c.json", poses[2])
    shutil.copy(env["photos"] / "flip.jpg", folder / "a.jpg")
    (folder / "notes.txt").write_text("ignored\n")
    with PoseTransfer(env["ckpt"], "cpu", batch_size=2) as model:
        kps, files = model.pose_sequence(folder)
        assert [f.name for f in files] == ["a.jpg", "b.json", "c.json"]
        np.testing.assert_array_equal(kps[1:], poses[1:])
        np.testing.assert_array_equal(kps[0], model.target_pose(env["photos"] / "flip.jpg"))
        result = model.animate(env["photos"] / "astro.jpg", people)
        assert result.frames.shape == (3, H, W, 3) and result.parsing.shape == (3, H, W)
        # stage 1 has no noise: the same poses one at a time give the same parsing
        model.batch_size = 1
        _, parsing = model.render(result.source, poses)
        np.testing.assert_array_equal(parsing, result.parsing)


# --------------------------------------------------------------------------- errors


def test_errors_are_one_line(env, tmp_path, capsys, monkeypatch):
    base, photos, ckpt = env["base"], env["photos"], str(env["ckpt"])
    astro, flip = str(photos / "astro.jpg"), str(photos / "flip.jpg")

    def transfer(*extra, checkpoint=ckpt, source=astro, target=flip, out=str(tmp_path / "o.png")):
        return one_line_error(capsys, "transfer", "--checkpoint", checkpoint, "--source", source,
                              "--target-pose", target, "--out", out, "--device", "cpu", *extra)

    def animate(poses, out=str(tmp_path / "o.gif"), *extra, checkpoint=ckpt):
        return one_line_error(capsys, "animate", "--checkpoint", checkpoint, "--source", astro, "--poses", poses,
                              "--out", out, "--device", "cpu", *extra)

    # unreadable image, no person (source and target)
    err = transfer(source=str(base / "broken.jpg"))
    assert "broken.jpg" in err and "cannot read image" in err
    err = transfer(source=str(base / "blank.jpg"))
    assert "blank.jpg" in err and "no person" in err
    err = transfer(target=str(base / "blank.jpg"))
    assert "blank.jpg" in err and "no person" in err
    # keypoint JSON malformed
    bad = tmp_path / "bad.json"
    bad.write_text("{ not json")
    assert "bad.json" in transfer(target=str(bad))
    (tmp_path / "short.json").write_text(json.dumps({"people": [{"pose_keypoints_2d": [1, 2, 3]}]}))
    assert "short.json" in transfer(target=str(tmp_path / "short.json"))
    (tmp_path / "seq.json").write_text(json.dumps({"poses": [env["poses"][0].tolist(), [[1, 2]] * 17]}))
    err = animate(str(tmp_path / "seq.json"))
    assert "seq.json" in err and "poses[1]" in err
    (tmp_path / "empty").mkdir()
    assert "no pose files" in animate(str(tmp_path / "empty"))
    assert "target.txt" in transfer(target=str(tmp_path / "target.txt"))
    # checkpoint problems
    assert "checkpoint not found" in transfer(checkpoint=str(tmp_path / "nowhere"))
    assert "not a complete spgnet checkpoint" in transfer(checkpoint=str(base))
    for name, edit, words in (
        ("disk", lambda c: c["data"]["pose"].update(kind="disk"), "18 channels"),
        ("wide", lambda c: c["model"]["generator"].update(nf=8), "do not fit"),
        ("file", lambda c: c["train"].update(flow="file"), "train.flow=file"),
    ):
        copy = tmp_path / f"ckpt-{name}"
        shutil.copytree(env["ckpt"], copy)
        cfg = json.loads((copy / "config.json").read_text())
        edit(cfg)
        (copy / "config.json").write_text(json.dumps(cfg))
        err = transfer(checkpoint=str(copy))
        assert words in err and str(copy) in err, err
    # output suffixes and writers
    assert "'.bmp'" in transfer(out=str(tmp_path / "o.bmp"))
    assert "'.avi'" in animate(str(tmp_path / "seq.json"), str(tmp_path / "o.avi"))
    assert "--strip" in animate(str(tmp_path / "seq.json"), str(tmp_path / "o.gif"), "--strip", str(tmp_path / "s.gif"))
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # as if not installed
    err = animate(str(tmp_path / "seq.json"), str(tmp_path / "o.mp4"))
    assert "imageio-ffmpeg" in err and ".gif" in err
    assert not list(tmp_path.glob("o.*"))



def test_transfer_chooses_a_person_and_warns(env, tmp_path, capsys):
    """A photo of two seated men: a warning names it and the count; --person picks the
    source person (the crop follows him), and a K beyond the count is one line."""
    from pathlib import Path

    two = Path(__file__).resolve().parents[1] / "assets" / "real-people" / "images" / "mpii_052475643.jpg"
    outs = {}
    for k in ("1", "2"):
        out = tmp_path / f"p{k}.png"
        code = main(["transfer", "--checkpoint", str(env["ckpt"]), "--source", str(two), "--target-pose",
                     str(env["base"] / "pose0.json"), "--out", str(out), "--person", k, "--sheet"])
        captured = capsys.readouterr()
        assert code == 0, captured.err
        assert f"warning: {two}: 2 people found; using person {k} from the left" in captured.err
        outs[k] = np.asarray(Image.open(out))
    w = outs["1"].shape[1] // 4
    assert not np.array_equal(outs["1"][:, :w], outs["2"][:, :w])  # another source person
    err = one_line_error(capsys, "transfer", "--checkpoint", str(env["ckpt"]), "--source", str(two), "--target-pose",
                         str(env["base"] / "pose0.json"), "--out", str(tmp_path / "x.png"), "--person", "5")
    assert "mpii_052475643.jpg" in err and "shows 2 person(s)" in err
