"""`spgnet serve` without a browser: the handlers against `PoseTransfer` and `spgnet transfer` for
the same photo, pose and seed (pixel-exact), the pose nudge against hand-computed keypoints,
upload limits, one-line errors on the page, the CLI's defaults and its missing-checkpoint and
missing-gradio lines, the gallery files, and the HTTP API through gradio_client (equal to the
CLI's PNG, pixel for pixel), including the refusal of a server path named by a client."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from spgnet import SPGNetError
from spgnet.apps.serve import (GRADIO_MISSING, MAX_FRAMES, POSES_DIR, ServeHandlers, build_app, find_checkpoint,
                               launch, load_gallery, nudge_pose, one_line_errors)
from spgnet.cli import build_parser, main
from spgnet.parsing import CIHP_PALETTE
from spgnet.photo.animation import frame_strip
from spgnet.photo.transfer import PoseTransfer
from spgnet.pose import draw_skeleton, read_openpose_json, render_pose_image
from spgnet.utils.io import load_image

from helpers import SIZE

H, W = SIZE  # 64 x 44, the tiny checkpoint's load size
SRC = Path(__file__).resolve().parents[2] / "src"

pytestmark = [pytest.mark.usefixtures("one_thread"),
              # gradio 6.31's queue statistics use pandas options that pandas 3 deprecates (not ours)
              pytest.mark.filterwarnings("ignore::DeprecationWarning:gradio.queueing")]


def synthetic_photo(path: Path, seed: int, size=(384, 256)) -> Path:
    """A synthetic person (front view) rendered independently of the app's own examples."""
    from spgnet.data.synth_body import sample_identity, sample_pose
    from spgnet.data.synth_render import render_person

    rng = np.random.default_rng(seed)
    person = render_person(sample_identity(rng), sample_pose(rng, view="front", zoom=False), size)
    Image.fromarray(person["image"]).save(path)
    return path


@pytest.fixture(scope="module")
def env(tmp_path_factory, tiny_run) -> dict:
    base = tmp_path_factory.mktemp("serve")
    Image.fromarray(np.full((256, 176, 3), 128, np.uint8)).save(base / "grey.png")
    (base / "broken.png").write_bytes(b"not a PNG at all")
    return {"base": base, "ckpt": tiny_run["ckpt"], "person": synthetic_photo(base / "person.png", 11),
            "person2": synthetic_photo(base / "person2.png", 12), "grey": base / "grey.png",
            "broken": base / "broken.png"}


@pytest.fixture(scope="module")
def handlers(env):
    with ServeHandlers(env["ckpt"], "cpu", examples=False) as h:
        yield h


@pytest.fixture(scope="module")
def reference(env):
    """An independent PoseTransfer on the same checkpoint (what `spgnet transfer` builds)."""
    with PoseTransfer(env["ckpt"], "cpu", seed=3) as model:
        yield model


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- handlers = PoseTransfer


def test_transfer_equals_pose_transfer_and_is_deterministic(handlers, reference, env):
    gallery = POSES_DIR / "hands-on-hips.json"
    ref = reference.transfer(env["person"], gallery, pose_size=(256, 176))  # seed 3
    out = handlers.transfer(str(env["person"]), "gallery", "hands-on-hips", seed=3)
    assert out.result.shape == (H, W, 3) and out.result.dtype == np.uint8
    np.testing.assert_array_equal(out.result, ref.image)
    np.testing.assert_array_equal(out.source_keypoints, draw_skeleton(ref.source.image, ref.source.keypoints))
    np.testing.assert_array_equal(out.source_parsing, CIHP_PALETTE[ref.source.parsing])
    np.testing.assert_array_equal(out.target_parsing, CIHP_PALETTE[ref.parsing])
    np.testing.assert_array_equal(out.target_pose, render_pose_image(ref.target, (H, W)))
    assert out.info.startswith(f"{H}x{W} result, seed 3")
    again = handlers.transfer(str(env["person"]), "gallery", "hands-on-hips", seed=3)
    np.testing.assert_array_equal(again.result, out.result)
    other = handlers.transfer(str(env["person"]), "gallery", "hands-on-hips", seed=4)
    assert not np.array_equal(other.result, out.result)  # the seed reaches the generator's noise
    np.testing.assert_array_equal(other.target_parsing, out.target_parsing)  # stage 1 has no noise


