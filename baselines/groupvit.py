"""GroupViT (Xu et al., CVPR 2022) as a referring segmenter, by the SaG authors' protocol (supp. §B).

The image goes in with two texts: the referring expression and a dummy query ("a photo of a
nothing", config `dummy_query`) standing in for a background class. Each final group goes to the
text it is more similar to; the pixels of the groups that went to the expression are the mask.

Mask rules (config `mask_rule`):
- "official" (default) — NVlabs `segmentation/evaluation/group_vit_seg.py` (`get_attn_maps` +
  `encode_decode`): chain the grouping stages' soft assignments, upsample them bilinearly
  (align_corners False) to the image, give each pixel its argmax group, and each group the text
  of higher similarity; the map is 1 where the pixel's group goes to the query, else 0. The
  official code upsamples to its network input (aspect kept, ~ the original size: 448 short side)
  and then resizes the class scores to the original; our input is a square squash of the image,
  so the patch grid is upsampled straight to each sample's ORIGINAL size (H_i, W_i) — one
  bilinear step that undoes the squash, the argmax taken at the resolution the official code
  takes it — and `predict` returns those [H_i, W_i] maps (the runner's resize is then identity).
- "soft" — each patch's score is P(query | group) (softmax over the two texts of the scaled
  cosine similarities) averaged under its soft patch→group assignment; > 0.5 where the query
  wins on balance. On the patch grid (the runner resizes it).
- "hard" — each patch takes its argmax group on the patch grid (before any upsampling) and the
  group its winning text: a {0, 1} map on the patch grid.

Fine-tuning (`finetune=True`) trains the whole model with GroupViT's own loss (image–text
contrastive + multi-label contrastive over phrases of the expression) on the train split's
(image, expression) pairs — masks are never read. `finetune=False` is the zero-shot variant.
"""

from __future__ import annotations

import random
import warnings
from contextlib import contextmanager
from typing import Optional

import torch
import torch.nn.functional as F
from einops import rearrange

from harness import distributed
from harness.backbones.groupvit import build_groupvit
from harness.backbones.groupvit_loss import encode_images, encode_texts, loss_on_batch, normalise_pixels
from harness.data.types import RefDataset, RefSample
from harness.errors import ConfigError
from harness.run.fit_loop import FitContext, base_lr, fine_tune_recipe, fit_epochs, plan_epochs, train_value
from harness.registry import SEGMENTERS
from harness.segmenter import RunEnv, Segmenter

DEFAULT_DUMMY_QUERY = "a photo of a nothing"


MASK_RULES = ("official", "soft", "hard")


def query_wins(group_x: torch.Tensor, query_x: torch.Tensor, dummy_x: torch.Tensor) -> torch.Tensor:
    """bool [B, G]: group g is more similar (cosine) to the query than to the dummy query.

    group_x [B, G, D], query_x / dummy_x [B, D]. The official rule's argmax over
    softmax(scaled similarity)² picks the same text: the temperature never changes the winner.
    """
    groups = F.normalize(group_x, dim=-1)
    sims = groups @ F.normalize(torch.stack([query_x, dummy_x], dim=2), dim=1)   # [B, G, D] @ [B, D, 2]
    return sims[..., 0] > sims[..., 1]                                          # [B, G]


def official_masks(assignment: torch.Tensor, grid: tuple[int, int], wins: torch.Tensor,
                   sizes: list[tuple[int, int]]) -> list[torch.Tensor]:
    """NVlabs' rule: soft maps upsampled to each size, per-pixel argmax group, the group's text.

    assignment [B, N, G] chained soft patch→group weights on the (h, w) patch grid, wins bool
    [B, G] (`query_wins`), sizes [(H_i, W_i)]. Returns B maps [H_i, W_i] in {0, 1}.
    """
    h, w = grid
    maps = rearrange(assignment, "b (h w) g -> b g h w", h=h, w=w)
    out = []
    for b, size in enumerate(sizes):
        up = F.interpolate(maps[b:b + 1], size=tuple(size), mode="bilinear", align_corners=False)  # [1, G, H, W]
        pixel_group = up[0].argmax(dim=0)                                       # [H, W]
        out.append(wins[b][pixel_group].float())                                # [H, W]
    return out


