"""TSEG (Strudel, Laptev, Schmid, arXiv 2205.04725) — a RECONSTRUCTION, not the authors' code.

No public TSEG code exists; this follows specs/tseg.md (§B.2–B.4), whose details beyond the
abstract are inferred: a ViT gives patch tokens, BERT a sentence embedding (CLS, or the masked
mean of its tokens), both are linearly projected to a joint width and ℓ2-normalised, and the
patch–text score is S[p, j] = <x̂_p, t̂_j> / τ. Training is the multi-label patch assignment
(MLPA) objective with a multi-label BCE over every expression of the batch (baselines/tseg_loss.py).
Not reconstructed: the joint patch–text transformer layers TSEG may have had (Segmenter's mask
transformer); their number is unknown.

Inference (`method.inference`):
- "similarity": the query's patch scores, as (cos + 1) / 2 (the runner min-max normalises);
- "assignment": the query's soft assignment, softmax over the distinct expressions of the same
  image in the evaluated split (MLPA's competition at test time). An image with one expression
  gets a constant map, so prefer "similarity" for datasets with one expression per image.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Optional

import torch
import torch.nn.functional as F
from einops import rearrange

from baselines.tseg_loss import batch_candidates, mlpa_loss, patch_text_scores
from harness.backbones.bert import build_bert
from harness.backbones.vit import build_vit
from harness.data.types import RefDataset, RefSample
from harness.errors import ConfigError
from harness.run.fit_loop import FitContext, base_lr, fine_tune_recipe, fit_epochs, plan_epochs, train_value
from harness.registry import SEGMENTERS
from harness.segmenter import RunEnv, Segmenter

TEXT_POOLS = ("cls", "mean")
INFERENCES = ("similarity", "assignment")


def pool_sentence(hidden: torch.Tensor, attention_mask: Optional[torch.Tensor], how: str) -> torch.Tensor:
    """Sentence embedding [B, H] from BERT's last hidden states [B, L, H]."""
    if how == "cls":
        return hidden[:, 0]
    mask = attention_mask.to(hidden.dtype).unsqueeze(-1) if attention_mask is not None \
        else torch.ones_like(hidden[..., :1])  # [B, L, 1]
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


class MLPAObjective(torch.nn.Module):
    """The MLPA multi-label BCE of a batch of (image, expression) pairs, as a module for DDP."""

    def __init__(self, segmenter: "TSEG"):
        super().__init__()
        self.segmenter = segmenter
        self.parts = torch.nn.ModuleDict(segmenter.modules())  # registered so DDP sees them

    def forward(self, images, texts, image_ids):
        seg = self.segmenter
        rows, candidates, _ = batch_candidates(image_ids, texts)  # U images, T texts (this rank's)
        patches = seg.embed_patches(images[rows])  # [U, N, D]
        text = seg.embed_texts(candidates)  # [T, D]
        return mlpa_loss(patches, text, image_ids, texts, seg.temperature)


