"""BERT stand-in pretraining: masked language modelling on the synthref captions.

BERT's own recipe at toy scale: `mask_prob` of the word tokens are chosen per step; of those
80% become [MASK], 10% a random word, 10% stay; the loss is cross-entropy on the chosen ones.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import BertConfig, BertForMaskedLM, BertTokenizer

from harness.backbones.pretrain_cache import load_caption_pairs
from harness.backbones.standin_training import pretrain_steps, sample_batch, save_standin


def mask_tokens(input_ids: torch.Tensor, maskable: torch.Tensor, tokenizer: BertTokenizer,
                mask_prob: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(corrupted ids, labels) for ids [B, L]; labels are -100 where no prediction is asked."""
    chosen = (torch.rand(input_ids.shape, generator=generator) < mask_prob) & maskable  # [B, L]
    if not chosen.any():  # a batch with nothing to predict would give a NaN loss
        chosen = maskable & (maskable.cumsum(dim=1) == 1)
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, -100))
    roll = torch.rand(input_ids.shape, generator=generator)
    random_ids = torch.randint(0, len(tokenizer), input_ids.shape, generator=generator)
    corrupted = torch.where(chosen & (roll < 0.8), torch.full_like(input_ids, tokenizer.mask_token_id),
                            input_ids)
    corrupted = torch.where(chosen & (roll >= 0.8) & (roll < 0.9), random_ids, corrupted)
    return corrupted, labels


def tokenise_captions(data_root: Path, tokenizer: BertTokenizer, max_length: int):
    """All train captions as (ids [M, L], attention mask [M, L], maskable [M, L])."""
    texts = [c for _, captions in load_caption_pairs(data_root) for c in captions]
    tokens = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    ids, attention = tokens["input_ids"], tokens["attention_mask"]
    special = torch.isin(ids, torch.tensor(tokenizer.all_special_ids))
    return ids, attention, (attention.bool() & ~special)


def train_bert_standin(config: BertConfig, tokenizer: BertTokenizer, standin: dict, data_root: Path,
                       out_dir: Path, progress: bool = True) -> dict:
    """MLM-pretrain a fresh BertForMaskedLM of `config`; save its encoder (`.bert`) weights."""
    model = BertForMaskedLM(config)
    ids, attention, maskable = tokenise_captions(data_root, tokenizer, config.max_position_embeddings)
    generator = torch.Generator().manual_seed(int(standin["seed"]))
    model.train()

    def step_loss(step: int) -> torch.Tensor:
        picks = sample_batch(len(ids), int(standin["batch_size"]), generator)
        corrupted, labels = mask_tokens(ids[picks], maskable[picks], tokenizer, float(standin["mask_prob"]),
                                        generator)
        logits = model(input_ids=corrupted, attention_mask=attention[picks]).logits  # [B, L, V]
        return F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)

    curve = pretrain_steps("bert", model.parameters(), standin, step_loss, progress)
    model.eval()
    save_standin(out_dir, model.bert, curve)
    return curve
