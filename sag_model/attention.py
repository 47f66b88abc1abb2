"""The attention and feed-forward pieces shared by the entity discovery and fusion modules."""

import torch
from einops import rearrange
from torch import nn


class FeedForward(nn.Module):
    """Linear -> GELU -> Dropout -> Linear (mult x width hidden)."""

    def __init__(self, dim: int, mult: int = 4, dropout: float = 0.0):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, dim * mult), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(dim * mult, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class MultiHeadAttention(nn.Module):
    """Multi-head attention with bias-free q/k/v and an out-projection, inputs already normalised.

    `softmax_over="keys"` is ordinary attention; `"queries"` normalises each key's column over
    the queries (slot competition) and then l1-normalises each query's row over the keys, so the
    update is a weighted mean (spec A.3 step 1). Returns the output and the softmax
    probabilities [B, heads, Q, K] (before the l1 step: that is A_slot).
    """

    def __init__(self, query_dim: int, context_dim: int, heads: int, dim_head: int, dropout: float = 0.0,
                 softmax_over: str = "keys", eps: float = 1e-7):
        super().__init__()
        if softmax_over not in ("keys", "queries"):
            raise ValueError(f"softmax_over must be 'keys' or 'queries', got {softmax_over!r}")
        inner = heads * dim_head
        self.heads, self.scale, self.softmax_over, self.eps = heads, dim_head ** -0.5, softmax_over, eps
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(context_dim, inner, bias=False)
        self.to_v = nn.Linear(context_dim, inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, query_dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor, context: torch.Tensor):
        return self.attend(x, self.keys_values(context))

    def keys_values(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(k, v) [B, h, K, d] of a context: a caller that attends to one context with the same
        weights several times (weight-tied iterations) projects it once."""
        k = rearrange(self.to_k(context), "b k (h d) -> b h k d", h=self.heads)    # [B, h, K, d]
        v = rearrange(self.to_v(context), "b k (h d) -> b h k d", h=self.heads)
        return k, v

    def attend(self, x: torch.Tensor, keys_values: tuple[torch.Tensor, torch.Tensor]):
        """The output [B, Q, query_dim] and the probabilities of queries x attending to (k, v)."""
        k, v = keys_values
        q = rearrange(self.to_q(x), "b q (h d) -> b h q d", h=self.heads)          # [B, h, Q, d]
        logits = torch.einsum("bhqd,bhkd->bhqk", q, k) * self.scale               # [B, h, Q, K]
        probs, weights = attention_weights(logits, self.softmax_over, self.eps)
        out = torch.einsum("bhqk,bhkd->bhqd", weights, v)                          # [B, h, Q, d]
        return self.to_out(rearrange(out, "b h q d -> b q (h d)")), probs


def attention_weights(logits: torch.Tensor, softmax_over: str, eps: float = 1e-7):
    """(probabilities, weights applied to the values) for logits [..., Q, K].

    keys: softmax over K, used as is. queries: softmax over Q (each key column sums to 1 over
    the queries), then each query row is divided by its sum over K (+eps).
    """
    if softmax_over == "keys":
        probs = logits.softmax(dim=-1)
        return probs, probs
    probs = logits.softmax(dim=-2)                                                 # columns sum to 1
    return probs, probs / (probs.sum(dim=-1, keepdim=True) + eps)                  # rows sum to 1
