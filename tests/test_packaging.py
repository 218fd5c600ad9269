"""The package stands alone: a wheel built from the source tree, installed into an empty
folder and imported from another working directory (nothing of the checkout on
``sys.path``), finds its configs and the reference generator, and ``spgnet demo``'s
default config resolves there."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """``pip wheel --no-deps`` of the checkout, unpacked with ``pip install --target``."""
    base = tmp_path_factory.mktemp("wheel")
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(base / "dist"), str(REPO)], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-2000:]
    wheels = list((base / "dist").glob("spgnet-*.whl"))
    assert len(wheels) == 1, wheels
    names = zipfile.ZipFile(wheels[0]).namelist()
    assert "spgnet/configs/synthetic-small.yaml" in names and "spgnet/models/reference.py" in names
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/"))]
    target = base / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q",
                              "--target", str(target), str(wheels[0])], capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr[-2000:]
    return target


def run_isolated(target: Path, cwd: Path, code: str) -> str:
    """Run ``code`` with only ``target`` (and the interpreter's own site-packages, for torch)
    importable: the checkout's ``src`` is neither on the path nor the working directory."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PYTHONPATH"] = str(target)
    env["PYTHONNOUSERSITE"] = "1"
    # the checkout itself and its src/ off the path (the venv may live inside the checkout: keep it)
    prelude = ("import os, sys; sys.path[:] = [p for p in sys.path if os.path.realpath(p or '.') not in "
               "(%r, %r)]\n" % (str(REPO.resolve()), str((REPO / "src").resolve())))
    done = subprocess.run([sys.executable, "-c", prelude + code], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_wheel_resolves_configs_and_reference_from_another_directory(installed, tmp_path):
    out = run_isolated(installed, tmp_path, """
import spgnet, spgnet.apps.demo as demo, spgnet.apps.bench as bench
from spgnet.config import load_config, packaged_config
from pathlib import Path
assert Path(spgnet.__file__).is_relative_to(%r), spgnet.__file__
path = demo.DEFAULT_CONFIG
assert Path(path).is_file(), path
cfg = load_config(path)
assert cfg.data.load_size == [96, 64], cfg.data.load_size
for name in ("deepfashion", "deepfashion-256", "market", "synthetic-small"):
    assert load_config(name).name, name
    assert load_config("configs/" + name + ".yaml") == load_config(packaged_config(name))
ref = bench.load_reference()
from spgnet.models.reference import ReferenceGenerator
assert ref is ReferenceGenerator
print("ok", path)
""" % str(installed))
    assert out.startswith("ok"), out
