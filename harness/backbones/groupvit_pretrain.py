"""The synthref stand-in for GroupViT's web pretraining: a tiny GroupViT trained from scratch on
synthref's whole-scene captions with GroupViT's own loss (groupvit_loss.py), through the harness's
one fit loop. `build_groupvit` builds the fresh model and caches the folder this fills by config
hash (harness/backbones/pretrain_cache.py).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from harness.backbones.groupvit_loss import loss_on_batch, normalise_pixels
from harness.backbones.pretrain_cache import load_caption_pairs
from harness.backbones.state_dicts import quiet_transformers_loading
from harness.data.images import read_rgb
from harness.errors import ConfigError
from harness.run.fit_loop import Recipe, Schedule, fit_steps


def standin_value(standin: dict, key: str):
    """`standin[key]`, or ConfigError naming the key (the stand-in's schedule lives in its config)."""
    if key not in standin:
        raise ConfigError(f"method.backbone.standin.{key}: missing (the GroupViT stand-in's schedule)")
    return standin[key]


def load_images(paths: list[Path], size: int) -> torch.Tensor:
    """Float [N, 3, size, size] in [0, 1], squashed to size×size (bilinear, antialiased)."""
    out = torch.empty(len(paths), 3, size, size)
    for n, path in enumerate(paths):
        img = torch.from_numpy(np.array(read_rgb(path))).permute(2, 0, 1).float()[None] / 255
        out[n] = F.interpolate(img, size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]
    return out


def pretrain_standin(model, tokenizer, standin: dict, data_root: Path, out_dir: Path,
                     progress: bool = True) -> dict:
    """Train `model` (a fresh GroupViTModel in train mode) on the captions of `data_root`; save it
    with its tokenizer as a transformers folder, and its loss curve as curve.json, in out_dir."""
    steps, batch = int(standin_value(standin, "steps")), int(standin_value(standin, "batch_size"))
    k, rng = int(standin_value(standin, "phrases")), random.Random(int(standin_value(standin, "seed")))
    pairs = load_caption_pairs(data_root)
    images = normalise_pixels(load_images([p for p, _ in pairs], model.config.vision_config.image_size), standin)

    def step_loss(step: int) -> torch.Tensor:
        idx = rng.sample(range(len(pairs)), min(batch, len(pairs)))
        texts = [rng.choice(pairs[i][1]) for i in idx]
        return loss_on_batch(model, tokenizer, images[idx], texts, idx, k, rng)[0]

    schedule = Schedule(steps, int(standin_value(standin, "warmup")), decay="cosine", float_order="pi_first")
    recipe = Recipe([{"params": list(model.parameters()), "lr": float(standin_value(standin, "lr"))}],
                    float(standin_value(standin, "weight_decay")), schedule, grad_clip=1.0)
    curve = fit_steps("groupvit stand-in pretraining", recipe, steps, step_loss, progress)
    with quiet_transformers_loading():   # no "Writing model shards" bar
        model.eval().save_pretrained(str(out_dir))
    tokenizer.save(out_dir)
    (Path(out_dir) / "curve.json").write_text(json.dumps(curve))
    return curve
