"""The reconstruction decoder f_dec (spec A.5, supplementary C): a spatial broadcast MLP decoder.

Every slot is broadcast to the N patch positions, a learned 2-D position embedding is added, a
4-layer ReLU MLP maps each (slot, position) to C feature channels plus one alpha logit; alpha is
softmaxed over the slots and weights the per-slot features into one reconstruction [B, N, C].
"""

import torch
import torch.nn.functional as F
from torch import nn

from sag_model.position import LearnedPosition2d


class SpatialBroadcastDecoder(nn.Module):
    def __init__(self, slot_dim: int, out_dim: int, hidden: int = 512, layers: int = 4, max_grid: int = 50):
        super().__init__()
        self.out_dim = out_dim
        self.position = LearnedPosition2d(slot_dim, max_grid)
        dims = [slot_dim] + [hidden] * (layers - 1) + [out_dim + 1]
        blocks = []
        for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:])):
            blocks.append(nn.Linear(d_in, d_out))
            if i < layers - 1:
                blocks.append(nn.ReLU())
        self.mlp = nn.Sequential(*blocks)

    def forward(self, slots: torch.Tensor, grid: tuple[int, int]):
        """slots [B, K, D] -> (reconstruction [B, N, C], alpha [B, K, N])."""
        pos = self.position(*grid)                                                  # [N, D]
        # The first layer of MLP(slot + pos) is W·slot + b + W·pos: computed per slot and per
        # position, then broadcast, instead of on every (slot, position) row (the same function,
        # a quarter of the decoder's multiplications saved).
        first = self.mlp[0]
        hidden = first(slots)[:, :, None] + F.linear(pos, first.weight)            # [B, K, N, H]
        out = self.mlp[1:](hidden)                                                  # [B, K, N, C+1]
        features, alpha_logits = out[..., :self.out_dim], out[..., self.out_dim]
        alpha = alpha_logits.softmax(dim=1)                                         # [B, K, N] over slots
        recon = torch.einsum("bkn,bknc->bnc", alpha, features)                      # [B, N, C]
        return recon, alpha
