"""ViT stand-in pretraining (for ImageNet): multi-label classification of a scene's caption words.

The label vocabulary is every content word of the train captions (stopwords out), so the
targets are the colours, shapes and sizes a scene holds. The head reads the mean of the patch
tokens, not a class token, so that the patch tokens the methods use carry the semantics.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from harness.backbones.standin_training import (STOPWORDS, caption_words, load_caption_images,
                                                run_steps, sample_batch, save_standin)


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


def train_vit_standin(encoder: nn.Module, standin: dict, data_root: Path, out_dir: Path,
                      progress: bool = True) -> dict:
    """Pretrain `encoder` (a PatchEncoder) in place with a linear multi-label head; save the encoder."""
    images, captions = load_caption_images(data_root, int(standin["img_size"]))  # [N, 3, S, S]
    labels = label_vocabulary(captions)
    targets = multi_hot_targets(captions, labels)  # [N, L]
    head = nn.Linear(encoder.embed_dim, len(labels))
    generator = torch.Generator().manual_seed(int(standin["seed"]))
    encoder.train()

    def step_loss(step: int) -> torch.Tensor:
        picks = sample_batch(len(images), int(standin["batch_size"]), generator)
        pooled = encoder(images[picks]).mean(dim=1)  # [B, N, C] → [B, C]
        return F.binary_cross_entropy_with_logits(head(pooled), targets[picks])

    params = list(encoder.parameters()) + list(head.parameters())
    curve = run_steps("vit", params, standin, step_loss, progress)
    encoder.eval()
    save_standin(out_dir, encoder, curve, {"labels": labels})
    return curve
