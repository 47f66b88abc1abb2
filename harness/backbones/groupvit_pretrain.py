"""GroupViT's training loss, and the synthref stand-in for its web pretraining.

Loss (Xu et al. 2022): image–text contrastive plus the multi-label contrastive loss, where each
text also yields K prompts "a photo of a {phrase}." as extra positive texts of its image.
Phrases come from the text without a POS tagger (none is installed, and nothing is downloaded):
a phrase is a maximal run of content words, cut at function words and location words, so
"the big red circle on the left" gives ["big red circle"]. Both losses share the model's one
learned temperature (GroupViT's `share_temperature` option; transformers' GroupViTModel has no
second one). Images repeated in a batch (several expressions of one image) count as positives of
each other rather than false negatives.

The stand-in trains a tiny GroupViT from scratch on synthref's whole-scene captions with that
loss; `build_groupvit` caches its folder by config hash (harness/backbones/pretrain_cache.py).
"""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from harness import distributed
from harness.backbones.groupvit import (encode_images, encode_texts, groupvit_config, normalise_pixels,
                                        special_token_ids, vocab_tokenizer)
from harness.backbones.phrases import phrases_of
from harness.backbones.pretrain_cache import load_caption_pairs
from harness.backbones.state_dicts import quiet_transformers_loading
from harness.data.images import read_rgb
from harness.errors import TrainingDivergedError

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


def loss_on_batch(model, tokenizer, pixels, texts, image_ids, k: int, rng: random.Random):
    """GroupViT's loss for normalised pixels [B, 3, S, S] paired with `texts` (one per image row)."""
    prompts = [p for t in texts for p in multi_label_prompts(t, k, rng)]
    text_all = encode_texts(model, tokenizer(list(texts)), tokenizer(prompts))   # [B + B*K, D]
    batch = len(texts)
    text_x, prompt_x = text_all[:batch], text_all[batch:].view(batch, k, -1)
    image_x = encode_images(model, pixels)                                # [B, D]
    return groupvit_loss(image_x, text_x, prompt_x, list(image_ids), model.logit_scale)


def warmup_cosine(step: int, total: int, warmup: int) -> float:
    """Learning-rate factor: linear warm-up, then cosine decay to 0."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def check_finite(loss: torch.Tensor, what: str, seed: int, step: int, last_finite) -> None:
    if not torch.isfinite(loss):
        raise TrainingDivergedError(f"{what} diverged: seed {seed}, step {step}, loss {float(loss)}; "
                                    f"last finite loss {last_finite}")


def load_images(paths: list[Path], size: int) -> torch.Tensor:
    """Float [N, 3, size, size] in [0, 1], squashed to size×size (bilinear, antialiased)."""
    out = torch.empty(len(paths), 3, size, size)
    for n, path in enumerate(paths):
        img = torch.from_numpy(np.array(read_rgb(path))).permute(2, 0, 1).float()[None] / 255
        out[n] = F.interpolate(img, size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]
    return out


def curve_summary(losses: list[float], points: int = 5) -> list[float]:
    """Mean loss over `points` equal windows from first to last step (what gets printed)."""
    chunks = np.array_split(np.asarray(losses), min(points, len(losses)))
    return [round(float(c.mean()), 4) for c in chunks]


def pretrain_standin(standin: dict, data_root: Path, out_dir: Path, progress: bool = True) -> dict:
    """Train a tiny GroupViT from scratch on synthref captions; save a transformers folder in out_dir."""
    from transformers import GroupViTModel

    seed, steps = int(standin.get("seed", 0)), int(standin["steps"])
    batch, k = int(standin["batch_size"]), int(standin.get("phrases", 2))
    torch.manual_seed(seed)
    rng = random.Random(seed)
    context = int(standin["arch"].get("context_length", 32))
    tokenizer = vocab_tokenizer(Path(data_root) / "vocab.txt", context)
    config = groupvit_config(standin["arch"], special_token_ids(tokenizer))
    model = GroupViTModel(config).train()
    pairs = load_caption_pairs(data_root)
    images = normalise_pixels(load_images([p for p, _ in pairs], config.vision_config.image_size), standin)
    opt = torch.optim.AdamW(model.parameters(), lr=float(standin["lr"]),
                            weight_decay=float(standin.get("weight_decay", 0.05)))
    warmup = int(standin.get("warmup", max(1, steps // 10)))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine(s, steps, warmup))
    losses, start = [], time.time()
    bar = tqdm(range(steps), desc="groupvit stand-in pretraining", disable=not progress, leave=False)
    for step in bar:
        idx = rng.sample(range(len(pairs)), min(batch, len(pairs)))
        texts = [rng.choice(pairs[i][1]) for i in idx]
        loss, _ = loss_on_batch(model, tokenizer, images[idx], texts, idx, k, rng)
        check_finite(loss, "groupvit stand-in pretraining", seed, step, losses[-1] if losses else None)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
    seconds = time.time() - start
    with quiet_transformers_loading():   # no "Writing model shards" bar
        model.eval().save_pretrained(str(out_dir))
    tokenizer.save(out_dir)
    log = {"steps": steps, "seconds": round(seconds, 1), "curve": curve_summary(losses), "losses": losses}
    (Path(out_dir) / "loss_curve.json").write_text(json.dumps(log))
    print(f"groupvit stand-in: {steps} steps on {len(pairs)} captioned images in {seconds:.0f} s; "
          f"loss curve (5 windows) {log['curve']}")
    return log
