"""The synthref stand-in for GroupViT's web pretraining: a tiny GroupViT trained from scratch on
synthref's whole-scene captions, through the harness's one fit loop. `build_groupvit` builds the
fresh model and caches the folder this fills by config hash (harness/backbones/pretrain_cache.py).

The loss is GroupViT's own (groupvit_loss.py: image–text plus multi-label contrastive on the
pooled image embedding) plus, with `dense_weight` > 0, a group-level multi-label contrastive loss:
every phrase of the image's captions is scored against the image's final *group* embeddings by a
log-sum-exp over the groups (the CLIP stand-in's phrase-to-patch loss, standin_clip.py, with
groups in place of patches). It tells the stand-in that a phrase lives in one of the groups, which
1,500 captions through the mean-pooled image embedding do not (docs/synthref_history.md). It never
sees a referring expression or a mask.
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
from harness.backbones.standin_clip import caption_phrases, multi_positive_loss, pooled_phrase_logits
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


class PhraseGroupLoss:
    """`weight` × the multi-positive InfoNCE between a batch's caption phrases and its images, each
    image scored by a log-sum-exp over its final groups (temperature `pool_temperature`).

    image_phrases: per image of the batch, the set of phrases of its captions. `phrases` (sorted
    union) is what the text tower encodes; a phrase is a positive of every image whose captions hold it.
    """

    def __init__(self, image_phrases: list[set[str]], weight: float, pool_temperature: float):
        self.phrases = sorted(set().union(*image_phrases))
        self.positive = torch.tensor([[p in held for p in self.phrases] for held in image_phrases])  # [B, T]
        self.weight, self.pool_temperature = weight, pool_temperature

    def __call__(self, group_x: torch.Tensor, phrase_x: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
        """group_x [B, G, D], phrase_x [T, D] (projected, not normalised) -> scalar loss."""
        logits = pooled_phrase_logits(group_x, phrase_x, self.pool_temperature, logit_scale.exp().clamp(max=100))
        return self.weight * multi_positive_loss(logits, self.positive)


def pretrain_standin(model, tokenizer, standin: dict, data_root: Path, out_dir: Path,
                     progress: bool = True) -> dict:
    """Train `model` (a fresh GroupViTModel in train mode) on the captions of `data_root`; save it
    with its tokenizer as a transformers folder, and its loss curve as curve.json, in out_dir."""
    steps, batch = int(standin_value(standin, "steps")), int(standin_value(standin, "batch_size"))
    k, rng = int(standin_value(standin, "phrases")), random.Random(int(standin_value(standin, "seed")))
    dense_weight = float(standin.get("dense_weight", 0.0))   # 0: GroupViT's own loss only
    pool_temperature = float(standin_value(standin, "pool_temperature")) if dense_weight else 0.0
    pairs = load_caption_pairs(data_root)
    images = normalise_pixels(load_images([p for p, _ in pairs], model.config.vision_config.image_size), standin)
    phrases = caption_phrases([caps for _, caps in pairs])

    def step_loss(step: int) -> torch.Tensor:
        idx = rng.sample(range(len(pairs)), min(batch, len(pairs)))
        texts = [rng.choice(pairs[i][1]) for i in idx]
        dense = PhraseGroupLoss([phrases[i] for i in idx], dense_weight, pool_temperature) if dense_weight else None
        return loss_on_batch(model, tokenizer, images[idx], texts, idx, k, rng, dense)[0]

    schedule = Schedule(steps, int(standin_value(standin, "warmup")), decay="cosine", float_order="pi_first")
    recipe = Recipe([{"params": list(model.parameters()), "lr": float(standin_value(standin, "lr"))}],
                    float(standin_value(standin, "weight_decay")), schedule, grad_clip=1.0)
    curve = fit_steps("groupvit stand-in pretraining", recipe, steps, step_loss, progress)
    with quiet_transformers_loading():   # no "Writing model shards" bar
        model.eval().save_pretrained(str(out_dir))
    tokenizer.save(out_dir)
    (Path(out_dir) / "curve.json").write_text(json.dumps(curve))
    return curve
