"""`spgnet prepare` / `transfer` on awkward inputs: a person too small to mean anything is
an error naming the photo; a failed run leaves no half dataset and the rerun needs no
--force; every format Pillow reads is used and other files are reported; MP4 output."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

from spgnet import SPGNetError
from spgnet.cli import main
from spgnet.photo.detect import PoseDetector
from spgnet.photo.prepare import MIN_PERSON_HEIGHT, REPORT_NAME, prepare_photos

H, W = 128, 88


@pytest.fixture(scope="module")
def detector():
    with PoseDetector() as det:
        yield det


def astronaut(side: int | None = None) -> Image.Image:
    im = Image.fromarray(data.astronaut())
    return im if side is None else im.resize((side, side), Image.Resampling.LANCZOS)


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_a_tiny_person_is_an_error_naming_the_photo(tmp_path, detector):
    """48x48: mediapipe still finds the astronaut, about 47 px tall; upscaled to 128 px it
    gave keypoints and parsing and exit 0."""
    folder = tmp_path / "in"
    folder.mkdir()
    astronaut().save(folder / "big.png")
    astronaut(48).save(folder / "tiny.png")
    with pytest.raises(SPGNetError, match=rf"tiny\.png: the person is \d+ px tall .* {MIN_PERSON_HEIGHT} px minimum"):
        prepare_photos(folder, tmp_path / "out", size=(H, W), progress=False, detector=detector)
    assert files_under(tmp_path / "out") == []  # and nothing of the good photo was written


def test_a_failed_run_writes_nothing_and_the_rerun_needs_no_force(tmp_path, detector):
    folder = tmp_path / "in"
    folder.mkdir()
    astronaut().save(folder / "a.jpg", quality=90)
    Image.fromarray(np.ascontiguousarray(data.astronaut()[:, ::-1])).save(folder / "b.jpg", quality=90)
    buf = io.BytesIO()
    astronaut().save(buf, format="JPEG")
    (folder / "c.jpg").write_bytes(buf.getvalue()[:3000])  # a readable header, a truncated body
    out = tmp_path / "out"
    with pytest.raises(SPGNetError, match="c.jpg"):
        prepare_photos(folder, out, size=(H, W), progress=False, detector=detector)
    assert files_under(out) == []
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.prepare-")]  # no staging left behind
    (folder / "c.jpg").unlink()
    result = prepare_photos(folder, out, size=(H, W), progress=False, detector=detector)  # no --force needed
    assert result.names == ["a.png", "b.png"]
    assert {p.relative_to(out).as_posix() for p in files_under(out)} == {
        "test/a.png", "test/b.png", "parsing/a.png", "parsing/b.png", "annotation-test.csv", "pairs-test.csv",
        REPORT_NAME}


def test_every_format_pillow_reads_is_used_and_others_are_reported(tmp_path, detector):
    folder = tmp_path / "in"
    folder.mkdir()
    astronaut().save(folder / "a.webp", quality=90)
    astronaut().convert("RGB").save(folder / "b.bmp")
    (folder / "notes.txt").write_text("x")
    result = prepare_photos(folder, tmp_path / "out", size=(H, W), progress=False, detector=detector)
    assert result.names == ["a.png", "b.png"]
    report = (tmp_path / "out" / REPORT_NAME).read_text()
    assert f"not an image Pillow reads, left out: {folder / 'notes.txt'}" in report


def test_cli_tiny_person_is_one_line(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    astronaut(48).save(folder / "tiny.png")
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(["prepare", "--images", str(folder), "--out", str(tmp_path / "out"), "--quiet"])
    assert rc == 2 and len(err.getvalue().strip().splitlines()) == 1 and "tiny.png" in err.getvalue()
