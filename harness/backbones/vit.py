"""ViT patch encoder for SaG and TSEG: a timm ViT from a local checkpoint, or the synthref stand-in.

`build_vit(cfg, env) -> PatchEncoder`: forward(images in [0, 1], [B, 3, H, W]) → patch tokens
[B, N, C] after the final LayerNorm, class token dropped; `.embed_dim` (C) and `.grid` (h, w at
the configured image size). Normalisation with the checkpoint's mean/std happens inside. Other
input sizes (multiples of the patch size) work too: positional embeddings are interpolated.

cfg keys (the method config's ViT section):
    checkpoint      local weights: AugReg `.npz` (timm's JAX loader), `.pth`/`.bin`/`.pt` state
                    dict or `.safetensors`. Given → real path; absent/None → the synthref stand-in.
    arch            timm architecture for the real path (default "vit_small_patch16_384").
    img_size        input size the model is built for (default 384; pos-embed resampled on load).
    drop_path_rate  stochastic depth while fine-tuning (default 0.1; either path).
    mean, std       the checkpoint's normalisation (default 0.5/0.5, AugReg's).
    standin         overrides of `VIT_STANDIN` below: the tiny ViT's sizes (`img_size`,
                    `patch_size`, `embed_dim`, `depth`, `num_heads`, `local_radius`: None for
                    global attention, r to confine a patch's to r grid steps) and its multi-label
                    pretraining (`steps`, `batch_size`, `lr`, `weight_decay`, `warmup`, `seed`).
With no checkpoint and no `captions.json` under `env.data_root`: CheckpointError.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import timm
import torch
from timm.models.vision_transformer import VisionTransformer, _load_weights, checkpoint_filter_fn
from torch import nn

from harness.backbones.local_attention import attach_local_attention, check_radius
from harness.backbones.pretrain_cache import cached_pretrain
from harness.backbones.standin_training import load_standin_weights, merged, standin_seed
from harness.backbones.standin_vit import train_vit_standin
from harness.backbones.state_dicts import (first_line, raise_on_mismatch, read_state_dict,
                                           require_path, size_mismatches)
from harness.errors import CheckpointError, UnknownNameError

# The ImageNet stand-in: a tiny ViT taught which colour/shape/size words a scene holds, with the
# per-patch scores pooled by a log-sum-exp mean (standin_vit.py). 4-px patches: a 16×16 grid.
VIT_STANDIN = dict(img_size=64, patch_size=4, embed_dim=64, depth=3, num_heads=2, local_radius=None,
                   pool="lse", pool_temperature=0.5,
                   steps=300, batch_size=32, lr=1e-3, weight_decay=0.05, warmup=20, seed=0)
ARCH_KEYS = ("img_size", "patch_size", "embed_dim", "depth", "num_heads")
# Keys of the classifier head: checkpoints carry one, the patch encoder has none.
HEAD_PREFIXES = ("head.", "fc_norm.", "pre_logits.")
_BLOCK_NAME = re.compile(r"Transformer/encoderblock_(\d+)/")


class PatchEncoder(nn.Module):
    """A timm VisionTransformer that returns normalised patch tokens [B, N, C] (no class token)."""

    def __init__(self, vit: VisionTransformer, mean, std):
        super().__init__()
        self.vit = vit
        self.embed_dim = vit.embed_dim
        self.grid = tuple(vit.patch_embed.grid_size)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        tokens = self.vit.forward_features((images - self.mean) / self.std)  # [B, P + N, C], after norm
        return tokens[:, self.vit.num_prefix_tokens:]  # [B, N, C]


def build_vit(cfg: dict, env) -> PatchEncoder:
    """PatchEncoder from `cfg["checkpoint"]`, else the synthref stand-in (pretrained and cached)."""
    if cfg.get("checkpoint"):
        return load_real_vit(cfg)
    return build_standin_vit(cfg, env)


def load_real_vit(cfg: dict) -> PatchEncoder:
    """timm `cfg["arch"]` (built without weights) with the weights of the local `cfg["checkpoint"]`."""
    arch = cfg.get("arch", "vit_small_patch16_384")
    path = require_path(cfg["checkpoint"], f"ViT checkpoint for {arch}")
    if not timm.is_model(arch):
        raise UnknownNameError("timm architecture", arch, timm.list_models("vit_*"))
    # timm's own init is skipped (slow, and overwritten): every weight must then come from the file.
    vit = timm.create_model(arch, pretrained=False, num_classes=0, img_size=cfg.get("img_size", 384),
                            drop_path_rate=cfg.get("drop_path_rate", 0.1), dynamic_img_size=True,
                            weight_init="skip")
    if path.suffix == ".npz":
        _load_npz(vit, path, arch)
    else:
        load_vit_state(vit, read_state_dict(path), path, arch)
    encoder = PatchEncoder(vit, cfg.get("mean", (0.5,) * 3), cfg.get("std", (0.5,) * 3)).eval()
    encoder.harness_load_info = dict(path=str(path), arch=arch, source="jax-npz" if path.suffix == ".npz" else "torch")
    return encoder


def _load_npz(vit: VisionTransformer, path: Path, arch: str) -> None:
    """timm's own reader of Google's JAX checkpoints (AugReg's vit_jax layout or big_vision's),
    after checking the file holds as many encoder blocks as the model: the reader copies blocks
    one by one and would leave a deeper file's last blocks out without a word."""
    blocks = _npz_block_count(path)
    if blocks is not None and blocks != len(vit.blocks):
        raise CheckpointError(f"{path}: does not match timm {arch}: the file holds {blocks} encoder blocks, "
                              f"the model {len(vit.blocks)}")
    try:
        _load_weights(vit, str(path))
    except KeyError as exc:  # the JAX loader looks keys up one by one
        raise CheckpointError(f"{path}: does not match timm {arch}: missing key {exc}") from exc
    except Exception as exc:
        raise CheckpointError(f"{path}: cannot be loaded as timm {arch} ({first_line(exc)})") from exc


