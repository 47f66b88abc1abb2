"""CLIP stand-in pretraining: symmetric InfoNCE between synthref scenes and their captions.

Each step draws `batch_size` captioned train images and one random caption of each, as CLIP
pairs an image with its alt-text; the learned temperature (`logit_scale`) is clamped at 100
as in CLIP.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F

from harness.backbones.standin_training import (load_caption_images, run_steps, sample_batch,
                                                save_standin)


def clip_contrastive_loss(image_features: torch.Tensor, text_features: torch.Tensor,
                          logit_scale: torch.Tensor) -> torch.Tensor:
    """Mean of image→text and text→image cross-entropy over the batch's similarity matrix."""
    image_features = F.normalize(image_features, dim=-1)  # [B, D]
    text_features = F.normalize(text_features, dim=-1)  # [B, D]
    logits = logit_scale * image_features @ text_features.t()  # [B, B]
    targets = torch.arange(logits.shape[0])
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.t(), targets)) / 2


def train_clip_standin(model, tokenizer, standin: dict, data_root: Path, out_dir: Path,
                       progress: bool = True) -> dict:
    """Pretrain `model` (an open_clip CLIP) in place on the captions of `data_root`; save it."""
    size = int(standin["vision_cfg"]["image_size"])
    images, captions = load_caption_images(data_root, size)  # [N, 3, S, S]
    mean = torch.tensor(standin["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(standin["std"]).view(1, 3, 1, 1)
    generator = torch.Generator().manual_seed(int(standin["seed"]))
    max_scale = math.log(100.0)
    model.train()

    def step_loss(step: int) -> torch.Tensor:
        picks = sample_batch(len(images), int(standin["batch_size"]), generator)
        choice = torch.randint(0, 1 << 30, (len(picks),), generator=generator)
        texts = [captions[i][c % len(captions[i])] for i, c in zip(picks.tolist(), choice.tolist())]
        with torch.no_grad():
            model.logit_scale.clamp_(max=max_scale)
        image_features = model.encode_image((images[picks] - mean) / std)  # [B, D]
        text_features = model.encode_text(tokenizer(texts))  # [B, D]
        return clip_contrastive_loss(image_features, text_features, model.logit_scale.exp())

    curve = run_steps("clip", model.parameters(), standin, step_loss, progress)
    model.eval()
    save_standin(out_dir, model, curve)
    return curve
