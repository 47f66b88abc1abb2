"""GroupViT's forward passes and training loss, shared by the fine-tuning method
(baselines/groupvit.py) and the synthref stand-in's pretraining (groupvit_pretrain.py).

Loss (Xu et al. 2022): image–text contrastive plus the multi-label contrastive loss, where each
text also yields K prompts "a photo of a {phrase}." as extra positive texts of its image.
Phrases come from the text without a POS tagger (none is installed, and nothing is downloaded):
a phrase is a maximal run of content words, cut at function words and location words, so
"the big red circle on the left" gives ["big red circle"]. Both losses share the model's one
learned temperature (GroupViT's `share_temperature` option; transformers' GroupViTModel has no
second one). Images repeated in a batch (several expressions of one image) count as positives of
each other rather than false negatives.
"""

from __future__ import annotations

import random

import torch
import torch.nn.functional as F

from harness import distributed
from harness.backbones.phrases import phrases_of

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalise_pixels(images: torch.Tensor, cfg: dict) -> torch.Tensor:
    """[B, 3, S, S] in [0, 1] -> the model's input statistics."""
    mean = torch.tensor(cfg.get("mean", IMAGENET_MEAN), dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(cfg.get("std", IMAGENET_STD), dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return (images - mean) / std


def encode_texts(model, *token_batches: dict) -> torch.Tensor:
    """Projected text embeddings [T, D] (not normalised) of one or more tokenizer outputs, in order.

    Several batches run the text tower separately (so short prompts are not padded to a long
    caption's length) and share one pass through the projection head (one BatchNorm batch).
    """
    pooled = [model.text_model(input_ids=t["input_ids"], attention_mask=t["attention_mask"]).pooler_output
              for t in token_batches]                            # each [T_i, C_text]
    return model.text_projection(torch.cat(pooled))              # [T, C_text] -> [T, D]


def encode_images(model, pixels: torch.Tensor, with_groups: bool = False):
    """Projected image embeddings [B, D]; with `with_groups` also (group embeddings [B, G, D],
    soft patch->final-group assignment [B, N, G], patch grid (h, w)).

    The assignment chains the grouping stages' soft assignments (each patch's row sums to 1), as
    GroupViT does to carry groups back to pixels.
    """
    out = model.vision_model(pixel_values=pixels, output_attentions=with_groups, return_dict=True)
    image_x = model.visual_projection(out.pooler_output)         # [B, C] -> [B, D]
    if not with_groups:
        return image_x
    groups = out.last_hidden_state                               # [B, G, C] after the final LayerNorm
    group_x = model.visual_projection(groups.flatten(0, 1)).view(groups.shape[0], groups.shape[1], -1)
    assignment = None
    for stage_attn in out.attentions:                            # each [B, G_i, N_i], softmax over G_i
        step = stage_attn.transpose(1, 2)                        # [B, N_i, G_i]
        assignment = step if assignment is None else assignment @ step   # [B, N, G_i]
    patch = model.config.vision_config.patch_size
    grid = (pixels.shape[2] // patch, pixels.shape[3] // patch)
    return image_x, group_x, assignment, grid


PROMPT = "a photo of a {}."


def multi_label_prompts(text: str, k: int, rng: random.Random) -> list[str]:
    """K prompts from the text's phrases (sampled without replacement while there are enough)."""
    phrases = phrases_of(text) or [text.strip().lower()]
    chosen = rng.sample(phrases, k) if len(phrases) >= k else [phrases[i % len(phrases)] for i in range(k)]
    return [PROMPT.format(p) for p in chosen]


def _soft_ce_rows(logits: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
    """Per-row cross-entropy [R] against targets spread uniformly over each row's positives."""
    targets = positives / positives.sum(dim=1, keepdim=True)
    return -(targets * logits.log_softmax(dim=1)).sum(dim=1)


def groupvit_loss(image_x, text_x, prompt_x, image_ids, logit_scale) -> tuple[torch.Tensor, dict]:
    """Image–text contrastive + multi-label contrastive.

    image_x [B, D], text_x [B, D], prompt_x [B, K, D]; image_ids: B ids (rows showing one image
    are positives of each other). Under DDP the negatives are every rank's rows, as GroupViT's own
    `dist_collect` does; each rank returns its rows' share (harness.distributed's recipe), so the
    averaged update is the one-process one at the global batch.
    """
    scale = logit_scale.exp().clamp(max=100)
    k = prompt_x.shape[1]
    img = distributed.gather_with_grad(F.normalize(image_x, dim=-1))        # [B_all, D]
    txt = distributed.gather_with_grad(F.normalize(text_x, dim=-1))         # [B_all, D]
    prompts = distributed.gather_with_grad(F.normalize(prompt_x, dim=-1).flatten(0, 1))  # [B_all*K, D]
    all_ids, rows = distributed.gather_list(image_ids)
    index = {iid: n for n, iid in enumerate(dict.fromkeys(all_ids))}
    ids = torch.tensor([index[i] for i in all_ids], device=img.device)
    pos = (ids[:, None] == ids[None, :]).float()                             # [B_all, B_all]
    prompt_rows = slice(rows.start * k, rows.stop * k)                       # this rank's prompts
    n, share = len(all_ids), distributed.rank_share
    logits = img @ txt.t() * scale                                           # [B_all, B_all]
    itc = 0.5 * (share(_soft_ce_rows(logits[rows], pos[rows]), n)
                 + share(_soft_ce_rows(logits.t()[rows], pos.t()[rows]), n))
    pos_img_prompt = pos.repeat_interleave(k, dim=1)                         # [B_all, B_all*K]
    logits_ip = img @ prompts.t() * scale                                    # [B_all, B_all*K]
    multi = 0.5 * (share(_soft_ce_rows(logits_ip[rows], pos_img_prompt[rows]), n)
                   + share(_soft_ce_rows(logits_ip.t()[prompt_rows], pos_img_prompt.t()[prompt_rows]), n * k))
    return itc + multi, {"itc": float(itc.detach()), "multi_label": float(multi.detach())}


def loss_on_batch(model, tokenizer, pixels, texts, image_ids, k: int, rng: random.Random, dense=None):
    """GroupViT's loss for normalised pixels [B, 3, S, S] paired with `texts` (one per image row).

    `dense` (the stand-in's group-level loss, groupvit_pretrain.PhraseGroupLoss) adds its
    `phrases` to the same text batch and its loss on (group embeddings, phrase embeddings).
    """
    prompts = [p for t in texts for p in multi_label_prompts(t, k, rng)]
    token_batches = [{name: ids.to(pixels.device) for name, ids in tokenizer(batch).items()}   # [T_i, L] each
                     for batch in [list(texts), prompts] + ([dense.phrases] if dense else [])]
    text_all = encode_texts(model, *token_batches)                        # [B + B*K (+ T), D]
    batch = len(texts)
    text_x, prompt_x = text_all[:batch], text_all[batch:batch + batch * k].view(batch, k, -1)
    if dense is None:
        image_x = encode_images(model, pixels)                            # [B, D]
        return groupvit_loss(image_x, text_x, prompt_x, list(image_ids), model.logit_scale)
    image_x, group_x, _, _ = encode_images(model, pixels, with_groups=True)   # [B, D], [B, G, D]
    loss, parts = groupvit_loss(image_x, text_x, prompt_x, list(image_ids), model.logit_scale)
    dense_loss = dense(group_x, text_all[batch + batch * k:], model.logit_scale)
    return loss + dense_loss, {**parts, "phrase_group": float(dense_loss.detach())}
