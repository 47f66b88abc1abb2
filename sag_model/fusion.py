"""Psi, the modality fusion module (spec A.4): a text embedding queries one image's slots.

One pre-LN transformer layer with a single query: h = e_t + CrossAttn(LN(e_t), LN(Z_i)),
h = h + FF(LN(h)), c_{i,t} = h / ||h||. `text_residual` scales the e_t of the first residual
(1.0, the release; issue 24's lever measures 0.0: h = CrossAttn(...), so c_{i,t} is made of
image i's slots alone and the text only chooses among them). With `all_pairs` every text meets
every image of the batch (the C3 loss needs the B x B grid); otherwise text b meets image b only (inference).
"""

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn

from sag_model.attention import FeedForward, MultiHeadAttention


class ModalityFusion(nn.Module):
    def __init__(self, dim: int = 512, heads: int = 4, dim_head: int = 256, ff_mult: int = 4,
                 dropout: float = 0.1, text_residual: float = 1.0):
        super().__init__()
        self.text_residual = float(text_residual)
        self.norm_query, self.norm_slots, self.norm_ff = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = MultiHeadAttention(dim, dim, heads, dim_head, dropout, softmax_over="keys")
        self.ff = FeedForward(dim, ff_mult, dropout=0.0)

    def forward(self, text: torch.Tensor, slots: torch.Tensor, all_pairs: bool = True):
        """text e [B_t, D], slots Z [B_i, K, D].

        Returns (c, A_fuse): all_pairs -> c [B_i, B_t, D], A_fuse [B_i, B_t, K];
        otherwise (B_t == B_i) -> c [B, D], A_fuse [B, K]. A_fuse is head-averaged and sums to 1.
        """
        if all_pairs:
            queries = repeat(text, "t d -> i t d", i=slots.shape[0])               # [B_i, B_t, D]
        else:
            queries = rearrange(text, "b d -> b 1 d")                               # [B, 1, D]
        # Each (i, t) query attends only to image i's slots; queries never attend to each other,
        # so one attention call with B_t queries per image is B_i x B_t independent fusions.
        update, attn = self.attn(self.norm_query(queries), self.norm_slots(slots))  # attn [B_i, h, Q, K]
        fused = self.text_residual * queries + update            # x 1.0 is exact: the release's floats
        fused = F.normalize(fused + self.ff(self.norm_ff(fused)), dim=-1)
        attn = attn.mean(dim=1)                                                     # [B_i, Q, K]
        if all_pairs:
            return fused, attn
        return fused[:, 0], attn[:, 0]
