"""MaskCLIP (Zhou, Loy, Dai, ECCV 2022) applied to referring segmentation as the SaG authors did.

Dense features come from CLIP's image tower with the last block's query–key attention removed,
as the official code does: every patch token x goes v = out_proj(W_v · LN_1(x) + b_v), then the
block's residual and MLP, v = x + v, v = v + MLP(LN_2(v)), then `ln_post` and `proj`
(`dense_path="value_only"` drops the residual and the MLP, as some reimplementations do). The
score map is the cosine similarity between each patch embedding and the expression's text
embedding, averaged over prompt templates (by default the official 85: CLIP's 80 ImageNet
templates and 5 scene templates). Zero-shot when `finetune=False`; otherwise fine-tuned with CLIP's own
symmetric contrastive loss on (image, expression) pairs (SaG supplementary §B: batch 32, lr 1e-5).
MaskCLIP+ (pseudo-label self-training) is not part of the protocol.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from einops import rearrange
from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

from baselines.clip_tower import check_vit_clip, global_image_embedding, patch_grid, tokens_before_last_block
from baselines.contrastive import clip_contrastive_loss
from harness.backbones.clip import build_clip, clip_normalise
from harness.data.types import RefDataset, RefSample
from harness.errors import ConfigError
from harness.run.fit_loop import FitContext, base_lr, fine_tune_recipe, fit_epochs, plan_epochs
from harness.registry import SEGMENTERS
from harness.segmenter import RunEnv, Segmenter

# The official MaskCLIP prompt ensemble: CLIP's 80 ImageNet templates plus 5 scene templates.
SCENE_TEMPLATES = ("there is a {} in the scene.", "there is the {} in the scene.", "this is a {} in the scene.",
                   "this is the {} in the scene.", "this is one {} in the scene.")
TEMPLATE_SETS = {
    "maskclip85": tuple(t("{}") for t in OPENAI_IMAGENET_TEMPLATES) + SCENE_TEMPLATES,
    "bare": ("{}",),
}


def value_path(block: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """The last block's attention replaced by each token's own value: out_proj(W_v · LN_1(x) + b_v).

    [B, L, W] → [B, L, W]; `ls_1` (layer scale) is the identity in OpenAI CLIP.
    """
    attn = block.attn
    width = attn.embed_dim
    w_v = attn.in_proj_weight[2 * width:]  # q, k, v are stacked: v is the last third
    b_v = attn.in_proj_bias[2 * width:] if attn.in_proj_bias is not None else None
    values = F.linear(block.ln_1(tokens), w_v, b_v)  # [B, L, W]
    return block.ls_1(attn.out_proj(values))


def official_last_block(block: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """The official MaskCLIP last block (chongzhou96/MaskCLIP, mmseg/models/backbones/vit.py):
    the value path, then the block's residual and its MLP. [B, L, W] → [B, L, W]."""
    v = tokens + value_path(block, tokens)
    return v + block.ls_2(block.mlp(block.ln_2(v)))


DENSE_PATHS = {"official": official_last_block, "value_only": value_path}


def dense_patch_embeddings(visual: torch.nn.Module, pixels: torch.Tensor,
                           path: str = "official") -> torch.Tensor:
    """MaskCLIP patch embeddings [B, N, D] for normalised pixels [B, 3, S, S] (class token dropped)."""
    tokens = tokens_before_last_block(visual, pixels)  # [B, 1+N, W]
    dense = DENSE_PATHS[path](visual.transformer.resblocks[-1], tokens[:, 1:])  # [B, N, W]
    return visual.ln_post(dense) @ visual.proj  # [B, N, D]


def check_templates(templates) -> list[str]:
    """A named set of TEMPLATE_SETS, or an explicit list of strings with one '{}' each."""
    if isinstance(templates, str):
        if templates not in TEMPLATE_SETS:
            raise ConfigError(f"method.templates={templates!r}: expected one of {sorted(TEMPLATE_SETS)} "
                              "or a list of strings with one '{}' each")
        return list(TEMPLATE_SETS[templates])
    templates = [str(t) for t in templates]
    if not templates or any(t.count("{}") != 1 for t in templates):
        raise ConfigError(f"method.templates={templates!r}: expected a non-empty list of strings, "
                          "each with exactly one '{}' for the expression")
    return templates