def _npz_block_count(path: Path) -> int | None:
    """Encoder blocks in a JAX checkpoint: `encoderblock_<i>/` entries, or the leading axis of
    big_vision's stacked `encoderblock/` arrays; None when the file has neither (reported later)."""
    try:
        with np.load(path) as npz:
            names = list(npz.files)
            stacked = [n for n in names if "Transformer/encoderblock/LayerNorm_0/scale" in n]
            if stacked:
                return int(npz[stacked[0]].shape[0])
    except Exception as exc:
        raise CheckpointError(f"{path}: cannot be read as a .npz file ({first_line(exc)})") from exc
    indices = {int(m.group(1)) for m in map(_BLOCK_NAME.search, names) if m}
    return len(indices) if indices else None


def load_vit_state(vit: VisionTransformer, state: dict, path: Path, arch: str) -> None:
    """Load a torch state dict: classifier head dropped, pos-embed resampled, every other key must fit."""
    state = {k: v for k, v in state.items() if not k.startswith(HEAD_PREFIXES)}
    try:
        state = checkpoint_filter_fn(state, vit)  # resamples pos_embed / patch_embed to this size
    except Exception as exc:
        raise CheckpointError(f"{path}: cannot be adapted to timm {arch} ({first_line(exc)})") from exc
    shapes = size_mismatches(vit, state)
    if shapes:
        raise CheckpointError(f"{path}: does not match timm {arch}: {len(shapes)} size mismatches, e.g. "
                              + "; ".join(shapes[:3]))
    incompatible = vit.load_state_dict(state, strict=False)
    raise_on_mismatch(path, f"timm {arch}", incompatible.missing_keys, incompatible.unexpected_keys)


def standin_vit(standin: dict, drop_path_rate: float = 0.0, init: bool = True) -> VisionTransformer:
    """A tiny ViT (no classifier) of the stand-in's sizes; timm-initialised unless weights follow."""
    vit = VisionTransformer(num_classes=0, drop_path_rate=drop_path_rate, dynamic_img_size=True,
                            weight_init="" if init else "skip", **{k: standin[k] for k in ARCH_KEYS})
    radius = check_radius(standin.get("local_radius"), "method.vit.standin.local_radius")
    if radius is not None:
        attach_local_attention(vit.blocks, radius, prefix=vit.num_prefix_tokens)
    return vit


def build_standin_vit(cfg: dict, env) -> PatchEncoder:
    """The tiny ViT pretrained on `env.data_root`'s captions as multi-label targets (cached)."""
    standin = merged(VIT_STANDIN, cfg.get("standin"))
    mean, std = cfg.get("mean", (0.5,) * 3), cfg.get("std", (0.5,) * 3)

    def pretrain(out_dir):
        with standin_seed(int(standin["seed"])):
            encoder = PatchEncoder(standin_vit(standin), mean, std)
            train_vit_standin(encoder, standin, env.data_root, out_dir, env.progress)

    folder = cached_pretrain("vit", dict(standin, mean=list(mean), std=list(std)), env.data_root,
                             env.cache_dir, pretrain)
    encoder = PatchEncoder(standin_vit(standin, cfg.get("drop_path_rate", 0.1), init=False), mean, std)
    return load_standin_weights(folder, encoder).eval()
