"""utils.io: an image tensor from a read-only array (what np.asarray gives for a PIL image,
and what `transfer` feeds the model when a photo already has the model's aspect ratio)
without PyTorch's "non-writable" UserWarning; checked in a fresh process, because
PyTorch prints that warning once per process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"

CODE = """
import warnings
import numpy as np
from PIL import Image
warnings.simplefilter("error")  # any warning fails
from spgnet.utils.io import image_to_tensor, tensor_to_image
array = np.asarray(Image.fromarray(np.arange(4 * 3 * 3, dtype=np.uint8).reshape(4, 3, 3)))
assert not array.flags.writeable  # Pillow gives a read-only view
t = image_to_tensor(array)
assert t.shape == (3, 4, 3) and (tensor_to_image(t) == array).all()
"""


def test_image_to_tensor_of_a_read_only_array_warns_nothing():
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stderr == "", done.stderr
