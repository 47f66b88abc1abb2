"""What every stand-in pretraining shares: caption data in memory, a seeded scope, the step loop.

The loops themselves live next to their objective: `standin_clip.py` (contrastive),
`standin_vit.py` (multi-label classification), `standin_bert.py` (masked language modelling).
Each writes `weights.pt` and `curve.json` (losses per step, seconds) into the folder that
`cached_pretrain` hands it, and prints a one-line loss-curve summary.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import re
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from harness.backbones.pretrain_cache import load_caption_pairs
from harness.data.images import read_rgb
from harness.errors import TrainingDivergedError

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


def cosine_lr(step: int, steps: int, base_lr: float, warmup: int) -> float:
    if step < warmup:
        return base_lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return base_lr * 0.5 * (1 + math.cos(math.pi * progress))


def run_steps(kind: str, params, standin: dict, step_loss: Callable[[int], torch.Tensor],
              progress: bool = True) -> dict:
    """AdamW with warmup + cosine for `standin["steps"]` steps of `step_loss(step)`; returns the curve.

    Raises TrainingDivergedError on a non-finite loss, naming the stand-in and step.
    """
    steps = int(standin["steps"])
    optimizer = torch.optim.AdamW(params, lr=standin["lr"], weight_decay=standin["weight_decay"])
    losses, started, last_finite = [], time.perf_counter(), None
    bar = tqdm(range(steps), desc=f"{kind} stand-in pretraining", disable=not progress, leave=False)
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(step, steps, standin["lr"], int(standin.get("warmup", 0)))
        loss = step_loss(step)
        if not torch.isfinite(loss):
            raise TrainingDivergedError(f"{kind} stand-in pretraining: loss {loss.item()} at step {step}; "
                                        f"last finite loss {last_finite}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        last_finite = loss.item()
        losses.append(last_finite)
        bar.set_postfix(loss=f"{last_finite:.3f}")
    curve = {"losses": losses, "seconds": time.perf_counter() - started}
    print(curve_summary(kind, curve))
    return curve


def curve_summary(kind: str, curve: dict) -> str:
    losses = curve["losses"]
    if not losses:
        return f"{kind} stand-in: no steps"
    first, mid, last = losses[0], losses[len(losses) // 2], losses[-1]
    return (f"{kind} stand-in pretraining: loss {first:.3f} (first) → {mid:.3f} (mid) → {last:.3f} (last) "
            f"over {len(losses)} steps in {curve['seconds']:.1f} s")


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
