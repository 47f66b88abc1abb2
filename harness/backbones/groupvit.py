"""GroupViT backbone: real checkpoints (a transformers folder or the NVlabs `.pth`) and the synthref stand-in.

`build_groupvit(cfg, env) -> (GroupViTModel, GroupViTTokenizer)` is the one entry. `cfg` keys:
    checkpoint  local path: a transformers folder (config.json + weights + tokenizer files) or the
                original NVlabs checkpoint file (`{"model": state_dict}`, keys `img_encoder.*`, ...)
    arch        architecture of an NVlabs `.pth` or of the stand-in (keys below); default GroupViT-S
    standin     the synthref pretraining stand-in's schedule (see groupvit_pretrain.py)
Its forward passes (`normalise_pixels`, `encode_images`, `encode_texts`) and loss are in groupvit_loss.py.
    mean, std   pixel normalisation (GroupViT was trained with ImageNet statistics)

Tokenizers: GroupViT uses CLIP's BPE. For an NVlabs `.pth`, `clip_bpe_tokenizer` writes open_clip's
shipped BPE vocabulary as a `transformers.CLIPTokenizer` (same ids as `open_clip.tokenize`), so
nothing is downloaded; a transformers folder brings its own tokenizer files. The synthref stand-in
uses a `BertTokenizer` on the dataset's closed `vocab.txt` (specials first) instead: its ~70 words
keep the text embedding 700x smaller than CLIP's 49,408 rows, whose optimizer update alone took
about 0.1 s of each ~0.6 s pretraining step on 2 cores. Either way the tokenizer is saved beside
the weights, so every GroupViT folder loads the same way.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import tempfile
from pathlib import Path

import torch

from harness.backbones.groupvit_loss import IMAGENET_MEAN, IMAGENET_STD
from harness.backbones.groupvit_pretrain import pretrain_standin, standin_value
from harness.backbones.state_dicts import (describe_keys, first_line, quiet_transformers_loading,
                                           read_torch_pickle, size_mismatches)
from harness.backbones.pretrain_cache import cached_pretrain, require_captions
from harness.errors import CheckpointError, ConfigError, DataError

# GroupViT-S as released (gcc-yfcc / gcc-redcaps): the architecture an NVlabs `.pth` holds by default.
GROUPVIT_S = dict(
    image_size=224, patch_size=16, hidden_size=384, intermediate_size=1536, num_attention_heads=6,
    depths=[6, 3, 3], num_group_tokens=[64, 8, 0], num_output_groups=[64, 8, 8],
    text_hidden_size=256, text_intermediate_size=1024, text_layers=12, text_heads=4,
    context_length=77, projection_dim=256, projection_intermediate_dim=4096,
)


class GroupViTTokenizer:
    """Callable: texts -> dict(input_ids [T, L], attention_mask [T, L]) for `GroupViTModel`'s text tower."""

    def __init__(self, hf_tokenizer, context_length: int):
        self.hf_tokenizer = hf_tokenizer
        self.context_length = int(context_length)

    def __call__(self, texts: list[str]) -> dict[str, torch.Tensor]:
        enc = self.hf_tokenizer(list(texts), padding="longest", truncation=True,
                                max_length=self.context_length, return_tensors="pt")
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}

    def save(self, folder: Path) -> None:
        self.hf_tokenizer.save_pretrained(str(folder))


