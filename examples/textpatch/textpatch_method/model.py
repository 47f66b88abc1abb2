"""textpatch: a small text–patch model, the worked example of docs/adding_a_method.md.

The recipe of issue 11 (measured there at 16–17 mIoU on synthref val after a CPU minute, above
the every-object oracle): a conv encoder whose cells see about one object (receptive field 17 px)
on a 16×16 grid of 4-px cells; an expression is the mean of its word embeddings; the score of an
(image, expression) pair is the log-sum-exp mean over patches of their cosine to the expression,
inside a symmetric InfoNCE loss whose negatives leave out the image's own other expressions; a
horizontal flip with left↔right swapped in the words. The map is each patch's cosine.

Nothing here is harness machinery: the class registers itself, trains through the harness's one
fit loop (so seeding, checkpoints, resume and DDP are the harness's) and answers `predict`.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from harness.registry import SEGMENTERS
from harness.run.fit_loop import base_lr, fine_tune_recipe, fit_epochs, plan_epochs
from harness.segmenter import Segmenter

HASHED_WORDS = 4096           # word buckets when the dataset ships no vocab.txt
MIRRORED = {"left": "right", "right": "left", "leftmost": "rightmost", "rightmost": "leftmost"}


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


class Vocabulary:
    """Word → id from the dataset's vocab.txt (synthref ships one), else a stable hash bucket."""

    def __init__(self, data_root: Path):
        path = Path(data_root) / "vocab.txt"
        self.ids = {w: i for i, w in enumerate(path.read_text().split())} if path.is_file() else None
        self.size = len(self.ids) + 1 if self.ids is not None else HASHED_WORDS

    def encode(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids [T, L], mask [T, L]) padded with 0, the mask 1 on real words."""
        rows = [[self._id(w) for w in words(t)] or [0] for t in texts]
        length = max(len(r) for r in rows)
        ids = torch.tensor([r + [0] * (length - len(r)) for r in rows])
        mask = torch.tensor([[1.0] * len(r) + [0.0] * (length - len(r)) for r in rows])
        return ids, mask

    def _id(self, word: str) -> int:
        if self.ids is None:
            return 1 + sum(ord(c) * 31 ** i for i, c in enumerate(word)) % (HASHED_WORDS - 1)
        return self.ids.get(word, len(self.ids))


class TextPatchNet(nn.Module):
    def __init__(self, vocab_size: int, width: int, temperature: float):
        super().__init__()
        self.encoder = nn.Sequential(   # receptive field 3 → 5 → 9 → 17 px; stride 4: 16×16 cells
            nn.Conv2d(3, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, width, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(width, width, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1))
        self.words = nn.Embedding(vocab_size, width)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(temperature)))

    def patches(self, images: torch.Tensor) -> torch.Tensor:
        """[B, 3, S, S] in [0, 1] → unit patch features [B, N, C] on the (S/4)² grid."""
        return F.normalize(rearrange(self.encoder(images - 0.5), "b c h w -> b (h w) c"), dim=-1)

    def texts(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[T, L] word ids → unit expression features [T, C] (mean of the word embeddings)."""
        summed = (self.words(ids) * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        return F.normalize(summed, dim=-1)


class Objective(nn.Module):
    """Symmetric InfoNCE over pooled patch–text scores (a module, so DDP can wrap it)."""

    def __init__(self, segmenter: "TextPatch"):
        super().__init__()
        self.segmenter, self.net = segmenter, segmenter.net

    def forward(self, images, texts, image_ids):
        seg = self.segmenter
        images, texts = seg.flipped(images, texts)
        patches = self.net.patches(images)                                    # [B, N, C]
        text = self.net.texts(*[t.to(images.device) for t in seg.vocab.encode(texts)])   # [B, C]
        logits = self.net.logit_scale.exp().clamp(max=100.0) * torch.einsum("inc,tc->itn", patches, text)
        r = seg.sharpness   # log-sum-exp mean over patches: [B images, B texts]
        scores = (torch.logsumexp(r * logits, dim=-1) - math.log(patches.shape[1])) / r
        same = torch.tensor([[a == b for b in image_ids] for a in image_ids], device=scores.device)
        scores = scores.masked_fill(same & ~torch.eye(len(texts), dtype=torch.bool, device=scores.device),
                                    float("-inf"))                            # own other expressions
        target = torch.arange(len(texts), device=scores.device)
        return 0.5 * (F.cross_entropy(scores, target) + F.cross_entropy(scores.t(), target))


@SEGMENTERS.register_module("textpatch")
class TextPatch(Segmenter):
    """cfg keys: input_size, width, temperature, pool_sharpness, flip (configs/textpatch.py)."""

    CONFIG_DIR = Path(__file__).parent / "configs"

    def __init__(self, cfg: dict, env):
        super().__init__(cfg, env)
        self.vocab = Vocabulary(env.data_root)
        self.sharpness = float(cfg.get("pool_sharpness", 1.0))
        self.flip = bool(cfg.get("flip", True))
        self.net = TextPatchNet(self.vocab.size, int(cfg.get("width", 32)),
                                float(cfg.get("temperature", 10.0))).to(env.device)
        self._coin = torch.Generator()

    def modules(self) -> dict[str, nn.Module]:
        return {"net": self.net}

    def flipped(self, images: torch.Tensor, texts: list[str]):
        """Each pair flipped left–right with probability ½, its left/right words swapped."""
        if not self.flip:
            return images, texts
        flip = torch.rand(len(texts), generator=self._coin) < 0.5
        images = torch.where(flip.to(images.device)[:, None, None, None], images.flip(-1), images)
        texts = [" ".join(MIRRORED.get(w, w) for w in words(t)) if f else t for t, f in zip(texts, flip)]
        return images, texts

    def fit(self, train, train_cfg: dict, seed: int, ctx) -> dict:
        if not self.finetune:
            return {"finetune": False}
        self._coin.manual_seed(seed)
        plan = plan_epochs(train_cfg, len(train))
        lr = base_lr(train_cfg) * float(train_cfg.get("lr_scale", 1.0))
        recipe = fine_tune_recipe(train_cfg, [{"params": list(self.net.parameters()), "lr": lr}],
                                  plan.total_steps)
        return fit_epochs("textpatch", Objective(self), recipe, train, plan, seed, self.input_size, ctx)

    @torch.no_grad()
    def predict(self, images: torch.Tensor, texts: list[str], samples: Optional[list] = None) -> torch.Tensor:
        """(cos + 1) / 2 of each cell to the expression: [B, S/4, S/4] in [0, 1]."""
        self.net.eval()
        images = images.to(self.env.device)
        patches = self.net.patches(images)                                   # [B, N, C]
        text = self.net.texts(*[t.to(images.device) for t in self.vocab.encode(texts)])   # [B, C]
        cos = torch.einsum("bnc,bc->bn", patches, text)
        side = images.shape[-1] // 4
        return rearrange((cos + 1) / 2, "b (h w) -> b h w", h=side, w=side).clamp(0, 1).cpu()
