"""What every stand-in pretraining shares: caption data in memory, a seeded scope, the recipe.

The objectives live in `standin_clip.py` (contrastive), `standin_vit.py` (multi-label
classification), `standin_bert.py` (masked language modelling); each trains through the harness's
one fit loop (harness/run/fit_loop.py `fit_steps`, which prints the loss-curve summary) and writes
`weights.pt` and `curve.json` (losses per step, seconds) into the folder `cached_pretrain` hands it.
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from harness.backbones.pretrain_cache import load_caption_pairs
from harness.data.images import read_rgb
from harness.run.fit_loop import Recipe, Schedule, fit_steps

# Words that carry no visual content: excluded from the ViT stand-in's label vocabulary.
STOPWORDS = frozenset("""a an the and or of in on at to with is are there this that it its
    one two three four five six seven eight nine ten some several scene image picture photo
    showing shows next near beside behind front left right top bottom above below middle
    center centre side other another each has have from shape shapes
    object objects""".split())


def merged(default: dict, override: dict | None) -> dict:
    """`default` with `override` laid over it, recursively for nested dicts."""
    out = copy.deepcopy(default)
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


@contextlib.contextmanager
def standin_seed(seed: int):
    """Seed torch for a stand-in without disturbing the caller's random stream (the run's seed)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def caption_words(caption: str) -> list[str]:
    return re.findall(r"[a-z]+", caption.lower())


def load_caption_images(data_root: Path, size: int) -> tuple[torch.Tensor, list[list[str]]]:
    """Every captioned train image as float [N, 3, size, size] in [0, 1], with its captions."""
    pairs = load_caption_pairs(data_root)
    images = []
    for path, _ in pairs:
        rgb = torch.from_numpy(np.array(read_rgb(path))).permute(2, 0, 1).float() / 255  # [3, H, W]
        images.append(rgb)
    batch = torch.stack([squash(im, size) for im in images])  # [N, 3, S, S]
    return batch, [captions for _, captions in pairs]


def squash(image: torch.Tensor, size: int) -> torch.Tensor:
    """[3, H, W] → [3, size, size], bilinear with antialias (as the harness's loaders squash)."""
    if image.shape[-2:] == (size, size):
        return image
    return F.interpolate(image[None], size=(size, size), mode="bilinear", antialias=True,
                         align_corners=False)[0]


def standin_recipe(params, standin: dict) -> Recipe:
    """AdamW at `standin["lr"]`, linear warm-up over `warmup` steps then cosine to 0 at `steps`."""
    schedule = Schedule(int(standin["steps"]), int(standin["warmup"]), decay="cosine", float_order="lr_ramp")
    return Recipe([{"params": list(params), "lr": standin["lr"]}], standin["weight_decay"], schedule)


def pretrain_steps(kind: str, params, standin: dict, step_loss, progress: bool = True) -> dict:
    """`standin["steps"]` steps of `step_loss(step)` through harness/run/fit_loop.py; returns the curve."""
    return fit_steps(f"{kind} stand-in pretraining", standin_recipe(params, standin), int(standin["steps"]),
                     step_loss, progress)


def save_standin(out_dir: Path, module: torch.nn.Module, curve: dict, extra: dict | None = None) -> None:
    """weights.pt (the module's state dict) and curve.json into the cache folder being filled."""
    torch.save(module.state_dict(), Path(out_dir) / "weights.pt")
    (Path(out_dir) / "curve.json").write_text(json.dumps(dict(curve, **(extra or {}))))


def load_standin_weights(folder: Path, module: torch.nn.Module) -> torch.nn.Module:
    module.load_state_dict(torch.load(Path(folder) / "weights.pt", map_location="cpu", weights_only=True))
    return module


def sample_batch(n_items: int, batch_size: int, generator: torch.Generator) -> torch.Tensor:
    """Indices of one batch, without replacement within it."""
    return torch.randperm(n_items, generator=generator)[:min(batch_size, n_items)]