def referring_scores(group_x: torch.Tensor, query_x: torch.Tensor, dummy_x: torch.Tensor,
                     assignment: torch.Tensor, scale: torch.Tensor, hard: bool = False) -> torch.Tensor:
    """Per-patch score of the referring query against the dummy query (the `soft` and `hard` rules).

    group_x [B, G, D] group embeddings, query_x / dummy_x [B, D] text embeddings, assignment
    [B, N, G] soft patch→group weights (rows sum to 1), scale the similarity temperature.
    Returns [B, N] in [0, 1]; > 0.5 where the query beats the dummy for the patch's groups.
    """
    if hard:
        group_to_query = query_wins(group_x, query_x, dummy_x).to(assignment.dtype)   # [B, G]
        patch_group = F.one_hot(assignment.argmax(dim=-1), assignment.shape[-1]).to(assignment.dtype)
        return (patch_group @ group_to_query.unsqueeze(-1)).squeeze(-1)     # [B, N, G] @ [B, G, 1] -> [B, N]
    groups = F.normalize(group_x, dim=-1)
    texts = F.normalize(torch.stack([query_x, dummy_x], dim=1), dim=-1)     # [B, 2, D]
    sims = groups @ texts.transpose(1, 2) * scale                           # [B, G, 2]
    p_query = sims.softmax(dim=-1)[..., 0]                                  # [B, G]
    return (assignment @ p_query.unsqueeze(-1)).squeeze(-1).clamp(0, 1)     # [B, N]


class GroupViTLoss(torch.nn.Module):
    """`forward(images in [0, 1], texts, image_ids) -> loss`: what harness/run/fit_loop.py trains."""

    def __init__(self, model, tokenizer, backbone_cfg: dict, phrases: int, seed: int):
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.backbone_cfg = backbone_cfg
        self.phrases = phrases
        self.rng = random.Random(seed)

    def forward(self, images: torch.Tensor, texts: list[str], image_ids: list) -> torch.Tensor:
        device = self.model.logit_scale.device
        pixels = normalise_pixels(images.to(device), self.backbone_cfg)
        if len(texts) == 1:
            # BatchNorm in the projection heads cannot train on a batch of one (a last partial
            # batch): use its running statistics for that step.
            with frozen_batchnorm(self.model):
                return loss_on_batch(self.model, self.tokenizer, pixels, texts, image_ids, self.phrases, self.rng)[0]
        return loss_on_batch(self.model, self.tokenizer, pixels, texts, image_ids, self.phrases, self.rng)[0]