def test_target_from_photo_and_json_and_mirror(handlers, reference, env, tmp_path):
    from_photo = handlers.transfer(str(env["person"]), "photo", pose_photo=str(env["person2"]), seed=3)
    ref = reference.transfer(env["person"], env["person2"])
    np.testing.assert_array_equal(from_photo.result, ref.image)
    # an uploaded OpenPose JSON with a "size": the same keypoints as the gallery file of that frame
    doc = json.loads((POSES_DIR / "arms-out.json").read_text())
    (tmp_path / "mine.json").write_text(json.dumps({"people": doc["people"], "size": [256, 176]}))
    from_json = handlers.transfer(str(env["person"]), "json", pose_json=str(tmp_path / "mine.json"), seed=3)
    from_gallery = handlers.transfer(str(env["person"]), "gallery", "arms-out", seed=3)
    np.testing.assert_array_equal(from_json.result, from_gallery.result)
    # mirrored: the target tile is the skeleton of the hand-mirrored gallery pose
    mirrored = handlers.transfer(str(env["person"]), "gallery", "arms-out", mirror=True, seed=3)
    kp = reference.pose_from_json(POSES_DIR / "arms-out.json", (256, 176))
    swap = [0, 1, 5, 6, 7, 2, 3, 4, 11, 12, 13, 8, 9, 10, 15, 14, 17, 16]  # written out, not FLIP_INDEX
    expected = np.where(kp[swap] < 0, -1, np.stack([W - 1 - kp[swap, 0], kp[swap, 1]], -1))
    np.testing.assert_array_equal(mirrored.target_pose, render_pose_image(expected, (H, W)))


def test_animate_equals_pose_transfer(handlers, reference, env, tmp_path):
    out = handlers.animate(str(env["person"]), "wave", seed=3, fps=5)
    ref = reference.animate(env["person"], POSES_DIR / "sequence-wave.json")
    assert ref.frames.shape == (12, H, W, 3)
    np.testing.assert_array_equal(load_image(out.files[-1]), frame_strip(ref.frames))
    with Image.open(out.gif) as gif:
        assert gif.size == (W, H) and gif.n_frames >= 2
    assert [Path(f).suffix for f in out.files] in ([".gif", ".mp4", ".png"], [".gif", ".png"])
    # too many poses: refused before any model work
    poses = [[[10.0, 10.0]] * 18] * (MAX_FRAMES + 1)
    (tmp_path / "long.json").write_text(json.dumps({"size": [64, 44], "poses": poses}))
    with pytest.raises(SPGNetError, match=f"at most {MAX_FRAMES}"):
        handlers.animate(str(env["person"]), sequence_json=str(tmp_path / "long.json"))


# --------------------------------------------------------------------------- nudge


def test_nudge_pose_against_hand_computed_keypoints():
    kp = np.full((18, 2), -1.0, np.float32)
    kp[0], kp[2], kp[7] = (10, 5), (8, 12), (30, 40)  # nose, r-shoulder, l-wrist; the rest missing
    size = (64, 44)
    np.testing.assert_array_equal(nudge_pose(kp, size), kp)
    # mirror: x -> 43 - x, r-shoulder becomes l-shoulder (5), l-wrist becomes r-wrist (4)
    m = nudge_pose(kp, size, mirror=True)
    expected = np.full((18, 2), -1.0, np.float32)
    expected[0], expected[5], expected[4] = (33, 5), (35, 12), (13, 40)
    np.testing.assert_array_equal(m, expected)
    # scale 0.5 about the box centre (19, 22.5)
    s = nudge_pose(kp, size, scale=0.5)
    expected = np.full((18, 2), -1.0, np.float32)
    expected[0], expected[2], expected[7] = (14.5, 13.75), (13.5, 17.25), (24.5, 31.25)
    np.testing.assert_allclose(s, expected, atol=1e-5)
    # then a shift of +25 % of 44 = 11 px and -25 % of 64 = -16 px: the nose (y -2.25) leaves the frame
    t = nudge_pose(kp, size, scale=0.5, shift_x=0.25, shift_y=-0.25)
    expected[0], expected[2], expected[7] = (-1, -1), (24.5, 1.25), (35.5, 15.25)
    np.testing.assert_allclose(t, expected, atol=1e-5)
    # within half a pixel of the frame: clamped onto it; further out: missing
    edge = nudge_pose(kp, size, shift_x=-8.4 / 44)  # r-shoulder x 8 -> -0.4, nose 10 -> 1.6
    assert edge[2, 0] == 0.0 and edge[2, 1] == 12 and abs(edge[0, 0] - 1.6) < 1e-5
    assert (nudge_pose(kp, size, shift_x=-8.6 / 44)[2] == -1).all()
    assert (nudge_pose(np.full((18, 2), -1.0), size, scale=2.0) == -1).all()


