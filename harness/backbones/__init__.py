"""Shared backbones: real-checkpoint loaders and synthref stand-ins (see docs/architecture.md).

    build_clip(cfg, env) -> (open_clip CLIP, tokenizer)      harness/backbones/clip.py
    build_vit(cfg, env)  -> PatchEncoder                      harness/backbones/vit.py
    build_bert(cfg, env) -> TextEncoder                       harness/backbones/bert.py
GroupViT's loader lives in harness/backbones/groupvit.py (imported from there directly).
"""

from harness.backbones.bert import TextEncoder, build_bert
from harness.backbones.clip import build_clip, clip_normalise
from harness.backbones.vit import PatchEncoder, build_vit

__all__ = ["build_clip", "clip_normalise", "build_vit", "PatchEncoder", "build_bert", "TextEncoder"]
