"""ViT stand-in pretraining (for ImageNet): multi-label classification of a scene's caption words.

The label vocabulary is every content word of the train captions (stopwords out), so the
targets are the colours, shapes and sizes a scene holds. A linear head scores every patch token
and the image's logit per label pools those scores over the patches (`pool`): "lse" is a
log-sum-exp mean, τ·(log Σ_p exp(s_p/τ) − log N), between the mean (τ → ∞) and the max (τ → 0),
the pooling of multiple-instance learning: a label is present when some patches say so, so each
patch token must carry what lies under it (an ImageNet-pretrained ViT's patch tokens do; 1,500
scenes and a mean-pooled head did not get there: SaG and TSEG stayed at the whole-image floor).
"mean" is the mean of the per-patch scores.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from harness.backbones.standin_training import (STOPWORDS, caption_words, load_caption_images,
                                                pretrain_steps, sample_batch, save_standin)
from harness.errors import ConfigError


def label_vocabulary(captions: list[list[str]]) -> list[str]:
    """Sorted content words over all captions."""
    return sorted({w for caps in captions for c in caps for w in caption_words(c)} - STOPWORDS)


def multi_hot_targets(captions: list[list[str]], labels: list[str]) -> torch.Tensor:
    """float [N, L]: 1 where a label word occurs in any caption of the image."""
    index = {w: i for i, w in enumerate(labels)}
    targets = torch.zeros(len(captions), len(labels))
    for row, caps in enumerate(captions):
        for caption in caps:
            for word in caption_words(caption):
                if word in index:
                    targets[row, index[word]] = 1.0
    return targets


def pool_patches(scores: torch.Tensor, pool: str, temperature: float) -> torch.Tensor:
    """Per-patch scores [B, N, L] → per-image scores [B, L] ("mean" or "lse", see the module doc)."""
    if pool == "mean":
        return scores.mean(dim=1)
    if pool == "lse":
        n = scores.shape[1]
        return temperature * (torch.logsumexp(scores / temperature, dim=1) - math.log(n))
    raise ConfigError(f"vit stand-in pool={pool!r}: expected 'mean' or 'lse'")


def train_vit_standin(encoder: nn.Module, standin: dict, data_root: Path, out_dir: Path,
                      progress: bool = True) -> dict:
    """Pretrain `encoder` (a PatchEncoder) in place with a linear multi-label head; save the encoder."""
    images, captions = load_caption_images(data_root, int(standin["img_size"]))  # [N, 3, S, S]
    labels = label_vocabulary(captions)
    targets = multi_hot_targets(captions, labels)  # [N, L]
    head = nn.Linear(encoder.embed_dim, len(labels))
    generator = torch.Generator().manual_seed(int(standin["seed"]))
    encoder.train()

    pool, temperature = str(standin.get("pool", "mean")), float(standin.get("pool_temperature", 1.0))

    def step_loss(step: int) -> torch.Tensor:
        picks = sample_batch(len(images), int(standin["batch_size"]), generator)
        logits = pool_patches(head(encoder(images[picks])), pool, temperature)  # [B, N, L] → [B, L]
        return F.binary_cross_entropy_with_logits(logits, targets[picks])

    params = list(encoder.parameters()) + list(head.parameters())
    curve = pretrain_steps("vit", params, standin, step_loss, progress)
    encoder.eval()
    save_standin(out_dir, encoder, curve, {"labels": labels})
    return curve