def test_nudge_limits_are_one_line(handlers, env):
    for kwargs, match in [({"scale": 10}, "scale"), ({"shift_x": 500}, "shift x"), ({"seed": -1}, "seed"),
                          ({"seed": 1.5}, "whole number"), ({"pose_from": "url"}, "pose source"),
                          ({"gallery_pose": "../../etc/passwd"}, "not in the gallery"),
                          ({"pose_from": "json"}, "no OpenPose JSON file"), ({"person": "tallest"}, "--person")]:
        with pytest.raises(SPGNetError, match=match) as info:
            handlers.transfer(str(env["person"]), **kwargs)
        assert "\n" not in str(info.value)


# --------------------------------------------------------------------------- limits and errors


def test_upload_limits_and_no_person_are_one_line(handlers, env, tmp_path, monkeypatch):
    big = tmp_path / "big.png"  # 600 x 400 = 240,000 pixels of noise, about 720 kB as PNG
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (400, 600, 3), dtype=np.uint8)).save(big)
    monkeypatch.setattr(handlers, "max_pixels", 200_000)
    with pytest.raises(SPGNetError, match=r"600x400 is 240,000 pixels, above this server's limit of 200,000"):
        handlers.transfer(str(big))
    monkeypatch.setattr(handlers, "max_pixels", 10**9)
    monkeypatch.setattr(handlers, "max_bytes", 100_000)
    with pytest.raises(SPGNetError, match=r"source photo big.png: 0\.\d MB, above this server's upload limit"):
        handlers.transfer(str(big))
    monkeypatch.undo()
    cases = [(env["grey"], "source photo grey.png: no person found in this photo"),
             (env["broken"], "source photo broken.png: not an image this server reads"),
             (None, "no source photo: upload a photo")]
    for photo, message in cases:
        with pytest.raises(SPGNetError) as info:
            handlers.transfer(None if photo is None else str(photo))
        assert str(info.value).startswith(message) and "\n" not in str(info.value)
        assert str(env["base"]) not in str(info.value)  # the server's temporary paths stay on the server
    with pytest.raises(SPGNetError, match="pose photo grey.png: no person found"):
        handlers.transfer(str(env["person"]), "photo", pose_photo=str(env["grey"]))


def test_errors_become_one_gradio_line(caplog):
    import gradio as gr

    def user_error(x):
        raise SPGNetError("photo <b>x</b>.png: no person found in this photo")

    def bug(x):
        raise KeyError("boom\nsecond line")

    with pytest.raises(gr.Error) as info:
        one_line_errors(user_error)(1)
    assert info.value.message == "photo &lt;b&gt;x&lt;/b&gt;.png: no person found in this photo"  # escaped: HTML
    with caplog.at_level(logging.ERROR, logger="spgnet.serve"), pytest.raises(gr.Error) as info:
        one_line_errors(bug)(1)
    assert info.value.message.startswith("internal error: KeyError:") and "\n" not in info.value.message
    assert "Traceback" in caplog.text and "boom" in caplog.text  # the details stay in the server log


# --------------------------------------------------------------------------- CLI


