"""BERT text encoder for SaG and TSEG: a local transformers folder, or the synthref stand-in.

`build_bert(cfg, env) -> TextEncoder`: `.tokenize(texts) -> dict(input_ids, attention_mask)`
(LongTensors [B, L], padded to the longest text, truncated at `max_length`);
`forward(input_ids, attention_mask) -> last hidden states [B, L, H]`; `.hidden_size` (H).

cfg keys (the method config's BERT section):
    checkpoint  local folder as the hub ships it or `save_pretrained` writes it (config.json,
                pytorch_model.bin and/or model.safetensors, vocab.txt), e.g. bert-base-uncased.
                Given → real path; absent/None → the synthref stand-in. Read as transformers'
                `BertModel.from_pretrained` reads it: the hub file is a BertForPreTraining state
                dict (`bert.` prefix, `cls.*` pre-training heads, legacy `LayerNorm.gamma/beta`
                names); the heads are left out, the names mapped. Every encoder weight must be in
                the file with the shape config.json gives (CheckpointError naming path and keys);
                only the pooler, which SaG and TSEG do not use, may be absent.
    max_length  longest tokenised text, special tokens included (default 32).
    standin     overrides of `BERT_STANDIN` below: the tiny BertConfig (`hidden_size`,
                `num_hidden_layers`, `num_attention_heads`, `intermediate_size`,
                `max_position_embeddings`) and its MLM pretraining (`steps`, `batch_size`, `lr`,
                `weight_decay`, `warmup`, `mask_prob`, `seed`), plus the [CLS] objective
                (`sentence`: "none" or "words", `sentence_weight`; standin_bert.py).
The stand-in uses a BertTokenizer over `env.data_root / "vocab.txt"` (one token a line) and is pretrained
with masked language modelling on the synthref captions, not left at random init: SaG and TSEG
fine-tune their BERT with a small learning rate (1e-5), which leaves a random encoder close to
random, while real BERT arrives with contextual features. A short MLM (~50 s on 2 cores) gives the
tiny encoder the same starting point: words that co-occur in scenes get related representations.
With no checkpoint and no `captions.json`/`vocab.txt` under `env.data_root`: CheckpointError.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import nn
from transformers import BertConfig, BertModel, BertTokenizer

from harness.backbones.pretrain_cache import cached_pretrain
from harness.backbones.standin_bert import train_bert_standin
from harness.backbones.standin_training import load_standin_weights, merged, standin_seed
from harness.backbones.state_dicts import (describe_keys, first_line, quiet_transformers_loading,
                                           raise_on_mismatch, require_path)
from harness.errors import CheckpointError

BERT_STANDIN = dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=4, intermediate_size=512,
                    max_position_embeddings=64,
                    steps=300, batch_size=128, lr=1e-3, weight_decay=0.01, warmup=30, mask_prob=0.15, seed=0)
CONFIG_KEYS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
               "max_position_embeddings")


class TextEncoder(nn.Module):
    """A BertModel with its tokenizer: texts → token tensors → last hidden states."""

    def __init__(self, bert: BertModel, tokenizer: BertTokenizer, max_length: int = 32):
        super().__init__()
        self.bert = bert
        self.tokenizer = tokenizer
        self.max_length = int(max_length)
        self.hidden_size = bert.config.hidden_size

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        tokens = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                                return_tensors="pt")
        return {"input_ids": tokens["input_ids"], "attention_mask": tokens["attention_mask"]}  # [B, L] each

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # [B, L, H]


def build_bert(cfg: dict, env) -> TextEncoder:
    """TextEncoder from the folder `cfg["checkpoint"]`, else the synthref stand-in."""
    max_length = cfg.get("max_length", 32)
    if cfg.get("checkpoint"):
        bert, tokenizer = load_real_bert(cfg["checkpoint"])
    else:
        bert, tokenizer = build_standin_bert(cfg.get("standin"), env)
    return TextEncoder(bert, tokenizer, max_length).eval()


def load_real_bert(checkpoint) -> tuple[BertModel, BertTokenizer]:
    """BertModel + BertTokenizer from a local folder; every encoder weight must be in the file.

    The model carries `harness_load_info = {"path", "ignored_keys"}`: the file's entries transformers
    did not use (the pre-training heads of a hub checkpoint)."""
    folder = require_path(checkpoint, "BERT checkpoint", folder=True)
    try:
        tokenizer = BertTokenizer.from_pretrained(str(folder), local_files_only=True)
        with quiet_transformers_loading():
            # Mis-shaped weights are listed (below, by name), not raised on with an unnamed error.
            bert, info = BertModel.from_pretrained(str(folder), local_files_only=True, output_loading_info=True,
                                                   ignore_mismatched_sizes=True)
    except Exception as exc:  # transformers raises OSError/ValueError/RuntimeError for unusable folders
        raise CheckpointError(f"{folder}: cannot be loaded as a BERT folder ({first_line(exc)})") from exc
    if len(tokenizer) <= len(tokenizer.all_special_ids):  # transformers' silent fallback when no vocab
        raise CheckpointError(f"{folder}: no vocabulary found (expected vocab.txt or tokenizer.json)")
    # The pooler is unused by the methods; a checkpoint saved from a MaskedLM model lacks it.
    missing = sorted(k for k in info["missing_keys"] if not k.startswith("pooler."))
    raise_on_mismatch(folder, "BertModel", missing, [])
    if info.get("mismatched_keys"):
        raise CheckpointError(f"{folder}: does not match BertModel of its config.json: mis-shaped keys "
                              f"{describe_keys(sorted(_key_name(k) for k in info['mismatched_keys']))}")
    bert.harness_load_info = dict(path=str(folder), ignored_keys=sorted(info["unexpected_keys"]))
    return bert, tokenizer


def _key_name(entry) -> str:
    """transformers lists a mismatched key as its name or as (name, file shape, model shape)."""
    return entry if isinstance(entry, str) else str(entry[0])


def standin_tokenizer(data_root: Path) -> tuple[BertTokenizer, str]:
    """The synthref word-level BERT tokenizer and a fingerprint of its vocabulary."""
    vocab = Path(data_root) / "vocab.txt"
    if not vocab.is_file():
        raise CheckpointError(f"{vocab}: no vocabulary for the BERT stand-in; on real data give a "
                              "checkpoint folder (e.g. --set method.text.checkpoint=DIR)")
    # transformers 5 ignores `vocab_file=` (leaving only the 5 special tokens): pass the mapping.
    words = [line.rstrip("\n") for line in vocab.read_text(encoding="utf-8").splitlines() if line.strip()]
    tokenizer = BertTokenizer(vocab={w: i for i, w in enumerate(words)}, do_lower_case=True)
    return tokenizer, hashlib.sha256(vocab.read_bytes()).hexdigest()[:16]


def standin_bert_config(standin: dict, tokenizer: BertTokenizer) -> BertConfig:
    return BertConfig(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                      **{k: standin[k] for k in CONFIG_KEYS})


def build_standin_bert(standin_overrides: dict | None, env) -> tuple[BertModel, BertTokenizer]:
    """The tiny BERT MLM-pretrained on `env.data_root`'s captions (cached by config, captions, vocab)."""
    standin = merged(BERT_STANDIN, standin_overrides)
    tokenizer, vocab_hash = standin_tokenizer(env.data_root)
    config = standin_bert_config(standin, tokenizer)

    def pretrain(out_dir):
        with standin_seed(int(standin["seed"])):
            train_bert_standin(config, tokenizer, standin, env.data_root, out_dir, env.progress)

    folder = cached_pretrain("bert", dict(standin, vocab=vocab_hash), env.data_root, env.cache_dir, pretrain)
    bert = load_standin_weights(folder, BertModel(config, add_pooling_layer=False))
    return bert, tokenizer
