"""A tiny captioned dataset for the baselines' tests, written into a temporary folder.

Eight 32×32 scenes, each one coloured square (red/blue/green/yellow) on the left or the right
half of a black image, with whole-scene captions and a word vocabulary (for the backbones' stand-in pretraining)
and two referring expressions. The train split has no mask source: reading a mask raises.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.data.types import RefDataset, RefSample
from harness.segmenter import RunEnv

COLOURS = {"red": (220, 30, 30), "blue": (30, 30, 220), "green": (30, 200, 30), "yellow": (220, 220, 30)}
SIZE = 32
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def scene(colour: str, side: str) -> np.ndarray:
    """uint8 [32, 32, 3]: a 12×12 square of `colour` in the `side` half."""
    image = np.zeros((SIZE, SIZE, 3), dtype=np.uint8)
    x0 = 2 if side == "left" else SIZE - 14
    image[10:22, x0:x0 + 12] = COLOURS[colour]
    return image


def write_tiny_dataset(root: Path) -> tuple[RunEnv, RefDataset]:
    """(env pointing at `root/tiny`, the train RefDataset without masks)."""
    data_root = Path(root) / "tiny"
    image_dir = Path(root) / "images" / "tiny"
    image_dir.mkdir(parents=True)
    data_root.mkdir(parents=True)
    captions, samples = [], []
    for image_id, (colour, side) in enumerate((c, s) for c in COLOURS for s in ("left", "right")):
        path = image_dir / f"{image_id:03d}.png"
        Image.fromarray(scene(colour, side)).save(path)
        captions.append({"image_id": image_id, "file_name": f"images/tiny/{path.name}",
                         "captions": [f"a {colour} square on the {side}", f"one {colour} square"]})
        for k, text in enumerate((f"the {colour} square", f"the square on the {side}")):
            samples.append(RefSample(sample_id=10 * image_id + k, ref_id=image_id, image_id=image_id,
                                     image_path=path, text=text, height=SIZE, width=SIZE))
    (data_root / "captions.json").write_text(json.dumps(captions))
    words = sorted({w for c in captions for t in c["captions"] for w in t.split()}
                   | {w for s in samples for w in s.text.split()})
    (data_root / "vocab.txt").write_text("\n".join(SPECIAL_TOKENS + words) + "\n")
    env = RunEnv(dataset="tiny", data_root=data_root, cache_dir=Path(root) / "cache", progress=False)
    return env, RefDataset("tiny", "train", data_root, samples)


def batch_images(dataset: RefDataset, n: int) -> "torch.Tensor":
    """The first n samples' images as float [n, 3, 32, 32] in [0, 1]."""
    import torch

    arrays = np.stack([dataset.image(i) for i in range(n)]).astype(np.float32) / 255.0
    return torch.from_numpy(arrays).permute(0, 3, 1, 2).contiguous()



def small_synthref(root: Path) -> Path:
    """A small synthref DATA_ROOT under `root` (24 train scenes, 6 val)."""
    from harness.data.synthref import write_synthref

    return write_synthref(Path(root) / "data", "synthref", seed=0,
                          sizes={"train": 24, "val": 6, "testA": 2, "testB": 2})


@pytest.fixture(scope="module", name="synthref_root")
def small_synthref_root(tmp_path_factory):
    """A small synthref, with the stand-in cache beside it for the whole module.

    Importing this into a test module overrides conftest's session-wide `synthref_root` there:
    a 6-expression val split keeps the methods' smoke runs fast.
    """
    root = tmp_path_factory.mktemp("synthref")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SAG_HARNESS_CACHE", str(root / "cache"))
        yield small_synthref(root)


def smoke_run(spec: str, data_root: Path, out: Path) -> dict:
    """`spec` through the runner on `data_root` with the smoke profile; its metrics.json.

    The caller points SAG_HARNESS_CACHE at a temporary folder, where the tiny stand-ins train.
    """
    from harness.run.runner import RunOptions, run_one

    opts = RunOptions(dataset="synthref", profile="smoke", splits=["val"], data_root=data_root,
                      out=out, progress=False)
    outcome = run_one(spec, 0, opts)
    assert outcome.status == "done" and (outcome.run_dir / "metrics.json").is_file()
    return json.loads((outcome.run_dir / "metrics.json").read_text())
