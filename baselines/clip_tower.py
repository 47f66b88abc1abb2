"""Running an open_clip ViT image tower at any input size, stopping before its last block.

MaskCLIP needs the tokens that enter the last block (its value path replaces that block) and,
for fine-tuning, the ordinary pooled image embedding. Both run here with the position
embeddings resized (bicubic, as open_clip does when loading a checkpoint at another size) to
the input's patch grid, so `method.input_size` can differ from the checkpoint's 224.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange

from harness.errors import CheckpointError


def check_vit_clip(model) -> None:
    """Raise unless `model` is an open_clip CLIP whose image tower is a class-token ViT."""
    visual = getattr(model, "visual", None)
    blocks = getattr(getattr(visual, "transformer", None), "resblocks", None)
    ok = (blocks is not None and isinstance(getattr(blocks[-1], "attn", None), torch.nn.MultiheadAttention)
          and getattr(visual.transformer, "batch_first", False)
          and getattr(visual, "attn_pool", None) is None and getattr(visual, "pool_type", None) == "tok"
          and not getattr(visual, "final_ln_after_pool", False) and visual.proj is not None)
    if not ok:
        raise CheckpointError(f"MaskCLIP needs an open_clip ViT image tower with a class token and "
                              f"nn.MultiheadAttention blocks; got {type(visual).__name__}")


def patch_grid(visual, image_hw) -> tuple[int, int]:
    """(h, w) patches for an input of size image_hw."""
    ph, pw = visual.patch_size
    return int(image_hw[0]) // ph, int(image_hw[1]) // pw


def position_embedding(visual, grid: tuple[int, int]) -> torch.Tensor:
    """[1+h*w, W]: the class position plus the patch positions resized to `grid` if needed."""
    pos = visual.positional_embedding
    cls_pos, patch_pos = pos[:1], pos[1:]
    old = tuple(visual.grid_size)
    if old == tuple(grid):
        return pos
    patch_pos = rearrange(patch_pos, "(h w) c -> 1 c h w", h=old[0], w=old[1])
    patch_pos = F.interpolate(patch_pos, size=grid, mode="bicubic", align_corners=False, antialias=True)
    return torch.cat([cls_pos, rearrange(patch_pos, "1 c h w -> (h w) c")], dim=0)  # [1+h*w, W]


def tokens_before_last_block(visual, pixels: torch.Tensor) -> torch.Tensor:
    """Tokens [B, 1+N, W] (class token first) entering the tower's last block."""
    grid = patch_grid(visual, pixels.shape[-2:])
    x = rearrange(visual.conv1(pixels), "b c h w -> b (h w) c")  # [B, N, W]
    cls = visual.class_embedding.to(x.dtype).view(1, 1, -1).expand(x.shape[0], -1, -1)
    x = torch.cat([cls, x], dim=1) + position_embedding(visual, grid).to(x.dtype)  # [B, 1+N, W]
    x = visual.patch_dropout(x)
    x = visual.ln_pre(x)
    for block in visual.transformer.resblocks[:-1]:
        x = block(x)
    return x


def global_image_embedding(visual, pixels: torch.Tensor) -> torch.Tensor:
    """CLIP's pooled image embedding [B, D] (class token through every block, ln_post, proj)."""
    x = visual.transformer.resblocks[-1](tokens_before_last_block(visual, pixels))  # [B, 1+N, W]
    return visual.ln_post(x[:, 0]) @ visual.proj  # [B, D]
