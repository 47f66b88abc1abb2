"""GroupViT (Xu et al., CVPR 2022) as a referring segmenter, by the SaG authors' protocol (supp. §B).

The image goes in with two texts: the referring expression and a dummy query ("a photo of a
nothing", config `dummy_query`) standing in for a background class. Each final group goes to the
text it is more similar to; the pixels of the groups that went to the expression are the mask.

Score map (so that the runner's τ = 0.5 reproduces "assigned to the query"): for each group, the
softmax over the two texts of its scaled cosine similarities gives P(query | group) — above 0.5
exactly when the query wins; each patch's score is that probability averaged under its soft
patch→group assignment (the chained grouping stages). `hard_assignment=True` keeps GroupViT's
hard variant: each patch takes its argmax group and each group its winning text, a {0, 1} map.

Fine-tuning (`finetune=True`) trains the whole model with GroupViT's own loss (image–text
contrastive + multi-label contrastive over phrases of the expression) on the train split's
(image, expression) pairs — masks are never read. `finetune=False` is the zero-shot variant.
"""

from __future__ import annotations

import random
from contextlib import contextmanager
from typing import Optional

import torch
import torch.nn.functional as F

from harness.backbones.groupvit import build_groupvit, encode_images, encode_texts, normalise_pixels
from harness.backbones.groupvit_pretrain import loss_on_batch
from harness.data.types import RefDataset, RefSample
from harness.errors import ConfigError
from harness.registry import SEGMENTERS
from harness.segmenter import RunEnv, Segmenter

DEFAULT_DUMMY_QUERY = "a photo of a nothing"


def referring_scores(group_x: torch.Tensor, query_x: torch.Tensor, dummy_x: torch.Tensor,
                     assignment: torch.Tensor, scale: torch.Tensor, hard: bool = False) -> torch.Tensor:
    """Per-patch score of the referring query against the dummy query.

    group_x [B, G, D] group embeddings, query_x / dummy_x [B, D] text embeddings, assignment
    [B, N, G] soft patch→group weights (rows sum to 1), scale the similarity temperature.
    Returns [B, N] in [0, 1]; > 0.5 where the query beats the dummy for the patch's groups.
    """
    groups = F.normalize(group_x, dim=-1)
    texts = F.normalize(torch.stack([query_x, dummy_x], dim=1), dim=-1)     # [B, 2, D]
    sims = groups @ texts.transpose(1, 2) * scale                           # [B, G, 2]
    if hard:
        group_to_query = (sims[..., 0] > sims[..., 1]).to(assignment.dtype)  # [B, G]
        patch_group = F.one_hot(assignment.argmax(dim=-1), assignment.shape[-1]).to(assignment.dtype)
        return (patch_group @ group_to_query.unsqueeze(-1)).squeeze(-1)     # [B, N, G] @ [B, G, 1] -> [B, N]
    p_query = sims.softmax(dim=-1)[..., 0]                                  # [B, G]
    return (assignment @ p_query.unsqueeze(-1)).squeeze(-1).clamp(0, 1)     # [B, N]


class GroupViTLoss(torch.nn.Module):
    """`forward(images in [0, 1], texts, image_ids) -> loss`: what the shared fit loop trains."""

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


@SEGMENTERS.register_module("groupvit")
class GroupViTSegmenter(Segmenter):
    """GroupViT with a dummy query; cfg keys: input_size, finetune, dummy_query, hard_assignment, backbone."""

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
        self.hard = bool(cfg.get("hard_assignment", False))

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"groupvit": self.model}

    def fit(self, train: RefDataset, train_cfg: dict, seed: int, progress: bool = True) -> dict:
        from baselines.fit_loop import run_training

        torch.manual_seed(seed)
        loss = GroupViTLoss(self.model, self.tokenizer, self.backbone_cfg,
                            phrases=int(train_cfg.get("phrases", 2)), seed=seed)
        params = [p for p in self.model.parameters() if p.requires_grad]
        groups = [{"params": params, "lr": float(train_cfg.get("lr", 1e-5))}]
        log = run_training("groupvit", loss, groups, train, train_cfg, seed, self.input_size, progress)
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
                samples: Optional[list[RefSample]] = None) -> torch.Tensor:
        """[B, h, w] in [0, 1] on the patch grid: each patch's assignment to the referring query."""
        parts = self.group_similarities(images, texts)
        scores = referring_scores(parts["group_x"], parts["query_x"], parts["dummy_x"],
                                  parts["assignment"], parts["scale"], hard=self.hard)   # [B, N]
        h, w = parts["grid"]
        return scores.view(len(texts), h, w).cpu()                                      # [B, h, w]