def clip_bpe_tokenizer(context_length: int = 77) -> GroupViTTokenizer:
    """CLIP's BPE tokenizer built offline from the vocabulary open_clip ships."""
    from open_clip.tokenizer import bytes_to_unicode, default_bpe
    from transformers import CLIPTokenizer

    lines = gzip.open(default_bpe()).read().decode("utf-8").split("\n")
    merges = lines[1:49152 - 256 - 2 + 1]          # the slice CLIP's SimpleTokenizer uses
    byte_tokens = list(bytes_to_unicode().values())
    vocab = byte_tokens + [t + "</w>" for t in byte_tokens] + ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "vocab.json").write_text(json.dumps({tok: i for i, tok in enumerate(vocab)}))
        (Path(tmp) / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
        hf_tok = CLIPTokenizer(str(Path(tmp) / "vocab.json"), str(Path(tmp) / "merges.txt"),
                               model_max_length=context_length)
    return GroupViTTokenizer(hf_tok, context_length)


def vocab_tokenizer(vocab_path: Path, context_length: int) -> GroupViTTokenizer:
    """A lower-casing word-piece tokenizer on a closed vocabulary (one token a line, BERT specials)."""
    from transformers import BertTokenizer

    vocab_path = Path(vocab_path)
    if not vocab_path.is_file():
        raise DataError(vocab_path, "vocabulary for the GroupViT stand-in's text tower not found")
    hf_tok = BertTokenizer(str(vocab_path), do_lower_case=True, model_max_length=context_length)
    if hf_tok.sep_token_id in (None, 2) or hf_tok.unk_token_id is None:
        # transformers pools GroupViT's text at the first eos token, except that an eos id of 2
        # selects a legacy argmax rule, so [SEP] must exist and not sit on line 3.
        raise DataError(vocab_path, "expected BERT specials [PAD] [UNK] [CLS] [SEP] first, [SEP] not on line 3")
    return GroupViTTokenizer(hf_tok, context_length)


def special_token_ids(tokenizer: GroupViTTokenizer) -> dict:
    """The text config's vocab size and bos/eos/pad ids for a tokenizer."""
    tok = tokenizer.hf_tokenizer
    bos = tok.bos_token_id if tok.bos_token_id is not None else tok.cls_token_id
    eos = tok.eos_token_id if tok.eos_token_id is not None else tok.sep_token_id
    return dict(vocab_size=len(tok), bos_token_id=bos, eos_token_id=eos, pad_token_id=tok.pad_token_id)


CLIP_TOKEN_IDS = dict(vocab_size=49408, bos_token_id=49406, eos_token_id=49407, pad_token_id=49407)


def groupvit_config(arch: dict, token_ids: dict | None = None):
    """A `GroupViTConfig` from our flat architecture keys (missing keys: GroupViT-S) and the
    tokenizer's ids (default: CLIP BPE's)."""
    from transformers import GroupViTConfig

    a = {**GROUPVIT_S, **(arch or {})}
    unknown = sorted(set(a) - set(GROUPVIT_S))
    if unknown:
        raise CheckpointError(f"unknown GroupViT arch keys {unknown}; expected some of {sorted(GROUPVIT_S)}")
    vision = dict(image_size=a["image_size"], patch_size=a["patch_size"], hidden_size=a["hidden_size"],
                  intermediate_size=a["intermediate_size"], num_attention_heads=a["num_attention_heads"],
                  depths=list(a["depths"]), num_hidden_layers=sum(a["depths"]),
                  num_group_tokens=list(a["num_group_tokens"]), num_output_groups=list(a["num_output_groups"]))
    text = dict(hidden_size=a["text_hidden_size"], intermediate_size=a["text_intermediate_size"],
                num_hidden_layers=a["text_layers"], num_attention_heads=a["text_heads"],
                max_position_embeddings=a["context_length"], **(token_ids or CLIP_TOKEN_IDS))
    return GroupViTConfig(text_config=text, vision_config=vision, projection_dim=a["projection_dim"],
                          projection_intermediate_dim=a["projection_intermediate_dim"])


# ---------------------------------------------------------------- NVlabs key naming <-> transformers
# Each pair names one tensor family in both conventions; {s}/{b} are stage/block numbers, {p} the
# rest of the key. "fused": one original q|k|v tensor is three transformers tensors; "conv": the
# original projector uses 1x1 Conv1d weights [O, I, 1] where transformers has Linear [O, I].
_V, _T = "vision_model.encoder.stages.{s}", "text_model.encoder.layers.{b}"
_KEY_PAIRS = [
    ("img_encoder.pos_embed", "vision_model.embeddings.position_embeddings", None),
    ("img_encoder.patch_embed.proj.{p}", "vision_model.embeddings.patch_embeddings.projection.{p}", None),
    ("img_encoder.patch_embed.norm.{p}", "vision_model.embeddings.layernorm.{p}", None),
    ("img_encoder.norm.{p}", "vision_model.layernorm.{p}", None),
    ("img_encoder.layers.{s}.group_token", _V + ".group_token", None),
    ("img_encoder.layers.{s}.blocks.{b}.norm1.{p}", _V + ".layers.{b}.layer_norm1.{p}", None),
    ("img_encoder.layers.{s}.blocks.{b}.norm2.{p}", _V + ".layers.{b}.layer_norm2.{p}", None),
    ("img_encoder.layers.{s}.blocks.{b}.attn.proj.{p}", _V + ".layers.{b}.self_attn.out_proj.{p}", None),
    ("img_encoder.layers.{s}.blocks.{b}.attn.qkv.{p}", _V + ".layers.{b}.self_attn.{qkv}_proj.{p}", "fused"),
    ("img_encoder.layers.{s}.blocks.{b}.mlp.{p}", _V + ".layers.{b}.mlp.{p}", None),
    ("img_encoder.layers.{s}.downsample.pre_assign_attn.attn.proj.{p}",
     _V + ".downsample.pre_assign_attn.attn.out_proj.{p}", None),
    ("img_encoder.layers.{s}.downsample.{p}", _V + ".downsample.{p}", None),
    ("img_encoder.layers.{s}.group_projector.{p}", _V + ".group_projector.{p}", None),
    ("text_encoder.token_embedding.weight", "text_model.embeddings.token_embedding.weight", None),
    ("text_encoder.positional_embedding", "text_model.embeddings.position_embedding.weight", None),
    ("text_encoder.ln_final.{p}", "text_model.final_layer_norm.{p}", None),
    ("text_encoder.transformer.resblocks.{b}.ln_1.{p}", _T + ".layer_norm1.{p}", None),
    ("text_encoder.transformer.resblocks.{b}.ln_2.{p}", _T + ".layer_norm2.{p}", None),
    ("text_encoder.transformer.resblocks.{b}.mlp.c_fc.{p}", _T + ".mlp.fc1.{p}", None),
    ("text_encoder.transformer.resblocks.{b}.mlp.c_proj.{p}", _T + ".mlp.fc2.{p}", None),
    ("text_encoder.transformer.resblocks.{b}.attn.out_proj.{p}", _T + ".self_attn.out_proj.{p}", None),
    ("text_encoder.transformer.resblocks.{b}.attn.in_proj_{p}", _T + ".self_attn.{qkv}_proj.{p}", "fused"),
    ("img_projector.linear_hidden.0.{p}", "visual_projection.0.{p}", "conv"),
    ("img_projector.linear_hidden.1.{p}", "visual_projection.1.{p}", None),
    ("img_projector.linear_out.{p}", "visual_projection.3.{p}", "conv"),
    ("text_projector.linear_hidden.0.{p}", "text_projection.0.{p}", "conv"),
    ("text_projector.linear_hidden.1.{p}", "text_projection.1.{p}", None),
    ("text_projector.linear_out.{p}", "text_projection.3.{p}", "conv"),
    ("logit_scale", "logit_scale", None),
]
_FIELD = {"s": r"(?P<s>\d+)", "b": r"(?P<b>\d+)", "p": r"(?P<p>.+)", "qkv": r"(?P<qkv>q|k|v)"}


def _pattern(template: str) -> re.Pattern:
    parts = re.split(r"\{(\w+)\}", template)     # literal, field, literal, ...
    return re.compile("".join(re.escape(x) if i % 2 == 0 else _FIELD[x] for i, x in enumerate(parts)) + "$")


_RULES = [(_pattern(o), o, _pattern(h), h, kind) for o, h, kind in _KEY_PAIRS]


def original_to_hf(original: dict) -> tuple[dict, list[str]]:
    """NVlabs GroupViT state dict -> transformers `GroupViTModel` naming; also the keys left unused."""
    hf, unused = {}, []
    for key, value in original.items():
        key = key[len("module."):] if key.startswith("module.") else key
        for orig_re, _, _, hf_tpl, kind in _RULES:
            m = orig_re.match(key)
            if m is None:
                continue
            fields = m.groupdict()
            if kind == "fused":   # [3C, ...] -> three [C, ...] (q, k, v in that order)
                for name, part in zip("qkv", value.chunk(3, dim=0)):
                    hf[hf_tpl.format(**fields, qkv=name)] = part.clone()
            elif kind == "conv" and fields["p"] == "weight":
                hf[hf_tpl.format(**fields)] = value.squeeze(-1)       # [O, I, 1] -> [O, I]
            else:
                hf[hf_tpl.format(**fields)] = value
            break
        else:
            unused.append(key)    # e.g. multi_label_logit_scale: a training-only temperature
    return hf, unused


def hf_to_original(hf: dict) -> dict:
    """transformers `GroupViTModel` state dict -> NVlabs naming (the inverse of `original_to_hf`)."""
    original, pending = {}, {}
    for key, value in hf.items():
        for _, orig_tpl, hf_re, _, kind in _RULES:
            m = hf_re.match(key)
            if m is None:
                continue
            fields = m.groupdict()
            if kind == "fused":
                pending.setdefault(orig_tpl.format(**fields), {})[fields["qkv"]] = value
            elif kind == "conv" and fields["p"] == "weight":
                original[orig_tpl.format(**fields)] = value.unsqueeze(-1)  # [O, I] -> [O, I, 1]
            else:
                original[orig_tpl.format(**fields)] = value
            break
        else:
            raise CheckpointError(f"transformers GroupViT key {key!r} has no NVlabs name")
    for name, parts in pending.items():
        original[name] = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
    return original


# ---------------------------------------------------------------- loaders
def _check_loaded(path, missing: list[str], unexpected: list[str]) -> None:
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing:
        raise CheckpointError(
            f"{path}: not a GroupViT of the configured architecture; {len(missing)} weights missing "
            f"(e.g. {', '.join(missing[:5])}); unexpected: {', '.join(unexpected[:5]) or 'none'}")


def load_transformers_folder(folder: Path):
    """(GroupViTModel, tokenizer) from a `save_pretrained` folder; every weight must be present."""
    from transformers import AutoTokenizer, GroupViTModel

    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise CheckpointError(f"{folder}: expected a transformers GroupViT folder with config.json")
    try:
        with quiet_transformers_loading():   # mis-shaped weights are listed below, by name
            model, info = GroupViTModel.from_pretrained(str(folder), local_files_only=True,
                                                        output_loading_info=True, ignore_mismatched_sizes=True)
    except (OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{folder}: cannot load as transformers GroupViTModel ({first_line(exc)})") from exc
    _check_loaded(folder, list(info.get("missing_keys", [])), list(info.get("unexpected_keys", [])))
    mismatched = [m if isinstance(m, str) else m[0] for m in info.get("mismatched_keys") or []]
    if mismatched:
        raise CheckpointError(f"{folder}: weights of the wrong shape for its config.json: {describe_keys(mismatched)}")
    try:
        hf_tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{folder}: no tokenizer files (vocab.json/merges.txt or tokenizer.json)") from exc
    context = model.config.text_config.max_position_embeddings
    model.harness_load_info = dict(path=str(folder), source="transformers",
                                   ignored_keys=sorted(info.get("unexpected_keys", [])))
    return model.eval(), GroupViTTokenizer(hf_tok, context)


def load_original_checkpoint(path: Path, arch: dict):
    """(GroupViTModel, tokenizer) from an NVlabs `.pth` for the architecture `arch` (default GroupViT-S).

    NVlabs' files pickle the training's OmegaConf config (and metrics) beside `model`; they are
    read without importing omegaconf: foreign objects become inert stand-ins (`read_torch_pickle`),
    only the tensors are used. The model carries `harness_load_info = {"path", "source",
    "ignored_keys"}` (ignored: training-only entries such as `multi_label_logit_scale`)."""
    from transformers import GroupViTModel

    blob = read_torch_pickle(path)   # CheckpointError naming the file when it is not a torch file
    state = blob.get("model", blob) if isinstance(blob, dict) else None
    if not isinstance(state, dict) or not any(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: expected a dict with a 'model' state dict (NVlabs GroupViT)")
    config = groupvit_config(arch)
    model = GroupViTModel(config)
    hf_state, unused = original_to_hf(state)
    shapes = size_mismatches(model, hf_state)
    if shapes:   # a different architecture than `arch` says
        raise CheckpointError(f"{path}: does not fit the configured GroupViT arch: {len(shapes)} size "
                              "mismatches, e.g. " + "; ".join(shapes[:3]))
    result = model.load_state_dict(hf_state, strict=False)
    _check_loaded(path, list(result.missing_keys), list(result.unexpected_keys))
    if result.unexpected_keys:   # e.g. more blocks than `arch` has: never load a part of the file
        raise CheckpointError(f"{path}: holds weights the configured GroupViT arch lacks "
                              f"({describe_keys(result.unexpected_keys)}); set its `arch` to the file's")
    model.harness_load_info = dict(path=str(path), source="nvlabs", ignored_keys=sorted(unused))
    return model.eval(), clip_bpe_tokenizer(config.text_config.max_position_embeddings)


def load_groupvit_checkpoint(path, arch: dict | None = None):
    """A transformers folder or an NVlabs `.pth`, chosen by what the path is."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: GroupViT checkpoint not found (give a transformers folder or "
                              "the NVlabs .pth via --set method.backbone.checkpoint=PATH)")
    if path.is_dir():
        return load_transformers_folder(path)
    return load_original_checkpoint(path, arch or {})


def standin_config(cfg: dict) -> dict:
    """What the stand-in's weights depend on (its cache key): architecture plus schedule."""
    if not cfg.get("standin"):
        raise CheckpointError("method.backbone: no checkpoint and no 'standin' pretraining config; "
                              "give --set method.backbone.checkpoint=PATH")
    return {"arch": dict(cfg.get("arch") or {}), **dict(cfg["standin"]),
            "mean": list(cfg.get("mean", IMAGENET_MEAN)), "std": list(cfg.get("std", IMAGENET_STD))}


def build_groupvit(cfg: dict, env):
    """(GroupViTModel in eval mode, GroupViTTokenizer): from `cfg['checkpoint']`, else the synthref stand-in.

    With no checkpoint, the stand-in is pretrained on `env.data_root/captions.json` (cached by config
    hash); without captions this raises CheckpointError — never a silent random init.
    """
    if cfg.get("checkpoint"):
        return load_groupvit_checkpoint(cfg["checkpoint"], cfg.get("arch"))
    standin = standin_config(cfg)
    require_captions(env.data_root)              # raises CheckpointError naming captions.json
    vocab = Path(env.data_root) / "vocab.txt"
    if not vocab.is_file():
        raise DataError(vocab, "the GroupViT stand-in needs the dataset's vocab.txt beside captions.json")
    standin["vocab"] = hashlib.sha256(vocab.read_bytes()).hexdigest()[:16]   # part of the cache key

    def pretrain(out_dir: Path) -> None:
        from transformers import GroupViTModel

        torch.manual_seed(int(standin_value(standin, "seed")))   # initial weights from the stand-in's seed
        if "context_length" not in standin["arch"]:
            raise ConfigError("method.backbone.arch.context_length: missing (the stand-in tokenizer's length)")
        tokenizer = vocab_tokenizer(vocab, int(standin["arch"]["context_length"]))
        model = GroupViTModel(groupvit_config(standin["arch"], special_token_ids(tokenizer))).train()
        pretrain_standin(model, tokenizer, standin, env.data_root, out_dir, progress=env.progress)

    return load_transformers_folder(cached_pretrain("groupvit", standin, env.data_root, env.cache_dir, pretrain))
