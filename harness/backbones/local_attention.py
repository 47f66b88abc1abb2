"""Local attention for the synthref stand-ins' vision transformers.

A stand-in trained with a phrase-to-patch (or label-to-patch) loss pooled over patches can meet
that loss with patches that all carry the whole image, if every patch may attend to every other.
Confining a patch's attention to its neighbourhood makes a patch token describe what is near it,
as a web-scale backbone's dense features do (docs/synthref_history.md, 2026-12-02).

    local_attention_mask(tokens, radius, prefix=1) -> additive mask [L, L]
    attach_local_attention(blocks, radius, prefix=1, batch_first=True)

Prefix tokens (a class token) attend to every token; a patch attends only to the patches within
`radius` grid steps (Chebyshev distance) and never to a prefix token, so no block mixes a patch
with the whole image: a patch token's receptive field grows by 2·radius + 1 patches per block.
"""

from __future__ import annotations

import math

import torch

from harness.errors import ConfigError


def check_radius(radius, key: str) -> int | None:
    """`radius` as an int ≥ 0, or None; anything else is a ConfigError naming `key`."""
    if radius is None:
        return None
    if isinstance(radius, bool) or not isinstance(radius, int) or radius < 0:
        raise ConfigError(f"{key}: expected an integer ≥ 0 or None, got {radius!r}")
    return radius


def local_attention_mask(tokens: int, radius: int, prefix: int = 1) -> torch.Tensor:
    """Additive attention mask [L, L] (0 allowed, −inf not) for `prefix` tokens then a square grid."""
    side = math.isqrt(tokens - prefix)
    if side * side != tokens - prefix:
        raise ConfigError(f"local attention: {tokens - prefix} patches are not a square grid")
    index = torch.arange(side * side)
    rows, cols = index // side, index % side
    near = torch.maximum((rows[:, None] - rows).abs(), (cols[:, None] - cols).abs()) <= radius  # [N, N]
    allowed = torch.ones(tokens, tokens, dtype=torch.bool)
    allowed[prefix:, :prefix] = False
    allowed[prefix:, prefix:] = near
    return torch.zeros(tokens, tokens).masked_fill(~allowed, -math.inf)


def attach_local_attention(blocks, radius: int, prefix: int = 1, batch_first: bool = True) -> None:
    """Every block in `blocks` attends under `local_attention_mask`: a forward pre-hook passes it as
    the block's `attn_mask` when the caller gives none, so the model's own forward and any code that
    calls the blocks one by one (MaskCLIP's dense path) get it. Blocks must take `attn_mask=`."""
    masks: dict[tuple, torch.Tensor] = {}

    def with_mask(block, args, kwargs):
        if kwargs.get("attn_mask") is not None:
            return None
        x = args[0]
        key = (x.shape[1 if batch_first else 0], x.device, x.dtype)   # [B, L, W] or [L, B, W]
        if key not in masks:   # built once per token count, on the tokens' device and in their dtype
            masks[key] = local_attention_mask(key[0], radius, prefix).to(x.device, x.dtype)
        return args, {**kwargs, "attn_mask": masks[key]}

    for block in blocks:
        block.register_forward_pre_hook(with_mask, with_kwargs=True)
