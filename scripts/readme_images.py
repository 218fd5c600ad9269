"""Make the README's transfer sheets and animation strip with the real commands.

    python scripts/readme_images.py runs/demo/train/checkpoints/last

Sources: a held-out synthetic person rendered at 256x176 (the domain the demo model was
trained on) and scikit-image's astronaut photo (a real photo: out of that domain).
Target poses: keypoints of other synthetic people, as OpenPose JSON files.
"""

import json
import sys
import tempfile
from pathlib import Path

from PIL import Image
from skimage import data

from spgnet.utils.checkpoint import read_checkpoint_config
from spgnet.cli import main
from spgnet.data.synth import write_synthetic_dataset
from spgnet.pose import read_annotation_csv, write_openpose_json

ckpt = Path(sys.argv[1])
docs = Path(__file__).resolve().parents[1] / "docs" / "images"
work = Path(tempfile.mkdtemp(prefix="spgnet-readme-"))
h, w = read_checkpoint_config(ckpt)["data"]["load_size"]
Image.fromarray(data.astronaut()).save(work / "astronaut.jpg", quality=95)
# poses at 256x176 (rescaled by --pose-size) and a source person the model never saw
write_synthetic_dataset(work / "synth", 4, test_pairs=6, size=(256, 176), seed=123, poses_per_identity=6,
                        progress=False, force=True)
kps = read_annotation_csv(work / "synth" / "annotation-test.csv")
names = sorted(kps)
source = work / "synth" / "test" / names[0]
write_openpose_json(work / "target.json", kps[names[3]])
poses = [kps[n].tolist() for n in names[:6]]
(work / "sequence.json").write_text(json.dumps({"size": [256, 176], "poses": poses}))
common = ["--checkpoint", str(ckpt), "--device", "cpu"]
for src, out in ((source, "transfer_sheet.png"), (work / "astronaut.jpg", "transfer_sheet_astronaut.png")):
    assert main(["transfer", *common, "--source", str(src), "--target-pose", str(work / "target.json"),
                 "--pose-size", "256x176", "--out", str(docs / out), "--sheet"]) == 0
assert main(["animate", *common, "--source", str(source), "--poses", str(work / "sequence.json"),
             "--out", str(work / "animation.gif"), "--strip", str(docs / "animation_strip.png")]) == 0
print(f"wrote {docs}/transfer_sheet.png, transfer_sheet_astronaut.png, animation_strip.png (work dir {work})")
