"""``spgnet evaluate`` and ``BatchEvaluator`` against values computed independently here:
skimage SSIM/PSNR on files read with PIL, brute-force mIoU and PCKh, LPIPS/FID of images
read by the test; missing weights -> unavailable + exit 3; missing images -> clear errors."""

from __future__ import annotations

import csv
import json
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
import yaml
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from spgnet import SPGNetError
from spgnet import cli
from spgnet.config import DatasetConfig
from spgnet.evaluation.batch import BatchEvaluator
from spgnet.evaluation.directory import EvalOptions, evaluate_directory, load_dataset_config
from spgnet.evaluation.metrics import pose_masks

H, W = 80, 76  # >= 75 px: the Inception network can run without resizing to 299 (fast)
TEST_NAMES = [f"t{i}.png" for i in range(4)] + ["t4.jpg"]
TRAIN_NAMES = [f"r{i}.png" for i in range(4)]
TEST_PAIRS = [("t0.png", "t1.png"), ("t1.png", "t2.png"), ("t2.png", "t3.png"), ("t3.png", "t4.jpg"),
              ("t4.jpg", "t0.png")]


# -- a tiny dataset in the docs/design.md §4 layout, written by hand ------------------------------


def _smooth_image(rng) -> np.ndarray:
    coarse = rng.integers(0, 256, (H // 8, W // 8, 3)).astype(np.uint8)
    big = np.asarray(Image.fromarray(coarse).resize((W, H), Image.BILINEAR)).astype(np.int64)
    return np.clip(big + rng.integers(-20, 21, big.shape), 0, 255).astype(np.uint8)


def _keypoints(rng) -> np.ndarray:
    kp = np.stack([rng.integers(2, W - 2, 18), rng.integers(2, H - 2, 18)], -1)
    kp[rng.random(18) < 0.2] = -1
    kp[[0, 1, 14]] = [[W // 2, 6], [W // 2, 12], [W // 2 - 3, 5]]  # at least 3 head joints
    return kp


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("evaldata")
    rng = np.random.default_rng(0)
    (root / "parsing").mkdir()
    for split, names in (("test", TEST_NAMES), ("train", TRAIN_NAMES)):
        (root / split).mkdir()
        lines = ["name:keypoints_y:keypoints_x"]
        for name in names:
            Image.fromarray(_smooth_image(rng)).save(root / split / name, quality=95)
            labels = np.repeat(np.repeat(rng.integers(0, 20, (H // 4, W // 4)), 4, 0), 4, 1).astype(np.uint8)
            Image.fromarray(labels, mode="L").save(root / "parsing" / f"{Path(name).stem}.png")
            kp = _keypoints(rng)
            lines.append(f"{name}: {json.dumps(kp[:, 1].tolist())}: {json.dumps(kp[:, 0].tolist())}")
        (root / f"annotation-{split}.csv").write_text("\n".join(lines) + "\n")
        pairs = TEST_PAIRS if split == "test" else [("r0.png", "r1.png"), ("r2.png", "r3.png")]
        (root / f"pairs-{split}.csv").write_text("from,to\n" + "".join(f"{a},{b}\n" for a, b in pairs))
    return root


def cfg_of(root: Path) -> DatasetConfig:
    return DatasetConfig(root=str(root), load_size=[H, W])


def read_rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def target(root: Path, name: str) -> np.ndarray:
    return read_rgb(root / "test" / name)


def target_keypoints(root: Path, name: str) -> np.ndarray:
    for line in (root / "annotation-test.csv").read_text().splitlines()[1:]:
        n, ys, xs = line.split(":")
        if n == name:
            return np.stack([json.loads(xs), json.loads(ys)], -1).astype(np.float32)
    raise KeyError(name)


def pair_file(a: str, b: str, suffix: str = ".png") -> str:
    return f"{Path(a).stem}___{Path(b).stem}{suffix}"


def write_generated(root: Path, out: Path, transform=lambda im, i: im, parsing=None) -> dict[str, np.ndarray]:
    """Generated images = transform(target); parsing(i, gt_labels) -> predicted labels or None."""
    out.mkdir(parents=True, exist_ok=True)
    images = {}
    for i, (a, b) in enumerate(TEST_PAIRS):
        im = transform(target(root, b), i)
        Image.fromarray(im).save(out / pair_file(a, b))
        images[pair_file(a, b)] = im
        if parsing is not None:
            gt = np.asarray(Image.open(root / "parsing" / f"{Path(b).stem}.png"))
            Image.fromarray(parsing(i, gt).astype(np.uint8), mode="L").save(out / pair_file(a, b, "_parsing.png"))
    return images


def sk_ssim(a: np.ndarray, b: np.ndarray, data_range=255) -> float:
    return structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                 data_range=data_range, channel_axis=-1)


def brute_miou(preds: list[np.ndarray], gts: list[np.ndarray]) -> float:
    p, g = np.concatenate([x.ravel() for x in preds]), np.concatenate([x.ravel() for x in gts])
    ious = []
    for c in range(20):
        inter, union = np.sum((p == c) & (g == c)), np.sum((p == c) | (g == c))
        if union:
            ious.append(inter / union)
    return float(np.mean(ious))


def low_rank_frechet(f1: np.ndarray, f2: np.ndarray) -> float:
    """FID of two small feature sets ``(n, D)``, n << D, exactly: the non-zero eigenvalues of
    Σ1·Σ2 (Σ1 = AᵀA / (n1 - 1), A centred) are those of A·Σ2·Aᵀ / (n1 - 1), an n1 x n1 matrix."""
    a = f1 - f1.mean(0)
    s2 = np.cov(f2, rowvar=False)
    eig = np.linalg.eigvals(a @ s2 @ a.T / (len(f1) - 1)).real.clip(min=0)
    diff = f1.mean(0) - f2.mean(0)
    return float(diff @ diff + np.trace(np.cov(f1, rowvar=False)) + np.trace(s2) - 2 * np.sqrt(eig).sum())


def stats_frechet(mu1, s1, mu2, s2) -> float:
    """The same from statistics, Σ1 of rank r <= 15: Σ1 = aᵀa with a (r, D) from an
    orthonormal basis q of Σ1's range (a full 2048-d eigendecomposition takes seconds)."""
    q, _ = np.linalg.qr(s1 @ np.random.default_rng(0).normal(size=(len(s1), 16)))
    w, v = np.linalg.eigh(q.T @ s1 @ q)
    keep = w > w.max() * 1e-10
    a = ((q @ v[:, keep]) * np.sqrt(w[keep])).T
    eig = np.linalg.eigvals(a @ s2 @ a.T).real.clip(min=0)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(eig).sum())


def read_csv(path: Path) -> dict[str, dict]:
    with open(path) as f:
        return {row["pair"]: row for row in csv.DictReader(f)}


def main(argv: list[str]) -> int:
    """``spgnet`` with only this verb registered (other verbs' modules are not needed here)."""
    saved = dict(cli.COMMANDS)
    cli.COMMANDS.clear()
    cli.COMMANDS["evaluate"] = saved["evaluate"]
    try:
        return cli.main(argv)
    finally:
        cli.COMMANDS.update(saved)


def opts(**kw) -> EvalOptions:
    kw.setdefault("workers", 0)
    kw.setdefault("progress", False)
    return EvalOptions(**kw)


# -- evaluate_directory ---------------------------------------------------------------------


def test_generated_equal_to_targets_scores_perfectly(dataset, tmp_path):
    gen = tmp_path / "gen"
    write_generated(dataset, gen, parsing=lambda i, gt: gt)
    metrics = ("ssim", "mask_ssim", "psnr", "l1", "parsing_miou")
    result = evaluate_directory(gen, cfg_of(dataset), "test", opts(metrics=metrics, batch_size=2))
    assert result.exit_code == 0 and result.unavailable == {}
    assert result.metrics["ssim"] == pytest.approx(1.0, abs=1e-12)
    assert result.metrics["mask_ssim"] == pytest.approx(1.0, abs=1e-12)
    assert result.metrics["l1"] == 0.0 and result.metrics["parsing_miou"] == 1.0
    assert result.metrics["psnr"] == float("inf")  # skimage's value for identical images
    saved = json.loads((gen / "eval" / "metrics.json").read_text())
    assert saved["metrics"]["psnr"] == "inf" and saved["counts"]["identical_pairs"] == 5
    assert saved["counts"]["evaluated"] == 5 and saved["exit_code"] == 0
    rows = read_csv(gen / "eval" / "per_image.csv")
    assert len(rows) == 5 and {r["psnr"] for r in rows.values()} == {"inf"}

    capped = evaluate_directory(gen, cfg_of(dataset), "test", opts(metrics=("psnr",), psnr_cap=60.0), tmp_path / "cap")
    assert capped.metrics["psnr"] == 60.0 and capped.protocol["psnr_cap"] == 60.0


def test_noisy_generated_images_match_skimage(dataset, tmp_path):
    rng = np.random.default_rng(1)
    noisy = lambda im, i: np.clip(im.astype(np.int64) + rng.integers(-40, 41, im.shape), 0, 255).astype(np.uint8)  # noqa: E731
    corrupt = lambda i, gt: np.where(rng.random(gt.shape) < 0.3, (gt + 3) % 20, gt)  # noqa: E731
    gen = tmp_path / "gen"
    images = write_generated(dataset, gen, noisy, corrupt)
    result = evaluate_directory(gen, cfg_of(dataset), "test",
                                opts(metrics=("ssim", "mask_ssim", "psnr", "l1", "parsing_miou"), batch_size=2, workers=1))
    rows = read_csv(gen / "eval" / "per_image.csv")
    expected = {k: [] for k in ("ssim", "mask_ssim", "psnr", "l1")}
    preds, gts = [], []
    for a, b in TEST_PAIRS:
        name = pair_file(a, b)
        fake, real = images[name], target(dataset, b)
        mask = pose_masks(torch.from_numpy(target_keypoints(dataset, b))[None], H, W)[0].numpy()[..., None]
        values = {"ssim": sk_ssim(fake, real), "mask_ssim": sk_ssim(fake * mask, real * mask),
                  "psnr": peak_signal_noise_ratio(real, fake, data_range=255),
                  "l1": np.abs(fake.astype(np.float64) - real).mean() / 255.0}
        for k, v in values.items():
            assert float(rows[name[:-4]][k]) == pytest.approx(v, rel=1e-9, abs=1e-11), (name, k)
            expected[k].append(v)
        preds.append(np.asarray(Image.open(gen / pair_file(a, b, "_parsing.png"))))
        gts.append(np.asarray(Image.open(dataset / "parsing" / f"{Path(b).stem}.png")))
    for k, v in expected.items():
        assert result.metrics[k] == pytest.approx(np.mean(v), rel=1e-9)
    assert result.metrics["parsing_miou"] == pytest.approx(brute_miou(preds, gts), rel=1e-12)

    # the PATN scripts' data_range = generated.max() - generated.min()
    patn = evaluate_directory(gen, cfg_of(dataset), "test", opts(metrics=("ssim",), ssim_data_range="generated"),
                              tmp_path / "patn")
    want = np.mean([sk_ssim(images[pair_file(a, b)], target(dataset, b),
                            int(images[pair_file(a, b)].max()) - int(images[pair_file(a, b)].min())) for a, b in TEST_PAIRS])
    assert patn.metrics["ssim"] == pytest.approx(want, rel=1e-9)
    assert patn.protocol["metrics"]["ssim"]["data_range"] == "generated"


def test_resized_and_padded_geometry(dataset, tmp_path):
    gen = tmp_path / "gen"
    small = write_generated(dataset, gen, lambda im, i: im[::2, ::2].copy())  # H/2 x W/2
    pad = (H + 8, W + 10)
    result = evaluate_directory(gen, cfg_of(dataset), "test",
                                opts(metrics=("ssim", "l1"), resize="nearest", pad_to=pad))
    assert result.counts["resized_generated"] == 5
    assert result.protocol["padding"] == {"to": list(pad), "value": 255, "offset_top_left": [4, 5]}
    want = []
    for a, b in TEST_PAIRS:
        up = np.repeat(np.repeat(small[pair_file(a, b)], 2, 0), 2, 1)  # nearest 2x upscaling
        padded = [np.pad(x, ((4, 4), (5, 5), (0, 0)), constant_values=255) for x in (up, target(dataset, b))]
        want.append(sk_ssim(*padded))
    assert result.metrics["ssim"] == pytest.approx(np.mean(want), rel=1e-9)

    with pytest.raises(SPGNetError, match=rf"t0___t1\.png: generated image is {H // 2}x{W // 2}, the evaluation size is {H}x{W}"):
        evaluate_directory(gen, cfg_of(dataset), "test", opts(metrics=("ssim",), resize="error"))


def test_synthetic_people_with_a_crop(tmp_path):
    from spgnet.data.synth import write_synthetic_dataset

    root = tmp_path / "synth"
    write_synthetic_dataset(root, 2, 3, size=(64, 48), seed=0, progress=False)
    pairs = [tuple(line.split(",")) for line in (root / "pairs-test.csv").read_text().split()[1:]]
    cfg = DatasetConfig(root=str(root), crop=[0, 4, 64, 40], load_size=[64, 40])  # DeepFashion-like column crop
    rng = np.random.default_rng(4)
    full, cropped = tmp_path / "full", tmp_path / "cropped"
    full.mkdir(), cropped.mkdir()
    want = []
    for a, b in pairs:
        disk = read_rgb(next((root / "test").glob(f"{Path(b).stem}.*")))
        noisy = np.clip(disk.astype(np.int64) + rng.integers(-25, 26, disk.shape), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(full / pair_file(a, b))  # generated at the disk size, 64x48
        Image.fromarray(noisy[:, 4:44].copy()).save(cropped / pair_file(a, b))  # generated at the crop, 64x40
        want.append(sk_ssim(noisy[:, 4:44], disk[:, 4:44]))
    result = evaluate_directory(cropped, cfg, "test", opts(metrics=("ssim",), resize="error"))
    assert result.counts["evaluated"] == len(pairs) and result.metrics["ssim"] == pytest.approx(np.mean(want), rel=1e-9)
    again = evaluate_directory(full, cfg, "test", opts(metrics=("ssim",), resize="error", crop_generated=(0, 4, 64, 40)))
    assert again.metrics["ssim"] == pytest.approx(np.mean(want), rel=1e-9)
    assert again.protocol["generated_crop"] == [0, 4, 64, 40] and "crop [0, 4, 64, 40]" in again.protocol["real_images"]


def test_missing_generated_image_is_named(dataset, tmp_path, capsys):
    gen = tmp_path / "gen"
    write_generated(dataset, gen)
    (gen / "t2___t3.png").unlink()
    with pytest.raises(SPGNetError, match=r"t2___t3\.png: generated image missing; 1 of 5 pairs"):
        evaluate_directory(gen, cfg_of(dataset), "test", opts(metrics=("ssim",)))
    result = evaluate_directory(gen, cfg_of(dataset), "test", opts(metrics=("ssim",), allow_missing=True))
    assert result.counts["evaluated"] == 4 and result.counts["missing_generated"] == 1
    assert json.loads((gen / "eval" / "metrics.json").read_text())["missing_generated"] == [str(gen / "t2___t3.png")]

    cfg_file = tmp_path / "data.yaml"
    cfg_file.write_text(yaml.safe_dump({"data": {"root": str(dataset), "load_size": [H, W]}}))
    code = main(["evaluate", "--generated", str(gen), "--dataset", str(cfg_file), "--metrics", "ssim",
                 "--workers", "0", "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "t2___t3.png: generated image missing" in err[0]


@pytest.fixture()
def no_weights(tmp_path, monkeypatch):
    for var in ("TORCH_HOME", "XDG_CACHE_HOME"):
        monkeypatch.setenv(var, str(tmp_path / "empty-cache"))
    for var in ("SPGNET_ALEXNET_WEIGHTS", "SPGNET_FID_INCEPTION_WEIGHTS", "SPGNET_INCEPTION_WEIGHTS",
                "SPGNET_WEIGHTS_DIR", "SPGNET_CACHE_DIR"):
        monkeypatch.delenv(var, raising=False)


def test_missing_weights_are_reported_unavailable_with_exit_3(dataset, tmp_path, no_weights, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "spgnet.photo.detect", None)  # `import spgnet.photo.detect` fails
    gen = tmp_path / "gen"
    write_generated(dataset, gen, lambda im, i: np.roll(im, 3, axis=1), parsing=lambda i, gt: gt)
    cfg_file = tmp_path / "config.yaml"
    cfg_file.write_text(yaml.safe_dump({"data": {"root": "elsewhere", "load_size": [H, W]}}))
    code = main(["evaluate", "--generated", str(gen), "--dataset", str(cfg_file), "--root", str(dataset),
                 "--split", "test", "--workers", "0", "--no-progress", "--report-cases", "2"])
    assert code == 3
    saved = json.loads((gen / "eval" / "metrics.json").read_text())
    assert set(saved["unavailable"]) == {"lpips", "mask_lpips", "fid", "pckh"} and saved["exit_code"] == 3
    assert "alexnet-owt-7be5be79.pth" in saved["unavailable"]["lpips"]
    assert "pt_inception-2015-12-05-6726825d.pth" in saved["unavailable"]["fid"]
    assert "spgnet.photo.detect" in saved["unavailable"]["pckh"]
    assert set(saved["metrics"]) == {"ssim", "mask_ssim", "psnr", "l1", "parsing_miou"}
    p = saved["protocol"]
    assert p["eval_size"] == [H, W] and p["padding"] is None and p["image_format"] == "png"
    assert p["metrics"]["ssim"]["data_range"] == 255 and p["metrics"]["ssim"]["gaussian_sigma"] == 1.5
    assert "version='0.1'" in p["metrics"]["lpips"]["matches"] and p["fid_real_set"]["split"] == "train"
    err = capsys.readouterr().err
    assert "fid unavailable" in err and "lpips unavailable" in err
    md = (gen / "eval" / "metrics.md").read_text()
    assert "| SSIM |" in md and "| FID | unavailable |" in md
    html_text = (gen / "eval" / "report.html").read_text()
    assert html_text.count("data:image/png;base64,") == 2 * 2 * 3  # best 2 + worst 2, three tiles each
    assert len(read_csv(gen / "eval" / "per_image.csv")) == 5

    # a weights path given explicitly must exist: bad input, exit 2
    code = main(["evaluate", "--generated", str(gen), "--dataset", str(cfg_file), "--root", str(dataset),
                 "--metrics", "lpips", "--alexnet-weights", str(tmp_path / "nope.pth"), "--workers", "0", "--no-progress"])
    assert code == 2 and "nope.pth" in capsys.readouterr().err


@pytest.mark.slow
def test_full_path_with_random_weight_files(dataset, tmp_path, no_weights, monkeypatch):
    from spgnet.evaluation.metrics import LPIPS, InceptionFeatures
    from spgnet.evaluation.metrics import fid as fid_module
    from spgnet.evaluation.metrics.inception import build_inception

    torch.manual_seed(0)
    alex = tmp_path / "w" / "alexnet-owt-7be5be79.pth"
    incep = tmp_path / "w" / "pt_inception-2015-12-05-6726825d.pth"
    alex.parent.mkdir()
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), alex)
    net = build_inception("pytorch-fid")
    for m in net.modules():  # He init, as InceptionFeatures' random mode, keeps features O(1)
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    torch.save(net.state_dict(), incep)
    detected = np.full((18, 2), -1.0, np.float32)
    detected[:8] = [[W // 2, 12]] * 8
    fake_module = types.ModuleType("spgnet.photo.detect")
    fake_module.detect_keypoints = lambda images: np.repeat(detected[None], len(images), 0)
    monkeypatch.setitem(sys.modules, "spgnet.photo.detect", fake_module)

    # Record what the Inception network is fed and returns, and the statistics FID is
    # computed from; scipy's sqrtm of a 2048x2048 product takes ~30 s here, so the distance
    # uses the exact low-rank formula (frechet_distance itself is tested on its own).
    seen, fed = {}, []

    def record(mu1, s1, mu2, s2):
        seen["args"] = (mu1, s1, mu2, s2)
        return stats_frechet(mu1, s1, mu2, s2)

    def spy(self, images):
        out = forward(self, images)
        fed.append((images.clone(), out.double().numpy()))
        return out

    forward = InceptionFeatures.forward
    monkeypatch.setattr(InceptionFeatures, "forward", spy)
    monkeypatch.setattr(fid_module, "frechet_distance", record)
    rng = np.random.default_rng(2)
    gen = tmp_path / "gen"
    images = write_generated(dataset, gen, lambda im, i: np.clip(im.astype(np.int64) + rng.integers(-30, 31, im.shape),
                                                                 0, 255).astype(np.uint8), parsing=lambda i, gt: gt)
    options = opts(alexnet_weights=str(alex), inception_weights=str(incep), fid_cache_dir=str(tmp_path / "cache"),
                   batch_size=3, fid_resize="none")  # the default 299x299 resize costs 15x more here
    result = evaluate_directory(gen, cfg_of(dataset), "test", options)
    assert result.exit_code == 0 and set(result.metrics) == {
        "ssim", "mask_ssim", "psnr", "l1", "lpips", "mask_lpips", "fid", "pckh", "parsing_miou"}
    weights = result.protocol["weights"]
    assert weights["lpips"] == str(alex) and weights["fid"] == str(incep) and "v0.1/alex.pth" in weights["lpips_heads"]

    to_t = lambda im: torch.from_numpy(np.array(im)).permute(2, 0, 1).float().div(127.5).sub(1)[None]  # noqa: E731
    lp = LPIPS(alexnet_weights=alex)
    rows = read_csv(gen / "eval" / "per_image.csv")
    correct = total = 0
    for a, b in TEST_PAIRS:
        x, y = to_t(images[pair_file(a, b)]), to_t(target(dataset, b))
        kp = target_keypoints(dataset, b)
        mask = pose_masks(torch.from_numpy(kp)[None], H, W)
        assert float(rows[pair_file(a, b)[:-4]]["lpips"]) == pytest.approx(float(lp(x, y)), rel=1e-5)
        assert float(rows[pair_file(a, b)[:-4]]["mask_lpips"]) == pytest.approx(float(lp.masked(x, y, mask)), rel=1e-5)
        head = [kp[j] for j in (0, 1, 14, 15, 16, 17) if (kp[j] >= 0).all()]
        w, h = np.ptp([p[0] for p in head]), np.ptp([p[1] for p in head])
        for j in range(18):
            if (kp[j] >= 0).all():
                total += 1
                correct += bool((detected[j] >= 0).all() and abs(detected[j, 0] - kp[j, 0]) < 0.5 * w
                                and abs(detected[j, 1] - kp[j, 1]) < 0.5 * h)
    assert result.metrics["pckh"] == pytest.approx(correct / total)

    # fed: the real *training* images first (sorted), then the generated ones in pair order
    inputs, feats = torch.cat([x for x, _ in fed]), np.concatenate([f for _, f in fed])
    torch.testing.assert_close(inputs[:4], torch.cat([to_t(read_rgb(dataset / "train" / n)) for n in TRAIN_NAMES]),
                               rtol=0, atol=0)
    torch.testing.assert_close(inputs[4:], torch.cat([to_t(images[pair_file(a, b)]) for a, b in TEST_PAIRS]),
                               rtol=0, atol=0)
    real_f, fake_f = feats[:4], feats[4:]
    mu1, s1, mu2, s2 = seen["args"]
    np.testing.assert_allclose(mu1, fake_f.mean(0), rtol=1e-6, atol=1e-9 * np.abs(fake_f).max())
    np.testing.assert_allclose(mu2, real_f.mean(0), rtol=1e-6, atol=1e-9 * np.abs(real_f).max())
    np.testing.assert_allclose(s1, np.cov(fake_f, rowvar=False), rtol=1e-6, atol=1e-9 * np.abs(fake_f).max() ** 2)
    np.testing.assert_allclose(s2, np.cov(real_f, rowvar=False), rtol=1e-6, atol=1e-9 * np.abs(real_f).max() ** 2)
    assert result.metrics["fid"] == pytest.approx(low_rank_frechet(fake_f, real_f), rel=1e-6)
    assert result.protocol["fid_real_set"]["images"] == 4 and result.protocol["fid_real_set"]["cached"] is False

    # again on two of the images: the real statistics come from the cache, not recomputed
    fed.clear()
    two = tmp_path / "two"
    two.mkdir()
    for a, b in TEST_PAIRS[:2]:
        shutil.copy(gen / pair_file(a, b), two / pair_file(a, b))
    again = evaluate_directory(two, cfg_of(dataset), "test",
                               opts(**{**options.__dict__, "metrics": ("fid",), "allow_missing": True}))
    assert again.protocol["fid_real_set"]["cached"] is True and sum(len(x) for x, _ in fed) == 2
    np.testing.assert_array_equal(seen["args"][3], s2)


# -- BatchEvaluator and the dataset config loader --------------------------------------------


def test_batch_evaluator_matches_skimage_and_brute_force_miou():
    rng = np.random.default_rng(3)
    fakes = [rng.integers(0, 256, (n, 24, 20, 3), dtype=np.uint8) for n in (3, 2)]
    reals = [np.clip(f.astype(np.int64) + rng.integers(-50, 51, f.shape), 0, 255).astype(np.uint8) for f in fakes]
    preds = [rng.integers(0, 6, (n, 24, 20)) for n in (3, 2)]
    gts = [np.where(rng.random(p.shape) < 0.7, p, rng.integers(0, 6, p.shape)) for p in preds]
    to_t = lambda a: torch.from_numpy(a).permute(0, 3, 1, 2).float().div(127.5).sub(1)  # noqa: E731

    ev = BatchEvaluator(device="cpu")
    for f, r, p, g in zip(fakes, reals, preds, gts):
        per_image = ev.update(to_t(f), to_t(r), pred_parsing=torch.from_numpy(p), target_parsing=torch.from_numpy(g))
        assert set(per_image) == {"ssim", "psnr", "l1"} and per_image["ssim"].shape == (len(f),)
    out = ev.compute()
    f_all, r_all = np.concatenate(fakes), np.concatenate(reals)
    assert out["ssim"] == pytest.approx(np.mean([sk_ssim(f, r) for f, r in zip(f_all, r_all)]), rel=1e-9)
    assert out["psnr"] == pytest.approx(np.mean([peak_signal_noise_ratio(r, f, data_range=255)
                                                 for f, r in zip(f_all, r_all)]), rel=1e-9)
    assert out["l1"] == pytest.approx(np.abs(f_all.astype(np.float64) - r_all).mean() / 255, rel=1e-9)
    assert out["parsing_miou"] == pytest.approx(brute_miou(preds, gts), rel=1e-12)

    parsing_only = BatchEvaluator(metrics=("parsing_miou", "ssim"))
    parsing_only.update(None, None, pred_parsing=torch.from_numpy(preds[0]), target_parsing=torch.from_numpy(gts[0]))
    assert set(parsing_only.compute()) == {"parsing_miou"}  # ssim got no images: left out

    capped = BatchEvaluator(metrics=("psnr",), psnr_cap=50.0)
    capped.update(to_t(f_all), to_t(f_all))
    assert capped.compute() == {"psnr": 50.0}


def test_dataset_config_with_overrides_and_root(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"name": "x", "data": {"root": "a", "crop": [0, 40, 256, 176]}}))
    d = load_dataset_config(path, ["data.image_dir=imgs/{split}"], root="c")
    assert d.crop == [0, 40, 256, 176] and d.image_dir == "imgs/{split}" and d.root == "c"
    with pytest.raises(SPGNetError, match="unknown key"):
        load_dataset_config(path, ["data.nope=1"])


def test_bad_options_are_reported(dataset, tmp_path):
    with pytest.raises(SPGNetError, match="unknown metric"):
        evaluate_directory(tmp_path, cfg_of(dataset), "test", opts(metrics=("ssim", "is")))
    with pytest.raises(SPGNetError, match="generated-images folder not found"):
        evaluate_directory(tmp_path / "none", cfg_of(dataset), "test", opts())
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SPGNetError, match=r"none of the 5 pairs .* has a generated image .*t0___t1\.png"):
        evaluate_directory(empty, cfg_of(dataset), "test", opts(metrics=("ssim",)))
    shutil.rmtree(empty)
