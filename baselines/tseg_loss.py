"""TSEG's training objective as RECONSTRUCTED in specs/tseg.md §B.3 (no public TSEG code exists).

Multi-label patch assignment (MLPA) with a multi-label BCE over every expression of the batch:

- candidates: the distinct expressions of the batch; image i's positives P_i are its own
  expressions (several per image — hence multi-label), every other candidate is a negative;
- A_i[p, j] = softmax over all candidates j of S_i[p, j]  (patches compete across expressions);
- positives: y_ij = (1/N) Σ_p A_i[p, j] · 1[j = argmax_{k ∈ P_i} S_i[p, k]] — each positive
  expression is credited only on the patches it wins among the image's own expressions, so two
  expressions of one image claim different patches instead of the same salient object;
- negatives: y_ij = (1/N) Σ_p A_i[p, j];
- L = BCE(y, 1[j ∈ P_i]), averaged over images and candidates.

Under DDP (`mlpa_loss`) the batch is the global one: candidates are every rank's distinct
expressions and each distinct image is scored once, by the rank where it first appears, each rank
returning its share (harness.distributed's recipe) so the averaged update is the one-process one.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from harness import distributed
Y_EPS = 1e-6  # keeps log(y) and log(1 − y) finite when an assignment saturates


def batch_candidates(image_ids: Sequence, texts: Sequence[str]):
    """Distinct images and expressions of a batch of (image, expression) pairs.

    Returns (image_rows, candidate_texts, positives): `image_rows[u]` is the batch index of
    the u-th distinct image, `candidate_texts[t]` the t-th distinct expression, and
    `positives` bool [U, T] is True where expression t was given for image u. An expression
    string given for two images is one candidate, positive for both.
    """
    image_rows, image_index = [], {}
    for b, iid in enumerate(image_ids):
        if iid not in image_index:
            image_index[iid] = len(image_rows)
            image_rows.append(b)
    candidate_texts, text_index = [], {}
    for text in texts:
        if text not in text_index:
            text_index[text] = len(candidate_texts)
            candidate_texts.append(text)
    positives = torch.zeros(len(image_rows), len(candidate_texts), dtype=torch.bool)  # [U, T]
    for iid, text in zip(image_ids, texts):
        positives[image_index[iid], text_index[text]] = True
    return image_rows, candidate_texts, positives


def patch_text_scores(patch_emb: torch.Tensor, text_emb: torch.Tensor, temperature: float) -> torch.Tensor:
    """S [U, N, T] = <x̂_p, t̂_j> / τ for patch embeddings [U, N, D] and text embeddings [T, D]."""
    patch_emb = F.normalize(patch_emb, dim=-1)
    text_emb = F.normalize(text_emb, dim=-1)
    return torch.einsum("und,td->unt", patch_emb, text_emb) / temperature


def mlpa_image_scores(scores: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
    """Image-level scores y [U, T] in [0, 1] from patch–text scores S [U, N, T] (see module doc)."""
    assignment = scores.softmax(dim=-1)  # [U, N, T]  soft assignment of each patch over candidates
    pos = positives.to(scores.device)[:, None, :]  # [U, 1, T]
    own_scores = scores.masked_fill(~pos, float("-inf"))  # [U, N, T]  only the image's expressions
    winner = own_scores.argmax(dim=-1)  # [U, N]  the positive each patch is assigned to
    wins = F.one_hot(winner, scores.shape[-1]).bool()  # [U, N, T]
    gate = torch.where(pos, wins, torch.ones_like(wins))  # negatives keep every patch
    return (assignment * gate).mean(dim=1)  # [U, T]


def mlpa_bce_terms(scores: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
    """Multi-label BCE [U, T] between MLPA image scores and the positive sets."""
    y = mlpa_image_scores(scores, positives).clamp(Y_EPS, 1.0 - Y_EPS)  # [U, T]
    return F.binary_cross_entropy(y, positives.to(y.dtype).to(y.device), reduction="none")


def mlpa_bce_loss(scores: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
    """Multi-label BCE between MLPA image scores and the positive sets (mean over U × T)."""
    return mlpa_bce_terms(scores, positives).mean()


def mlpa_loss(patch_emb: torch.Tensor, text_emb: torch.Tensor, image_ids: Sequence, texts: Sequence[str],
              temperature: float) -> torch.Tensor:
    """The MLPA loss of a batch of (image, expression) pairs, over every rank's pairs under DDP.

    patch_emb [U, N, D] and text_emb [T, D] embed `batch_candidates(image_ids, texts)`'s images and
    candidate expressions (this rank's). Returns this rank's share of the global mean over U × T.
    """
    local_rows, local_texts, _ = batch_candidates(image_ids, texts)
    all_text_emb = distributed.gather_with_grad(text_emb)                   # [Σ T_r, D]
    all_local_texts, _ = distributed.gather_list(local_texts)
    all_ids, mine = distributed.gather_list(image_ids)
    all_rows, candidates, positives = batch_candidates(all_ids, distributed.gather_list(texts)[0])
    first = {}
    for n, text in enumerate(all_local_texts):
        first.setdefault(text, n)
    cand_emb = all_text_emb[[first[text] for text in candidates]]             # [T_all, D], one per string
    owned = [u for u, row in enumerate(all_rows) if mine.start <= row < mine.stop]   # first seen here
    patch_index = [local_rows.index(all_rows[u] - mine.start) for u in owned]
    scores = patch_text_scores(patch_emb[patch_index], cand_emb, temperature)   # [U_own, N, T_all]
    terms = mlpa_bce_terms(scores, positives[owned])                            # [U_own, T_all]
    return distributed.rank_share(terms, len(all_rows) * len(candidates))
