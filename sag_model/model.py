"""SaG — Shatter and Gather (ICCV 2023), the registered segmenter `sag`.

Score map (spec A.7): M[p] = sum_s A_fuse[s] * A_slot[s, p] from the last iteration, head-averaged,
on the patch grid; in [0, 1] because both factors are normalised over the slots. The paper's
Table 3 inference schemes are `inference: avg | max | min`; `eval_slots: mean` uses the Gaussian
means at test time instead of the release's sampling.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from harness.backbones.bert import build_bert
from harness.backbones.vit import build_vit
from harness.errors import ConfigError
from harness.registry import SEGMENTERS
from harness.run.fit_loop import FitContext
from harness.seeding import seed_everything
from harness.segmenter import RunEnv, Segmenter
from sag_model.network import SaGNet
from sag_model.training import fit_sag

INFERENCE_SCHEMES = ("ours", "avg", "max", "min")
EVAL_SLOTS = ("sample", "mean")
INFERENCE_DRAW_STRIDE = 1_000_003   # draw d samples from seed + d × this (a prime, far from seeds)


def build_backbones(cfg: dict, env: RunEnv):
    """(PatchEncoder, TextEncoder) from `method.vit` and `method.bert` via harness.backbones."""
    for key in ("vit", "bert"):
        if not isinstance(cfg.get(key), dict):
            raise ConfigError(f"method.{key}: expected a dict describing the backbone (checkpoint or standin)")
    return build_vit(dict(cfg["vit"]), env), build_bert(dict(cfg["bert"]), env)


def combine_attention(attn_slot: torch.Tensor, attn_fuse: torch.Tensor, scheme: str = "ours") -> torch.Tensor:
    """Score per patch [B, N] from A_slot [B, K, N] and A_fuse [B, K] (paper Table 3 schemes)."""
    if scheme == "ours":
        return torch.einsum("bk,bkn->bn", attn_fuse, attn_slot)
    if scheme == "avg":
        return attn_slot.mean(dim=1)
    pick = attn_fuse.argmax(dim=1) if scheme == "max" else attn_fuse.argmin(dim=1)  # [B]
    return attn_slot[torch.arange(attn_slot.shape[0], device=pick.device), pick]


@SEGMENTERS.register_module("sag")
class SaG(Segmenter):
    # The inference scheme (Table 3), whether test-time slots are sampled or the Gaussian means,
    # and the test-time sampling seed: none of them is read by `fit`.
    EVAL_ONLY_KEYS = ("inference", "eval_slots", "eval_seed")

    def __init__(self, cfg: dict, env: RunEnv, backbones=None):
        """`backbones=(vit, bert)` skips the builders (tests hand in tiny modules)."""
        super().__init__(cfg, env)
        self.inference = cfg.get("inference", "ours")
        self.eval_slots = cfg.get("eval_slots", "sample")
        if self.inference not in INFERENCE_SCHEMES:
            raise ConfigError(f"method.inference={self.inference!r}: expected one of {', '.join(INFERENCE_SCHEMES)}")
        if self.eval_slots not in EVAL_SLOTS:
            raise ConfigError(f"method.eval_slots={self.eval_slots!r}: expected one of {', '.join(EVAL_SLOTS)}")
        vit, bert = backbones if backbones is not None else build_backbones(cfg, env)
        self.net = SaGNet(vit, bert, cfg).to(env.device).eval()
        self.reseed_eval(int(cfg.get("eval_seed", 0)))

    def reseed_eval(self, seed: int) -> None:
        """Test-time slot sampling draws from its own generator, so predictions depend on the
        seed and the order of calls only (not on whatever else used the global RNG)."""
        self._eval_seed = seed
        self._eval_gen = torch.Generator(device=self.env.device)
        self._eval_gen.manual_seed(seed)

    def reseed_inference(self, draw: int) -> bool:
        """Evaluation draw `draw` samples the slots from a generator of its own, derived from
        the run's test-time seed (draw 0 keeps the run's own: its figures are the run's).
        With eval_slots="mean" nothing is sampled: no further draws."""
        if self.eval_slots == "mean":
            return False
        self._eval_gen = torch.Generator(device=self.env.device)
        self._eval_gen.manual_seed(self._eval_seed + INFERENCE_DRAW_STRIDE * draw)
        return True

    def modules(self) -> dict:
        return {"net": self.net}

    def fit(self, train, train_cfg: dict, seed: int, ctx: FitContext) -> dict:
        seed_everything(seed)
        log = fit_sag(self.net, train, train_cfg, seed, self.input_size, ctx)
        self.reseed_eval(seed)
        return log

    def restore_fit(self, sd: dict, seed: int) -> None:
        self.load_state_dict(sd)
        self.reseed_eval(seed)

    def _attention(self, images: torch.Tensor, texts: list[str]):
        self.net.eval()
        return self.net.attention(images.to(self.env.device), list(texts),
                                  use_mean=self.eval_slots == "mean", generator=self._eval_gen)

    def predict(self, images: torch.Tensor, texts: list[str], samples: Optional[list] = None) -> torch.Tensor:
        attn_slot, attn_fuse = self._attention(images, texts)                       # [B,K,N], [B,K]
        score = combine_attention(attn_slot, attn_fuse, self.inference)            # [B, N]
        h, w = self.net.grid
        return score.reshape(-1, h, w).clamp(0.0, 1.0).cpu()                       # [B, h, w]

    def explain(self, image: torch.Tensor, text: str) -> dict:
        """score [h, w] and every slot as dict(map [h, w] = its A_slot row, relevance = A_fuse,
        slot, gaussian), sorted by relevance (highest first)."""
        attn_slot, attn_fuse = self._attention(image[None], [text])
        h, w = self.net.grid
        score = combine_attention(attn_slot, attn_fuse, self.inference)[0].reshape(h, w)
        slots = self.net.discovery.slots
        entities = [dict(map=attn_slot[0, k].reshape(h, w).cpu().numpy(), relevance=float(attn_fuse[0, k]),
                         slot=k, gaussian=slots.gaussian_of(k)) for k in range(attn_slot.shape[1])]
        entities.sort(key=lambda e: -e["relevance"])
        return dict(score=score.clamp(0, 1).cpu().numpy().astype(np.float32), entities=entities)
