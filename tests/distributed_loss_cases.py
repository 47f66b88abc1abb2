"""Each method's real in-batch loss on tiny towers, for tests/test_distributed_losses.py.

`case_loss(name, model, batch)` runs the method's own loss code (baselines/contrastive.py,
harness/backbones/groupvit_loss.py, baselines/tseg_loss.py, SaGNet.forward's C3 +
reconstruction) on embeddings from small deterministic towers (no dropout, no BatchNorm, no
sampling: one process and two must see the same numbers). Run under torchrun, `main` trains one
step of each case on this rank's share of the global batch (the loader's interleaved split) with
DDP and writes rank 0's loss average and DDP-averaged gradients to OUT.
"""

from __future__ import annotations

import random
import sys

import torch
import torch.nn.functional as F
from torch import nn

from harness import distributed
CASES = ("clip", "groupvit", "mlpa", "sag")
WORDS = "a photo of the big small red blue green circle square star left right".split()
# 8 pairs; images 0, 1 and 3 and the text "red circle" occur on both ranks (interleaved split),
# so cross-rank false negatives, shared positives and duplicate candidates all occur.
IMAGE_IDS = [0, 0, 1, 2, 3, 3, 4, 1]
TEXTS = ["big red circle", "small blue square", "red circle", "green star", "blue square",
         "red circle", "small green star", "left red circle"]


def global_batch() -> dict:
    gen = torch.Generator().manual_seed(7)
    pixels = {i: torch.rand(3, 8, 8, generator=gen) for i in sorted(set(IMAGE_IDS))}
    return {"images": torch.stack([pixels[i] for i in IMAGE_IDS]), "texts": list(TEXTS),
            "image_ids": list(IMAGE_IDS)}


def rank_share_of(batch: dict, rank: int, world: int) -> dict:
    """The loader's split (harness/data/loader.py rank_indices): every world-th pair from rank."""
    idx = list(range(rank, len(batch["texts"]), world))
    return {"images": batch["images"][idx], "texts": [batch["texts"][i] for i in idx],
            "image_ids": [batch["image_ids"][i] for i in idx]}


class TextTower(nn.Module):
    """Mean of word embeddings [T, D] (the words of WORDS; others share one row)."""

    def __init__(self, dim: int):
        super().__init__()
        self.embed = nn.EmbeddingBag(len(WORDS) + 1, dim, mode="mean")

    def tokens(self, texts: list[str]) -> list[list[int]]:
        return [[WORDS.index(w) + 1 if w in WORDS else 0 for w in t.replace(".", "").split()] for t in texts]

    def forward(self, texts: list[str]) -> torch.Tensor:
        ids = self.tokens(texts)
        flat = torch.tensor([i for row in ids for i in row])
        offsets = torch.tensor([0] + [len(r) for r in ids[:-1]]).cumsum(0)
        return self.embed(flat, offsets)


class Towers(nn.Module):
    """Patch tokens [B, 4, D] from 4x4-pixel patches, a text tower, a learned log-temperature."""

    def __init__(self, dim: int = 12):
        super().__init__()
        self.patch = nn.Linear(3 * 4 * 4, dim)
        self.text = TextTower(dim)
        self.logit_scale = nn.Parameter(torch.tensor(2.0))

    def patches(self, images: torch.Tensor) -> torch.Tensor:
        cells = images.unfold(2, 4, 4).unfold(3, 4, 4)                          # [B, 3, 2, 2, 4, 4]
        cells = cells.permute(0, 2, 3, 1, 4, 5).flatten(3).flatten(1, 2)         # [B, 4, 48]
        return self.patch(cells)                                                 # [B, 4, D]


class CaseLoss(nn.Module):
    """forward(images, texts, image_ids) -> the case's loss (what DDP wraps)."""

    def __init__(self, name: str):
        super().__init__()
        self.name = name
        if name == "sag":
            self.net = tiny_sag_net()
        else:
            self.towers = Towers()

    def forward(self, images, texts, image_ids):
        if self.name == "sag":
            return self.net(images, texts)["total"]
        towers = self.towers
        if self.name == "clip":
            from baselines.contrastive import clip_contrastive_loss

            return clip_contrastive_loss(towers.patches(images).mean(1), towers.text(texts), towers.logit_scale,
                                         image_ids, texts)
        if self.name == "groupvit":
            from harness.backbones.groupvit_loss import groupvit_loss, multi_label_prompts

            prompts = [p for t in texts for p in multi_label_prompts(t, 2, random.Random(0))]
            prompt_x = towers.text(prompts).view(len(texts), 2, -1)
            return groupvit_loss(towers.patches(images).mean(1), towers.text(texts), prompt_x, image_ids,
                                 towers.logit_scale)[0]
        from baselines.tseg_loss import batch_candidates, mlpa_loss

        rows, candidates, _ = batch_candidates(image_ids, texts)
        return mlpa_loss(towers.patches(images[rows]), towers.text(candidates), image_ids, texts, 0.5)


class TinyViT(nn.Module):
    embed_dim, grid = 12, (2, 2)

    def __init__(self):
        super().__init__()
        self.towers = Towers(self.embed_dim)

    def forward(self, images):
        return self.towers.patches(images)                                       # [B, 4, 12]


class TinyBert(nn.Module):
    """BERT's interface (tokenize -> tensors, forward -> [B, L, H]) on the word list."""

    hidden_size = 12

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(len(WORDS) + 2, self.hidden_size, padding_idx=0)

    def tokenize(self, texts):
        ids = [[WORDS.index(w) + 2 if w in WORDS else 1 for w in t.split()] for t in texts]
        longest = max(len(row) for row in ids)
        return {"input_ids": torch.tensor([row + [0] * (longest - len(row)) for row in ids])}

    def forward(self, input_ids):
        mask = (input_ids > 0).float().unsqueeze(-1)                             # [B, L, 1]
        pooled = (self.embed(input_ids) * mask).sum(1) / mask.sum(1)             # [B, H]
        return F.layer_norm(pooled, (self.hidden_size,)).unsqueeze(1)            # [B, 1, H]


def tiny_sag_net():
    from sag_model.network import SaGNet

    cfg = dict(dim=16, T=2, slots=dict(type="query", groups=2, samples=2), cross_heads=2, cross_dim_head=8,
               self_heads=2, self_dim_head=8, ff_mult=2, dropout=0.0, fusion_heads=2, fusion_dim_head=8,
               decoder_hidden=16, recon_weight=1.0)
    return SaGNet(TinyViT(), TinyBert(), cfg)


def one_step(name: str) -> tuple[float, dict]:
    """(loss averaged over ranks, DDP-averaged gradients by parameter name) of one step."""
    torch.manual_seed(0)
    module = CaseLoss(name)
    model = distributed.wrap_ddp(module)
    share = rank_share_of(global_batch(), distributed.rank(), distributed.world_size())
    loss = model(share["images"], share["texts"], share["image_ids"])
    loss.backward()
    value = sum(distributed.all_gather_objects(float(loss.detach()))) / distributed.world_size()
    return value, {k: p.grad.clone() for k, p in module.named_parameters() if p.grad is not None}


def main(out: str) -> None:
    distributed.init_distributed()
    results = {name: one_step(name) for name in CASES}
    if distributed.is_main():
        torch.save(results, out)
    distributed.shutdown_distributed()


if __name__ == "__main__":
    main(sys.argv[1])