class ContrastiveFinetune(torch.nn.Module):
    """CLIP's loss on (image, expression) pairs, as a module so DDP can wrap it."""

    def __init__(self, segmenter: "MaskCLIP"):
        super().__init__()
        self.segmenter = segmenter
        self.clip = segmenter.clip  # registered here so DDP sees the parameters

    def forward(self, images, texts, image_ids):
        seg = self.segmenter
        image_emb = global_image_embedding(self.clip.visual, seg.normalise(images))
        text_emb = seg.encode_expressions(texts)  # [B, D]
        return clip_contrastive_loss(image_emb, text_emb, self.clip.logit_scale, image_ids, texts)


@SEGMENTERS.register_module("maskclip")
class MaskCLIP(Segmenter):
    """cfg keys: input_size, finetune, templates (a TEMPLATE_SETS name or a list), dense_path
    ("official" | "value_only"), clip (build_clip's: checkpoint, name, standin)."""

    def __init__(self, cfg: dict, env: RunEnv):
        super().__init__(cfg, env)
        self.templates = check_templates(cfg.get("templates", "maskclip85"))
        self.dense_path = str(cfg.get("dense_path", "official"))
        if self.dense_path not in DENSE_PATHS:
            raise ConfigError(f"method.dense_path={self.dense_path!r}: expected one of {sorted(DENSE_PATHS)}")
        self.clip, self.tokenizer = build_clip(dict(cfg.get("clip") or {}), env)
        check_vit_clip(self.clip)
        self.clip.to(env.device).eval()

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"clip": self.clip}

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] → the tower's input normalisation (the checkpoint's mean/std)."""
        return clip_normalise(self.clip, images.to(self.env.device))

    def encode_expressions(self, texts: list[str]) -> torch.Tensor:
        """ℓ2-normalised text embeddings [B, D], averaged over the prompt templates."""
        prompts = [t.format(text) for text in texts for t in self.templates]
        tokens = self.tokenizer(prompts).to(self.env.device)  # [B*K, L]
        emb = F.normalize(self.clip.encode_text(tokens), dim=-1)  # [B*K, D]
        emb = rearrange(emb, "(b k) d -> b k d", k=len(self.templates)).mean(dim=1)  # [B, D]
        return F.normalize(emb, dim=-1)

    def fit(self, train: RefDataset, train_cfg: dict, seed: int, ctx: FitContext) -> dict:
        if not self.finetune:
            return {"finetune": False}
        params = [p for p in self.clip.parameters() if p.requires_grad]
        plan = plan_epochs(train_cfg, len(train))
        recipe = fine_tune_recipe(train_cfg, [{"params": params, "lr": base_lr(train_cfg)}], plan.total_steps)
        return fit_epochs("maskclip", ContrastiveFinetune(self), recipe, train, plan, seed, self.input_size, ctx)

    @torch.no_grad()
    def predict(self, images: torch.Tensor, texts: list[str],
                samples: Optional[list[RefSample]] = None) -> torch.Tensor:
        """(cos + 1) / 2 between each patch and the expression, on the patch grid: [B, h, w]."""
        self.clip.eval()
        pixels = self.normalise(images)
        patches = F.normalize(dense_patch_embeddings(self.clip.visual, pixels, self.dense_path), dim=-1)  # [B, N, D]
        text = self.encode_expressions(texts)  # [B, D]
        cos = torch.einsum("bnd,bd->bn", patches, text)  # [B, N]
        h, w = patch_grid(self.clip.visual, images.shape[-2:])
        return rearrange((cos + 1.0) / 2.0, "b (h w) -> b h w", h=h, w=w).clamp(0.0, 1.0).cpu()

