"""`tiny_probe`: a small trainable segmenter for the distributed and resilience tests.

Its loss is a MEAN OVER SAMPLES (each expression reconstructs its own words from the image region
its text attends to), so DDP with a per-rank batch of B/N gives the one-process update with batch
B exactly. The contrastive losses of MaskCLIP/TSEG/GroupViT/SaG are not decomposable that way
(each sample's term depends on the other samples of its batch), so equality across world sizes
is tested here. It computes in float64, so the summation order of a gradient all-reduce cannot
flip a thresholded pixel. Dropout makes the RNG state part of what a resumed fit must restore.

Test knobs: `method.dropout`, `method.nan_at_step` (the loss becomes NaN at that optimiser step),
and the environment variable TINY_PROBE_STEP_SLEEP (seconds per training step; not in the config
hash, so a slowed run and a normal one share a store entry).

Run as a script it is `python -m harness` with this method registered and only the floors
besides it: `python tests/tiny_segmenter.py run --methods tiny_probe --config FILE ...`
(PYTHONPATH must hold the repository root); `torchrun ... tests/tiny_segmenter.py run ...` too.
"""

from __future__ import annotations

import os
import sys
import time
import zlib
from pathlib import Path

import torch
import torch.nn.functional as F

from harness import distributed
from harness.registry import SEGMENTERS
from harness.segmenter import Segmenter

VOCAB = 64          # hashed word buckets
DTYPE = torch.float64


def word_buckets(text: str) -> list[int]:
    return [zlib.crc32(word.encode()) % VOCAB for word in text.lower().split()]


def pixel_features(images: torch.Tensor) -> torch.Tensor:
    """RGB plus x/y coordinates: [B, 3, S, S] → [B, 5, S, S] in float64."""
    b, _, h, w = images.shape
    ys = torch.linspace(0, 1, h, dtype=DTYPE).view(1, 1, h, 1).expand(b, 1, h, w)
    xs = torch.linspace(0, 1, w, dtype=DTYPE).view(1, 1, 1, w).expand(b, 1, h, w)
    return torch.cat([images.to(DTYPE), ys, xs], dim=1)


class ProbeNet(torch.nn.Module):
    def __init__(self, hidden: int, dropout: float):
        super().__init__()
        self.words = torch.nn.EmbeddingBag(VOCAB, hidden, mode="mean").to(DTYPE)
        self.pixels = torch.nn.Conv2d(5, hidden, 1).to(DTYPE)
        self.reconstruct = torch.nn.Linear(5, VOCAB).to(DTYPE)
        self.dropout = torch.nn.Dropout(dropout)

    def text_embedding(self, texts: list[str]) -> torch.Tensor:
        buckets = [word_buckets(t) for t in texts]
        flat = torch.tensor([k for b in buckets for k in b], dtype=torch.long)
        offsets = torch.tensor([0] + [len(b) for b in buckets[:-1]]).cumsum(0)
        return self.dropout(self.words(flat, offsets))  # [B, D]

    def logits(self, images: torch.Tensor, texts: list[str]) -> torch.Tensor:
        feats = torch.tanh(self.pixels(pixel_features(images)))  # [B, D, S, S]
        text = self.text_embedding(texts)  # [B, D]
        return torch.einsum("bdhw,bd->bhw", feats, text) / feats.shape[1] ** 0.5  # [B, S, S]


class ProbeLoss(torch.nn.Module):
    """Mean over samples of the BCE of reconstructing the expression's words (no masks)."""

    def __init__(self, net: ProbeNet, nan_at_step):
        super().__init__()
        self.net = net
        self.nan_at_step = nan_at_step
        self.calls = 0

    def forward(self, images, texts, image_ids):
        sleep = float(os.environ.get("TINY_PROBE_STEP_SLEEP", "0") or 0)
        if sleep:
            time.sleep(sleep)
        logits = self.net.logits(images, texts)  # [B, S, S]
        attention = logits.flatten(1).softmax(dim=1)  # [B, S*S]
        region = torch.einsum("bn,bcn->bc", attention, pixel_features(images).flatten(2))  # [B, 5]
        target = torch.zeros(len(texts), VOCAB, dtype=DTYPE)
        for row, text in enumerate(texts):
            target[row, word_buckets(text)] = 1.0
        loss = F.binary_cross_entropy_with_logits(self.net.reconstruct(region), target)
        if self.nan_at_step is not None and self.calls == int(self.nan_at_step):
            loss = loss * float("nan")
        self.calls += 1
        return loss


@SEGMENTERS.register_module("tiny_probe", force=True)
class TinyProbe(Segmenter):
    """cfg keys: input_size, hidden, dropout, nan_at_step."""

    def __init__(self, cfg, env):
        super().__init__(cfg, env)
        self.net = ProbeNet(int(cfg.get("hidden", 16)), float(cfg.get("dropout", 0.0)))

    def modules(self):
        return {"net": self.net}

    def fit(self, train, train_cfg, seed, ctx):
        from harness.run.fit_loop import base_lr, fine_tune_recipe, fit_epochs, plan_epochs

        with torch.random.fork_rng(devices=[]):  # the init depends on the run seed only
            torch.manual_seed(seed)
            self.net = ProbeNet(int(self.cfg.get("hidden", 16)), float(self.cfg.get("dropout", 0.0)))
        plan = plan_epochs(train_cfg, len(train))
        recipe = fine_tune_recipe(train_cfg, [{"params": list(self.net.parameters()), "lr": base_lr(train_cfg)}],
                                  plan.total_steps)
        log = fit_epochs("tiny_probe", ProbeLoss(self.net, self.cfg.get("nan_at_step")), recipe,
                         train, plan, seed, self.input_size, ctx)
        return dict(log, world_size=distributed.world_size())

    @torch.no_grad()
    def predict(self, images, texts, samples=None):
        self.net.eval()
        return torch.sigmoid(self.net.logits(images, texts)).float()  # [B, S, S]


def write_config(path: Path, **train) -> Path:
    """A config file for tiny_probe on the synthref family (`--config PATH`)."""
    base = Path(__file__).resolve().parent.parent / "configs" / "_base_" / "synthref.py"
    train = {"batch_size": 8, "lr": 0.05, "epochs": 2, "schedule": "cosine", "weight_decay": 0.0,
             "warmup_steps": 0, **train}
    path.write_text(f"_base_ = [{str(base)!r}]\n"
                    "method = dict(type='tiny_probe', input_size=16, hidden=16, dropout=0.0)\n"
                    f"train = dict(**{train!r})\n"
                    "runtime = dict(eval_batch_size=16)\n")
    return path


def main(argv) -> int:
    from harness import registry
    from harness.cli import main as harness_main

    registry.METHOD_MODULES = ("harness.reference_segmenters",)  # the floors and this method
    return harness_main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
