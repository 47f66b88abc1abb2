"""Phi, the entity discovery module (spec A.3): slots gather patches by competing for them.

Patch features are projected to D and given a 2-D sine position; K slots are initialised
(`EntitySlots`: K_g learnable Gaussians x K_s samples, Gaussian-major) and refined by T
weight-tied iterations of the aggregation block (cross-attention with softmax over the SLOTS per
patch, then l1 over patches) and the interaction block (self-attention among the slots drawn from
the same Gaussian). The output head is Linear + LayerNorm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
from einops import rearrange
from torch import nn

from sag_model.attention import FeedForward, MultiHeadAttention
from sag_model.position import sine_position_encoding

SLOT_TYPES = ("entity", "random", "query")
AGGREGATIONS = ("slot", "transformer")
# Which of the T weight-tied iterations training differentiates through. "all" is the release.
# "last" is the fixed-point approximation of implicit slot attention (Chang et al., NeurIPS 2022):
# the slots entering the last iteration are detached, so the backward pass sees one iteration, not a
# product of T Jacobians; the initial slots keep a gradient through the identity (straight through,
# as BO-QSA does for learned initial slots), so SaG's Gaussians still learn. Forward values are
# identical either way, so inference does not change.
SLOT_GRADS = ("all", "last")


class EntitySlots(nn.Module):
    """Initial slots S0 [B, K, D], K = groups x samples, slot index = g * samples + r.

    entity: K_g learnable Gaussians (mu, logvar), each sampled K_s times by reparameterisation.
    random: one learnable Gaussian shared by every slot (slot attention's convention).
    query:  K learned fixed vectors, no sampling.
    """

    def __init__(self, dim: int, groups: int, samples: int, slot_type: str = "entity",
                 var_scaling: float = 1.0):
        super().__init__()
        if slot_type not in SLOT_TYPES:
            raise ValueError(f"slot type must be one of {SLOT_TYPES}, got {slot_type!r}")
        self.dim, self.groups, self.samples, self.slot_type = dim, groups, samples, slot_type
        n_means = {"entity": groups, "random": 1, "query": groups * samples}[slot_type]
        self.mu = nn.Parameter(torch.empty(1, n_means, dim))
        nn.init.xavier_uniform_(self.mu)
        if slot_type != "query":
            # log-variance offset log(1/(D * var_scaling)) (the release's --agg_var_scaling, 1 by
            # default): with 1 the initial sigma has an l2 norm of about 1 (spec A.3).
            self.logvar = nn.Parameter(torch.empty(1, n_means, dim))
            nn.init.xavier_uniform_(self.logvar)
            with torch.no_grad():
                self.logvar.add_(math.log(1.0 / (dim * var_scaling)))

    @property
    def num_slots(self) -> int:
        return self.groups * self.samples

    @property
    def group_size(self) -> int:
        """How many consecutive slots share one Gaussian, i.e. see each other in the interaction block.

        Random slots all come from one Gaussian, so they all interact; query slots keep the
        entity layout so that the only difference from entity slots is the absent sampling.
        """
        return self.num_slots if self.slot_type == "random" else self.samples

    def gaussian_of(self, slot: int) -> int:
        return 0 if self.slot_type == "random" else slot // self.samples

    def means(self) -> torch.Tensor:
        """The mean of every slot [1, K, D] in slot order."""
        if self.slot_type == "entity":
            return self.mu.repeat_interleave(self.samples, dim=1)
        if self.slot_type == "random":
            return self.mu.expand(1, self.num_slots, self.dim)
        return self.mu

    def forward(self, batch: int, use_mean: bool = False,
                generator: Optional[torch.Generator] = None) -> torch.Tensor:
        mean = self.means().expand(batch, -1, -1)                                  # [B, K, D]
        if self.slot_type == "query" or use_mean:
            return mean
        std = torch.exp(0.5 * self.logvar)
        if self.slot_type == "entity":
            std = std.repeat_interleave(self.samples, dim=1)
        eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean + std * eps


class AggregationBlock(nn.Module):
    """S <- S + CrossAttn(LN(S), LN(X)); S <- S + FF(LN(S)). Returns S and A_slot [B, h, K, N].
    LN(X)'s keys and values come from `keys_values(X)`, once for the T tied iterations."""

    def __init__(self, dim, heads, dim_head, ff_mult, dropout, aggregation="slot"):
        super().__init__()
        if aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {aggregation!r}")
        softmax_over = "queries" if aggregation == "slot" else "keys"
        self.norm_slots, self.norm_context, self.norm_ff = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = MultiHeadAttention(dim, dim, heads, dim_head, dropout, softmax_over=softmax_over)
        self.ff = FeedForward(dim, ff_mult, dropout)

    def keys_values(self, context):
        """The normalised context's keys and values: the same at every weight-tied iteration,
        so `EntityDiscovery` computes them once per forward pass."""
        return self.attn.keys_values(self.norm_context(context))

    def forward(self, slots, keys_values):
        """Slots [B, K, D] attend to `keys_values` = `self.keys_values(context)`."""
        update, attn = self.attn.attend(self.norm_slots(slots), keys_values)
        slots = slots + update
        return slots + self.ff(self.norm_ff(slots)), attn


class InteractionBlock(nn.Module):
    """Self-attention + FF among each group of `group_size` consecutive slots only."""

    def __init__(self, dim, heads, dim_head, ff_mult, dropout):
        super().__init__()
        self.norm_attn, self.norm_ff = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = MultiHeadAttention(dim, dim, heads, dim_head, dropout, softmax_over="keys")
        self.ff = FeedForward(dim, ff_mult, dropout)

    def forward(self, slots: torch.Tensor, group_size: int) -> torch.Tensor:
        batch = slots.shape[0]
        grouped = rearrange(slots, "b (g s) d -> (b g) s d", s=group_size)        # [B*K_g, K_s, D]
        normed = self.norm_attn(grouped)
        grouped = grouped + self.attn(normed, normed)[0]
        grouped = grouped + self.ff(self.norm_ff(grouped))
        return rearrange(grouped, "(b g) s d -> b (g s) d", b=batch)               # [B, K, D]


@dataclass
class DiscoveryOutput:
    slots: torch.Tensor       # Z [B, K, D] after the output head
    attn_slot: torch.Tensor   # A_slot of the last iteration, head-averaged [B, K, N]


class EntityDiscovery(nn.Module):
    """Phi: patch features [B, N, C] on an (h, w) grid -> slot embeddings Z and A_slot."""

    def __init__(self, in_dim: int, dim: int = 512, groups: int = 12, samples: int = 3, iterations: int = 6,
                 slot_type: str = "entity", interaction: bool = True, aggregation: str = "slot",
                 cross_heads: int = 4, cross_dim_head: int = 256, self_heads: int = 4,
                 self_dim_head: int = 128, ff_mult: int = 4, dropout: float = 0.1,
                 var_scaling: float = 1.0, slot_grad: str = "all"):
        super().__init__()
        if slot_grad not in SLOT_GRADS:
            raise ValueError(f"slot_grad must be one of {SLOT_GRADS}, got {slot_grad!r}")
        self.dim, self.iterations, self.slot_grad = dim, iterations, slot_grad
        self.input_proj = nn.Linear(in_dim, dim)
        self.slots = EntitySlots(dim, groups, samples, slot_type, var_scaling)
        self.aggregate = AggregationBlock(dim, cross_heads, cross_dim_head, ff_mult, dropout, aggregation)
        self.interact = (InteractionBlock(dim, self_heads, self_dim_head, ff_mult, dropout)
                         if interaction else None)
        self.head = nn.Linear(dim, dim)
        self.head_norm = nn.LayerNorm(dim)
        # Called as hook(t, slots) after each iteration t; for instruments that read the slots
        # (benchmarks/bench_sag_dynamics.py), never for changing them. None: nothing is called.
        self.iteration_hook = None

    def context(self, features: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """Projected features plus the sine position [B, N, D] (the position enters keys and values)."""
        pos = sine_position_encoding(grid[0], grid[1], self.dim).to(features)      # [N, D]
        return self.input_proj(features) + pos

    def forward(self, features: torch.Tensor, grid: tuple[int, int], use_mean: bool = False,
                generator: Optional[torch.Generator] = None) -> DiscoveryOutput:
        context = self.context(features, grid)                                     # [B, N, D]
        initial = self.slots(features.shape[0], use_mean=use_mean, generator=generator)  # [B, K, D]
        keys_values = self.aggregate.keys_values(context)                          # once for all T
        slots, attn = initial, None
        for t in range(self.iterations):
            if self.slot_grad == "last" and t == self.iterations - 1 and t > 0:
                slots = slots.detach() + (initial - initial.detach())             # same values
            slots, attn = self.aggregate(slots, keys_values)
            if self.interact is not None:
                slots = self.interact(slots, self.slots.group_size)
            if self.iteration_hook is not None:
                self.iteration_hook(t, slots)
        return DiscoveryOutput(self.head_norm(self.head(slots)), attn.mean(dim=1))