def test_cli_defaults_and_missing_checkpoint(tmp_path, monkeypatch, capsys):
    args = build_parser("serve").parse_args(["serve"])
    assert (args.host, args.port, args.concurrency, args.checkpoint) == ("127.0.0.1", 7860, 1, None)
    monkeypatch.chdir(tmp_path)
    assert main(["serve"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("spgnet serve: error: no --checkpoint given")
    assert "make demo" in err and "convert-official" in err
    demo = tmp_path / "runs" / "demo" / "train" / "checkpoints" / "last"  # where `make demo` leaves it
    demo.mkdir(parents=True)
    assert find_checkpoint(None).resolve() == demo.resolve()
    assert find_checkpoint("elsewhere") == Path("elsewhere")


def test_without_gradio_one_line(tmp_path, env):
    """The module imports without gradio; `spgnet serve` then says how to install it (one line)."""
    fake = tmp_path / "nogradio" / "gradio"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named gradio')\n")
    pythonpath = os.pathsep.join([str(fake.parent), str(SRC)])
    proc = subprocess.run([sys.executable, "-c", "import sys, spgnet.apps.serve, spgnet.commands.serve; "
                           "assert 'gradio' not in sys.modules; from spgnet.cli import main; "
                           f"sys.exit(main(['serve', '--checkpoint', {str(env['ckpt'])!r}]))"],
                          env={**os.environ, "PYTHONPATH": pythonpath}, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == f"spgnet serve: error: {GRADIO_MISSING}"


def test_gallery_files():
    poses, sequences = load_gallery()
    assert len(poses) >= 6 and {"arms-raised", "hands-on-hips", "standing"} <= set(poses)
    assert set(sequences) == {"wave", "jumping-jack"} and all(s.frames == 12 for s in sequences.values())
    for name, entry in poses.items():
        kp = read_openpose_json(entry.path)
        present = (kp >= 0).all(1)
        assert entry.size == (256, 176) and present.sum() >= 12, name
        assert (kp[present] <= [175, 255]).all(), name


# --------------------------------------------------------------------------- the HTTP API


@pytest.fixture(scope="module")
def server(handlers):
    app = build_app(handlers)
    port = free_port()
    url = launch(app, port=port, max_upload_mb=1)
    yield {"url": url, "port": port}
    app.close()


def test_api_equals_cli_png(server, env, tmp_path, capsys):
    from gradio_client import Client, handle_file

    client = Client(server["url"], verbose=False, analytics_enabled=False, download_files=str(tmp_path / "dl"))
    result = client.predict(source=handle_file(str(env["person"])), gallery_pose="arms-raised", seed=5,
                            api_name="/transfer")
    assert main(["transfer", "--checkpoint", str(env["ckpt"]), "--source", str(env["person"]), "--target-pose",
                 str(POSES_DIR / "arms-raised.json"), "--pose-size", "256x176", "--seed", "5", "--device", "cpu",
                 "--out", str(tmp_path / "cli.png")]) == 0
    capsys.readouterr()
    api = load_image(result[0])
    assert api.shape == (H, W, 3)
    np.testing.assert_array_equal(api, load_image(tmp_path / "cli.png"))
    assert result[5].startswith(f"{H}x{W} result, seed 5")


def test_api_refuses_server_paths_and_big_uploads(server, tmp_path):
    import httpx

    base = server["url"].rstrip("/")
    # a client naming a file on the server: Gradio refuses it before the handler runs
    secret = tmp_path / "secret.png"
    synthetic_photo(secret, 11)
    payload = {"data": [{"path": str(secret), "meta": {"_type": "gradio.FileData"}}, "gallery", "arms-raised",
                        None, None, False, 1, 0, 0, 0, "largest", "largest"]}

    def call(source: dict) -> str:
        data = {"data": [source, *payload["data"][1:]]}
        event = httpx.post(f"{base}/gradio_api/call/transfer", json=data, timeout=30).json()["event_id"]
        return httpx.get(f"{base}/gradio_api/call/transfer/{event}", timeout=60).text

    stream = call(payload["data"][0])
    assert "event: error" in stream and "event: complete" not in stream
    # nor a URL: the server fetches nothing for a client (refused before any connection)
    stream = call({"path": "https://example.com/person.png", "meta": {"_type": "gradio.FileData"}})
    assert "event: error" in stream and "this server does not fetch URLs" in stream
    # an upload above --max-upload-mb (1 MB here) is refused by the server
    response = httpx.post(f"{base}/gradio_api/upload", files={"files": ("big.png", b"\0" * (2 * 1024 * 1024))},
                          timeout=30)
    assert response.status_code == 413
