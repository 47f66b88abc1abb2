"""BERT stand-in pretraining: masked language modelling on the synthref captions.

BERT's own recipe at toy scale: `mask_prob` of the word tokens are chosen per step; of those
80% become [MASK], 10% a random word, 10% stay; the loss is cross-entropy on the chosen ones.

`sentence="words"` adds a sentence-level objective on the [CLS] token, the stand-in for BERT's
next-sentence prediction (the task that trains a real BERT's [CLS]; MLM alone never puts a loss
on it, and the tiny stand-in's [CLS] then tells colours apart barely above chance): a linear head
on [CLS] predicts which content words (colours, shapes, sizes; `standin_training.STOPWORDS` out)
the caption holds, multi-label BCE, weighted `sentence_weight`. Captions only, as for MLM.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import BertConfig, BertForMaskedLM, BertTokenizer

from harness.backbones.pretrain_cache import load_caption_pairs
from harness.backbones.standin_training import pretrain_steps, sample_batch, save_standin
from harness.backbones.standin_vit import label_vocabulary, multi_hot_targets
from harness.errors import ConfigError

SENTENCE_OBJECTIVES = ("none", "words")


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


def caption_texts(data_root: Path) -> list[str]:
    """Every train caption, image by image."""
    return [c for _, captions in load_caption_pairs(data_root) for c in captions]


def tokenise_captions(texts: list[str], tokenizer: BertTokenizer, max_length: int):
    """The captions as (ids [M, L], attention mask [M, L], maskable [M, L])."""
    tokens = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    ids, attention = tokens["input_ids"], tokens["attention_mask"]
    special = torch.isin(ids, torch.tensor(tokenizer.all_special_ids))
    return ids, attention, (attention.bool() & ~special)


def sentence_objective(standin: dict) -> tuple[str, float]:
    """(`sentence`, `sentence_weight`) of the stand-in config, checked."""
    sentence = str(standin.get("sentence", "none"))
    if sentence not in SENTENCE_OBJECTIVES:
        raise ConfigError(f"method.bert.standin.sentence={sentence!r}: expected one of "
                          f"{', '.join(SENTENCE_OBJECTIVES)}")
    weight = standin.get("sentence_weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
        raise ConfigError(f"method.bert.standin.sentence_weight={weight!r}: expected a number ≥ 0")
    return sentence, float(weight)


def train_bert_standin(config: BertConfig, tokenizer: BertTokenizer, standin: dict, data_root: Path,
                       out_dir: Path, progress: bool = True) -> dict:
    """MLM-pretrain a fresh BertForMaskedLM of `config` (with the [CLS] objective when
    `standin["sentence"]` asks for it); save its encoder (`.bert`) weights."""
    sentence, weight = sentence_objective(standin)
    model = BertForMaskedLM(config)
    texts = caption_texts(data_root)
    ids, attention, maskable = tokenise_captions(texts, tokenizer, config.max_position_embeddings)
    generator = torch.Generator().manual_seed(int(standin["seed"]))
    model.train()
    params = list(model.parameters())
    words_head, targets = None, None
    if sentence == "words":
        words = label_vocabulary([[t] for t in texts])
        targets = multi_hot_targets([[t] for t in texts], words)                      # [M, W]
        words_head = torch.nn.Linear(config.hidden_size, len(words))
        params += list(words_head.parameters())

    def step_loss(step: int) -> torch.Tensor:
        picks = sample_batch(len(ids), int(standin["batch_size"]), generator)
        corrupted, labels = mask_tokens(ids[picks], maskable[picks], tokenizer, float(standin["mask_prob"]),
                                        generator)
        hidden = model.bert(input_ids=corrupted, attention_mask=attention[picks]).last_hidden_state  # [B, L, H]
        logits = model.cls(hidden)                                                   # [B, L, V]
        loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
        if words_head is not None:
            loss = loss + weight * F.binary_cross_entropy_with_logits(words_head(hidden[:, 0]), targets[picks])
        return loss

    curve = pretrain_steps("bert", params, standin, step_loss, progress)
    model.eval()
    save_standin(out_dir, model.bert, curve)
    return curve