@SEGMENTERS.register_module("tseg")
class TSEG(Segmenter):
    """cfg keys: input_size, vit, bert (the builders' configs), joint_dim, temperature,
    text_pool ('cls'|'mean'), inference ('similarity'|'assignment')."""

    def __init__(self, cfg: dict, env: RunEnv):
        super().__init__(cfg, env)
        self.temperature = float(cfg.get("temperature", 0.07))
        self.text_pool = self._choice("text_pool", TEXT_POOLS)
        self.inference = self._choice("inference", INFERENCES)
        self.vit = build_vit(dict(cfg.get("vit") or {}), env)
        self.bert = build_bert(dict(cfg.get("bert") or {}), env)
        joint = int(cfg.get("joint_dim", 256))
        self.heads = torch.nn.ModuleDict({
            "patch": torch.nn.Linear(self.vit.embed_dim, joint),
            "text": torch.nn.Linear(self.bert.hidden_size, joint),
        })
        for m in self.modules().values():
            m.to(env.device).eval()
        self._image_texts: dict = {}

    def _choice(self, key: str, allowed: tuple) -> str:
        value = str(self.cfg.get(key, allowed[0]))
        if value not in allowed:
            raise ConfigError(f"method.{key}={value!r}; expected one of {', '.join(allowed)}")
        return value

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"vit": self.vit, "bert": self.bert, "heads": self.heads}

    def embed_patches(self, images: torch.Tensor) -> torch.Tensor:
        """Projected patch embeddings [B, N, D] for images [B, 3, S, S] in [0, 1]."""
        return self.heads["patch"](self.vit(images.to(self.env.device)))  # [B, N, C] → [B, N, D]

    def embed_texts(self, texts: list[str]) -> torch.Tensor:
        """Projected sentence embeddings [T, D]."""
        tokens = {k: v.to(self.env.device) for k, v in self.bert.tokenize(list(texts)).items()}
        hidden = self.bert(**tokens)  # [T, L, H]
        return self.heads["text"](pool_sentence(hidden, tokens.get("attention_mask"), self.text_pool))

    def fit(self, train: RefDataset, train_cfg: dict, seed: int, ctx: FitContext) -> dict:
        with torch.random.fork_rng(devices=[]):  # the heads' init depends on the run seed only
            torch.manual_seed(seed)
            for layer in self.heads.values():
                layer.reset_parameters()
        backbone = [p for m in (self.vit, self.bert) for p in m.parameters() if p.requires_grad]
        if "backbone_lr" in train_cfg:
            raise ConfigError("train.backbone_lr: replaced by train.backbone_lr_scale (a multiple of train.lr)")
        lr = base_lr(train_cfg)
        groups = [{"params": list(self.heads.parameters()), "lr": lr},
                  {"params": backbone, "lr": lr * float(train_value(train_cfg, "backbone_lr_scale"))}]
        plan = plan_epochs(train_cfg, len(train))
        recipe = fine_tune_recipe(train_cfg, groups, plan.total_steps)
        return fit_epochs("tseg", MLPAObjective(self), recipe, train, plan, seed, self.input_size, ctx)

    def prepare_eval(self, dataset: RefDataset) -> None:
        texts = defaultdict(list)
        for s in dataset.samples:
            if s.text not in texts[s.image_id]:
                texts[s.image_id].append(s.text)
        self._image_texts = dict(texts)

    @torch.no_grad()
    def predict(self, images: torch.Tensor, texts: list[str],
                samples: Optional[list[RefSample]] = None) -> torch.Tensor:
        """Score maps [B, h, w] in [0, 1] on the ViT's patch grid."""
        for m in self.modules().values():
            m.eval()
        patches = self.embed_patches(images)  # [B, N, D]
        if self.inference == "similarity":
            text = F.normalize(self.embed_texts(texts), dim=-1)  # [B, D]
            cos = torch.einsum("bnd,bd->bn", F.normalize(patches, dim=-1), text)  # [B, N]
            maps = (cos + 1.0) / 2.0
        else:
            maps = self._assignment(patches, texts, samples)
        h, w = self._grid(images.shape[-2:], maps.shape[1])
        return rearrange(maps, "b (h w) -> b h w", h=h, w=w).clamp(0.0, 1.0).cpu()

    def _grid(self, image_hw, n_patches: int) -> tuple[int, int]:
        """Patch grid (h, w) of an input: the configured grid, or the input's at another size."""
        if self.vit.grid[0] * self.vit.grid[1] == n_patches:
            return tuple(self.vit.grid)
        h = round((n_patches * image_hw[0] / image_hw[1]) ** 0.5)
        return h, n_patches // h

    def _assignment(self, patches, texts, samples) -> torch.Tensor:
        """Query's softmax share among its image's expressions, per patch: [B, N]."""
        if samples is None or not self._image_texts:
            raise ConfigError("method.inference='assignment' needs prepare_eval() and the batch's samples")
        maps = []
        for b, (text, sample) in enumerate(zip(texts, samples)):
            candidates = self._image_texts.get(sample.image_id, [text])
            candidates = candidates if text in candidates else [text] + candidates
            scores = patch_text_scores(patches[b:b + 1], self.embed_texts(candidates), self.temperature)
            maps.append(scores.softmax(dim=-1)[0, :, candidates.index(text)])  # [N]
        return torch.stack(maps)
