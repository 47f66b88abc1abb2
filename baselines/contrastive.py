"""CLIP's symmetric image–text contrastive loss (InfoNCE), with false negatives masked.

Batches of referring expressions hold several expressions of the same image, so the "negative"
image of a pair is often the positive image itself; and two images may share an expression
string ("the red circle"). Both would be false negatives: they are removed from the softmax
denominators instead of being pushed apart.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from harness import distributed
def false_negative_mask(image_ids: Sequence, texts: Optional[Sequence[str]] = None) -> torch.Tensor:
    """bool [B, B]: True where pair (i, j), i ≠ j, shares the image (or the text string)."""
    ids = list(image_ids)
    same = torch.tensor([[a == b for b in ids] for a in ids], dtype=torch.bool)  # [B, B]
    if texts is not None:
        same |= torch.tensor([[a == b for b in texts] for a in texts], dtype=torch.bool)
    same.fill_diagonal_(False)
    return same


def clip_contrastive_loss(image_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale: torch.Tensor,
                          image_ids: Optional[Sequence] = None,
                          texts: Optional[Sequence[str]] = None) -> torch.Tensor:
    """Mean of image→text and text→image cross-entropy over a batch of matched pairs.

    image_emb, text_emb: [B, D] (normalised here); logit_scale: the learned log-temperature
    (CLIP's `logit_scale`, exponentiated here and clamped at 100 as CLIP does).
    Pair i is (image_emb[i], text_emb[i]); pairs flagged by `false_negative_mask` are excluded.
    Under DDP the negatives are every rank's pairs (harness.distributed's recipe): each rank
    returns its share of the loss at the global batch, so the averaged update is the one-process one.
    """
    image_emb = distributed.gather_with_grad(F.normalize(image_emb, dim=-1))   # [B_all, D]
    rows = distributed.local_rows(text_emb.shape[0])                          # this rank's pairs
    text_emb = distributed.gather_with_grad(F.normalize(text_emb, dim=-1))     # [B_all, D]
    scale = logit_scale.exp().clamp(max=100.0)
    logits = scale * image_emb @ text_emb.t()  # [B_all, B_all] image i vs text j
    if image_ids is not None:
        all_ids, _ = distributed.gather_list(image_ids)
        all_texts = distributed.gather_list(texts)[0] if texts is not None else None
        mask = false_negative_mask(all_ids, all_texts).to(logits.device)
        logits = logits.masked_fill(mask, float("-inf"))  # symmetric, so valid for logits.t() too
    target = torch.arange(logits.shape[0], device=logits.device)[rows]
    per_image = F.cross_entropy(logits[rows], target, reduction="none")       # this rank's images
    per_text = F.cross_entropy(logits.t()[rows], target, reduction="none")    # this rank's texts
    n_all = logits.shape[0]
    return 0.5 * (distributed.rank_share(per_image, n_all) + distributed.rank_share(per_text, n_all))