@contextmanager
def frozen_batchnorm(model: torch.nn.Module):
    """BatchNorm layers use their running statistics inside the block, and train again after it."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d) and m.training]
    for m in norms:
        m.eval()
    try:
        yield
    finally:
        for m in norms:
            m.train()


def sync_batchnorm_across_ranks(model: torch.nn.Module) -> None:
    """Under DDP, GroupViT's projection-head BatchNorms normalise over the global batch, as NVlabs
    trains them (SyncBatchNorm); torch syncs them on GPUs only, so CPU ranks warn that theirs are
    per-rank statistics (the gathered losses are otherwise the one-process ones)."""
    if not distributed.is_distributed():
        return
    if model.logit_scale.device.type == "cuda":
        torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)   # replaces the BatchNorm children in place
    elif distributed.is_main():
        warnings.warn("groupvit: BatchNorm statistics are per process on CPU (SyncBatchNorm needs GPUs); "
                      "a multi-process CPU fine-tuning is not the one-process one")


@SEGMENTERS.register_module("groupvit")
class GroupViTSegmenter(Segmenter):
    """GroupViT with a dummy query; cfg keys: input_size, finetune, dummy_query, mask_rule, backbone."""

    EVAL_ONLY_KEYS = ("mask_rule",)   # the rules share one fine-tuned model

    def __init__(self, cfg: dict, env: RunEnv):
        super().__init__(cfg, env)
        self.backbone_cfg = dict(cfg.get("backbone") or {})
        self.model, self.tokenizer = build_groupvit(self.backbone_cfg, env)
        self.model.to(env.device).eval()
        model_size = self.model.config.vision_config.image_size
        if self.input_size != model_size:
            raise ConfigError(f"method.input_size={self.input_size} but the GroupViT checkpoint takes "
                              f"{model_size}x{model_size} images; set method.input_size={model_size}")
        self.dummy_query = str(cfg.get("dummy_query", DEFAULT_DUMMY_QUERY))
        self.mask_rule = cfg.get("mask_rule", "official")
        if "hard_assignment" in cfg or self.mask_rule not in MASK_RULES:
            raise ConfigError(f"method.mask_rule={self.mask_rule!r}: expected one of {', '.join(MASK_RULES)} "
                              "(method.hard_assignment is gone: use mask_rule='hard')")

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"groupvit": self.model}

    def fit(self, train: RefDataset, train_cfg: dict, seed: int, ctx: FitContext) -> dict:
        torch.manual_seed(seed)
        sync_batchnorm_across_ranks(self.model)
        loss = GroupViTLoss(self.model, self.tokenizer, self.backbone_cfg,
                            phrases=int(train_value(train_cfg, "phrases")), seed=seed)
        params = [p for p in self.model.parameters() if p.requires_grad]
        plan = plan_epochs(train_cfg, len(train))
        recipe = fine_tune_recipe(train_cfg, [{"params": params, "lr": base_lr(train_cfg)}], plan.total_steps)
        log = fit_epochs("groupvit", loss, recipe, train, plan, seed, self.input_size, ctx)
        self.model.eval()
        return log

    @torch.no_grad()
    def group_similarities(self, images: torch.Tensor, texts: list[str]) -> dict:
        """What `predict` decides from: group embeddings, text embeddings, assignment, grid."""
        device = self.model.logit_scale.device
        pixels = normalise_pixels(images.to(device), self.backbone_cfg)
        _, group_x, assignment, grid = encode_images(self.model, pixels, with_groups=True)
        tokens = {k: v.to(device) for k, v in self.tokenizer(list(texts) + [self.dummy_query]).items()}
        text_x = encode_texts(self.model, tokens)                      # [B + 1, D]
        batch = len(texts)
        return {"group_x": group_x, "query_x": text_x[:batch], "dummy_x": text_x[batch:].expand(batch, -1),
                "assignment": assignment, "grid": grid,
                "scale": self.model.logit_scale.exp().clamp(max=100)}

    @torch.no_grad()
    def predict(self, images: torch.Tensor, texts: list[str],
                samples: Optional[list[RefSample]] = None):
        """Scores of the referring query against the dummy.

        "official": B maps [H_i, W_i] in {0, 1} at each sample's original size (the input size
        S x S when `samples` is None); "soft" / "hard": [B, h, w] on the patch grid.
        """
        parts = self.group_similarities(images, texts)
        if self.mask_rule == "official":
            wins = query_wins(parts["group_x"], parts["query_x"], parts["dummy_x"])       # [B, G]
            sizes = ([(s.height, s.width) for s in samples] if samples is not None
                     else [tuple(images.shape[-2:])] * len(texts))
            return [m.cpu() for m in official_masks(parts["assignment"], parts["grid"], wins, sizes)]
        scores = referring_scores(parts["group_x"], parts["query_x"], parts["dummy_x"], parts["assignment"],
                                  parts["scale"], hard=self.mask_rule == "hard")          # [B, N]
        h, w = parts["grid"]
        return scores.view(len(texts), h, w).cpu()                                      # [B, h, w]
