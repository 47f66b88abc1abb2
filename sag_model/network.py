"""The SaG network: backbones + Phi (entity discovery) + Psi (fusion) + reconstruction decoder.

`SaGNet.forward(images, texts)` returns the training losses (so DDP can wrap it);
`SaGNet.attention(images, texts)` returns the two maps inference combines: A_slot [B, K, N] of
the last iteration and A_fuse [B, K] of each image with its own text.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from harness import distributed
from harness.errors import ConfigError
from sag_model.decoder import SpatialBroadcastDecoder
from sag_model.entity_discovery import AGGREGATIONS, SLOT_GRADS, SLOT_TYPES, EntityDiscovery
from sag_model.fusion import ModalityFusion
from sag_model.losses import c3_loss, reconstruction_loss, total_loss


def _choice(cfg: dict, key: str, allowed, default, section: str = "method"):
    value = cfg.get(key, default)
    if value not in allowed:
        raise ConfigError(f"{section}.{key}={value!r}: expected one of {', '.join(map(str, allowed))}")
    return value


def _positive_int(cfg: dict, key: str, default: int, section: str = "method") -> int:
    value = cfg.get(key, default)
    if not isinstance(value, int) or value < 1:
        raise ConfigError(f"{section}.{key}={value!r}: expected a positive integer")
    return value


def _nonnegative_float(cfg: dict, key: str, default: float, section: str = "method") -> float:
    value = cfg.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ConfigError(f"{section}.{key}={value!r}: expected a number >= 0")
    return float(value)


class SaGNet(nn.Module):
    def __init__(self, vit: nn.Module, bert: nn.Module, cfg: dict):
        super().__init__()
        slots = dict(cfg.get("slots", {}))
        slot_type = _choice(slots, "type", SLOT_TYPES, "entity", "method.slots")
        groups = _positive_int(slots, "groups", 12, "method.slots")
        samples = _positive_int(slots, "samples", 3, "method.slots")
        dim = _positive_int(cfg, "dim", 512)
        self.recon_weight = float(cfg.get("recon_weight", 1.0))
        self.temperature = float(cfg.get("temperature", 1.0))
        self.vit, self.bert = vit, bert
        self.text_proj = nn.Linear(bert.hidden_size, dim)
        self.discovery = EntityDiscovery(
            vit.embed_dim, dim, groups, samples, iterations=_positive_int(cfg, "T", 6), slot_type=slot_type,
            interaction=bool(cfg.get("interaction", True)),
            aggregation=_choice(cfg, "aggregation", AGGREGATIONS, "slot"),
            cross_heads=cfg.get("cross_heads", 4), cross_dim_head=cfg.get("cross_dim_head", 256),
            self_heads=cfg.get("self_heads", 4), self_dim_head=cfg.get("self_dim_head", 128),
            ff_mult=cfg.get("ff_mult", 4), dropout=cfg.get("dropout", 0.1),
            var_scaling=float(slots.get("var_scaling", 1.0)),
            slot_grad=_choice(cfg, "slot_grad", SLOT_GRADS, "all"))
        self.fusion = ModalityFusion(dim, cfg.get("fusion_heads", 4), cfg.get("fusion_dim_head", 256),
                                     cfg.get("ff_mult", 4), cfg.get("dropout", 0.1),
                                     text_residual=_nonnegative_float(cfg, "fusion_text_residual", 1.0))
        # Without reconstruction (lambda_rec = 0) the decoder would be dead weight: not built.
        self.decoder = (SpatialBroadcastDecoder(dim, vit.embed_dim, cfg.get("decoder_hidden", 512))
                        if self.recon_weight else None)

    @property
    def grid(self) -> tuple[int, int]:
        return tuple(self.vit.grid)

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        """e_t [B, D]: the projected [CLS] token, not normalised."""
        device = self.text_proj.weight.device
        tokens = {k: v.to(device) for k, v in self.bert.tokenize(texts).items()}
        hidden = self.bert(**tokens)                                                # [B, L, H]
        return self.text_proj(hidden[:, 0])                                         # [B, D]

    def discover(self, images: torch.Tensor, use_mean: bool = False,
                 generator: Optional[torch.Generator] = None):
        """(patch features F [B, N, C], DiscoveryOutput)."""
        # A frozen ViT (train.vit_lr_scale=0) runs without a graph: its backward is most of the cost.
        trainable = torch.is_grad_enabled() and any(p.requires_grad for p in self.vit.parameters())
        with torch.set_grad_enabled(trainable):
            features = self.vit(images)                                             # [B, N, C]
        return features, self.discovery(features, self.grid, use_mean=use_mean, generator=generator)

    def forward(self, images: torch.Tensor, texts: list[str]) -> dict:
        features, found = self.discover(images)
        text = self.encode_text(texts)                                              # [B, D]
        # C3's negatives are every rank's images: local texts x all slots (gradients reach each
        # rank's own slots through the gather), each rank its texts' share of the loss.
        slots = distributed.gather_with_grad(found.slots)                           # [B_all, K, D]
        fused, _ = self.fusion(text, slots, all_pairs=True)                         # [B_all, B_t, D]
        first = distributed.local_rows(len(texts)).start                            # global row of text 0
        losses = {"c3": c3_loss(text, fused, self.temperature, first_image=first)}
        if self.decoder is not None:
            recon, _ = self.decoder(found.slots, self.grid)                         # [B, N, C]
            losses["rec"] = reconstruction_loss(recon, features)
        else:
            losses["rec"] = torch.zeros((), device=features.device)
        losses["total"] = total_loss(losses["c3"], losses["rec"], self.recon_weight)
        return losses

    @torch.no_grad()
    def attention(self, images: torch.Tensor, texts: list[str], use_mean: bool = False,
                  generator: Optional[torch.Generator] = None):
        """(A_slot [B, K, N], A_fuse [B, K]) for each image with its own text."""
        _, found = self.discover(images, use_mean=use_mean, generator=generator)
        _, attn_fuse = self.fusion(self.encode_text(texts), found.slots, all_pairs=False)
        return found.attn_slot, attn_fuse
