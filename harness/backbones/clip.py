"""CLIP for MaskCLIP, TSEG and SaG: a real open_clip checkpoint, or the synthref stand-in.

`build_clip(cfg, env) -> (model, tokenizer)`; `model` is an open_clip `CLIP` in eval mode and
`tokenizer(list[str]) -> LongTensor [B, context_length]`. Images go in normalised with
`model.visual.preprocess_cfg["mean"/"std"]` (OpenAI's for both paths; `clip_normalise` does it).

cfg keys (the method config's CLIP section):
    checkpoint  local weight file (open_clip `.pth`/`.bin`/`.safetensors`, or OpenAI's TorchScript
                `.pt`). Given → real path; absent/None → the synthref stand-in. Nothing is downloaded.
    name        open_clip architecture for the real path, e.g. "ViT-B-16" (default). An OpenAI file
                is always built with QuickGELU (see `load_real_clip`).
    image_size  optional: build at this input size (positional embedding resized on load).
    standin     overrides of `CLIP_STANDIN` below: the tiny model's open_clip config
                (`embed_dim`, `vision_cfg`, `text_cfg`), `local_radius` (the vision tower's
                attention window), and its pretraining (`steps`,
                `batch_size`, `lr`, `weight_decay`, `warmup`, `seed`, `mean`, `std`).
With no checkpoint and no `captions.json` under `env.data_root`: CheckpointError.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import open_clip
import torch
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from open_clip.model import set_model_preprocess_cfg
from open_clip.transform import PreprocessCfg

from harness.backbones.local_attention import attach_local_attention, check_radius
from harness.backbones.pretrain_cache import cached_pretrain
from harness.backbones.standin_clip import train_clip_standin
from harness.backbones.standin_training import load_standin_weights, merged, standin_seed
from harness.backbones.state_dicts import (first_line, is_torchscript_archive, raise_on_mismatch,
                                           read_state_dict, require_path, size_mismatches, state_dict_keys)
from harness.errors import CheckpointError, UnknownNameError

# The stand-in's architecture (an open_clip model config) and pretraining (standin_clip.py). A
# 4-px patch (a 16×16 grid at 64 px) so that a token sees part of one object, not several; 48
# tokens hold the longest synthref caption (40 BPE tokens with start/end). `local_radius`: None is
# open_clip's global attention; an integer r confines a patch's attention to the patches within r
# grid steps (local_attention.py); synthref's MaskCLIP config sets it (configs/maskclip.py).
CLIP_STANDIN = dict(
    embed_dim=64,
    vision_cfg=dict(image_size=64, patch_size=4, width=64, layers=2, head_width=32),
    local_radius=None,
    text_cfg=dict(context_length=48, vocab_size=49408, width=64, heads=2, layers=2),
    steps=400, batch_size=32, lr=1e-3, weight_decay=0.1, warmup=20, seed=0,
    global_weight=1.0, dense_weight=1.0, pool_temperature=0.1,
    mean=list(OPENAI_DATASET_MEAN), std=list(OPENAI_DATASET_STD),
)
MODEL_KEYS = ("embed_dim", "vision_cfg", "text_cfg", "quick_gelu")


def build_clip(cfg: dict, env):
    """(open_clip CLIP in eval mode, tokenizer) from `cfg["checkpoint"]`, else the synthref stand-in."""
    if cfg.get("checkpoint"):
        return load_real_clip(cfg)
    return build_standin_clip(cfg.get("standin"), env)


# Entries only OpenAI's own CLIP files hold (buffers of its TorchScript model, kept when its state
# dict is re-saved); open_clip's `load_openai_model` drops them before loading.
OPENAI_ONLY_KEYS = ("input_resolution", "context_length", "vocab_size")


def load_real_clip(cfg: dict):
    """The open_clip architecture `cfg["name"]` with the weights of the local file `cfg["checkpoint"]`.

    OpenAI's own files (the TorchScript `.pt` OpenAI ships, or a state dict holding its
    `OPENAI_ONLY_KEYS`) are built with QuickGELU, the activation OpenAI trained with, as open_clip's
    `load_openai_model` does: open_clip does this by itself only for its `openai` pretrained tags,
    never for a file path. An open_clip file keeps the architecture's own activation unless the
    `open_clip_config.json` the hub ships beside it says `"quick_gelu": true` (as it does for
    OpenAI's weights re-saved by open_clip, e.g. timm/vit_base_patch16_clip_224.openai); without
    that file, name the `-quickgelu` architecture for such weights. The choice is recorded on the
    model: `model.harness_load_info = {"path", "arch", "source", "quick_gelu"}` with source
    "openai-torchscript", "openai-state-dict" or "open_clip".
    """
    name = cfg.get("name", "ViT-B-16")
    path = require_path(cfg["checkpoint"], f"CLIP checkpoint for {name}")
    if name not in open_clip.list_models():
        raise UnknownNameError("open_clip architecture", name, open_clip.list_models())
    source = clip_file_source(path)
    quick_gelu = (source != "open_clip" or bool(open_clip.get_model_config(name).get("quick_gelu"))
                  or hub_config_quick_gelu(path))
    extra = {"force_image_size": cfg["image_size"]} if cfg.get("image_size") else {}
    # Built without weights, then loaded non-strictly so a mismatch can be reported key by key.
    model = open_clip.create_model(name, pretrained=None, force_quick_gelu=quick_gelu, **extra)
    if source == "open_clip":
        _load_open_clip_file(model, path, name)
    else:
        _load_openai_file(model, path, name)
    model.harness_load_info = dict(path=str(path), arch=name, source=source, quick_gelu=quick_gelu)
    return model.eval(), open_clip.get_tokenizer(name)


def clip_file_source(path) -> str:
    """Who wrote the weight file: "openai-torchscript", "openai-state-dict" or "open_clip"."""
    if is_torchscript_archive(path):
        return "openai-torchscript"
    if any(key in OPENAI_ONLY_KEYS for key in state_dict_keys(path)):
        return "openai-state-dict"
    return "open_clip"


def hub_config_quick_gelu(path) -> bool:
    """`quick_gelu` of the open_clip_config.json beside a weight file (False when there is none)."""
    config = Path(path).parent / "open_clip_config.json"
    if not config.is_file():
        return False
    try:
        content = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{config}: not a readable open_clip config ({first_line(exc)})") from exc
    model_cfg = content.get("model_cfg", content) if isinstance(content, dict) else None
    if not isinstance(model_cfg, dict):
        raise CheckpointError(f"{config}: expected a JSON object with a 'model_cfg' object")
    return bool(model_cfg.get("quick_gelu", False))


def _load_open_clip_file(model, path, name: str) -> None:
    try:
        incompatible = open_clip.load_checkpoint(model, str(path), strict=False)
    except Exception as exc:  # open_clip raises RuntimeError/KeyError/StopIteration for foreign files
        raise CheckpointError(f"{path}: cannot be loaded as open_clip {name}: {first_line(exc)}; "
                              f"{_mismatch_detail(path, model)}") from exc
    raise_on_mismatch(path, f"open_clip {name}", incompatible.missing_keys, incompatible.unexpected_keys)


def _load_openai_file(model, path, name: str) -> None:
    """OpenAI's weights (half precision for most tensors) into the fp32 open_clip model, every key
    required; the position table is resampled when `image_size` asks for another size."""
    from open_clip.model import resize_pos_embed

    state = {k: v.float() if v.is_floating_point() else v for k, v in read_state_dict(path).items()
             if k not in OPENAI_ONLY_KEYS}                 # fp16 → fp32, as load_openai_model does
    resize_pos_embed(state, model)  # only when image_size differs from the file's (else a no-op)
    shapes = size_mismatches(model, state)
    if shapes:
        raise CheckpointError(f"{path}: does not match open_clip {name}: {len(shapes)} size mismatches, e.g. "
                              + "; ".join(shapes[:3]))
    incompatible = model.load_state_dict(state, strict=False)
    raise_on_mismatch(path, f"open_clip {name} (OpenAI layout)", incompatible.missing_keys,
                      incompatible.unexpected_keys)


def _mismatch_detail(path, model) -> str:
    """Why a file failed to load, read again only on this error path (it may be large)."""
    try:
        shapes = size_mismatches(model, read_state_dict(path))
    except CheckpointError as exc:
        return str(exc)
    if not shapes:
        return "expected a state dict of this architecture"
    return f"{len(shapes)} size mismatches, e.g. " + "; ".join(shapes[:3])


def standin_clip_model(standin: dict) -> open_clip.CLIP:
    """A freshly initialised tiny CLIP from the stand-in's open_clip model config."""
    model = open_clip.CLIP(**{k: standin[k] for k in MODEL_KEYS if k in standin})
    radius = check_radius(standin.get("local_radius"), "method.clip.standin.local_radius")
    if radius is not None:
        transformer = model.visual.transformer
        attach_local_attention(transformer.resblocks, radius, prefix=1, batch_first=transformer.batch_first)
    preprocess = PreprocessCfg(size=standin["vision_cfg"]["image_size"], mean=tuple(standin["mean"]),
                               std=tuple(standin["std"]))
    set_model_preprocess_cfg(model, asdict(preprocess))
    return model


def build_standin_clip(standin_overrides: dict | None, env):
    """The tiny CLIP pretrained on `env.data_root`'s captions (cached by config + captions hash)."""
    standin = merged(CLIP_STANDIN, standin_overrides)
    tokenizer = open_clip.SimpleTokenizer(context_length=standin["text_cfg"]["context_length"])

    def pretrain(out_dir):
        with standin_seed(int(standin["seed"])):
            model = standin_clip_model(standin)
            train_clip_standin(model, tokenizer, standin, env.data_root, out_dir, env.progress)

    folder = cached_pretrain("clip", standin, env.data_root, env.cache_dir, pretrain)
    model = load_standin_weights(folder, standin_clip_model(standin))
    return model.eval(), tokenizer


def clip_normalise(model, images: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1], [B, 3, H, W] → normalised with the model's own mean/std."""
    cfg = model.visual.preprocess_cfg
    mean = torch.tensor(cfg["mean"], dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(cfg["std"], dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return (images - mean) / std
