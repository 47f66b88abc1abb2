"""The interface every method implements (DESIGN.md §3) and what the runner hands it.

The runner calls, in order: `Segmenter(cfg, env)`, `fit(train, train_cfg, seed, ctx)` unless
`cfg["finetune"]` is False, `prepare_eval(dataset)` once per eval split, then
`predict(images, texts, samples)` per batch. Images reach `predict` as float [B, 3, S, S] in
[0, 1], squashed to `input_size` (S); each method applies its own normalisation. τ, resizing
to the original image, min-max and CRF are the runner's, never a method's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch

from harness.data.types import RefDataset, RefSample


@dataclass
class RunEnv:
    """Where a run is: not part of the config hash (moving the data does not change results)."""

    dataset: str                 # e.g. "synthref", "refcoco"
    data_root: Path              # the dataset's folder (synthref: holds captions.json, vocab.txt)
    cache_dir: Path              # stand-in pretraining cache, shared by seeds and methods
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    progress: bool = True
    workers: int = 0             # DataLoader worker processes decoding images (0: this process)


class Segmenter:
    """Base class. Subclasses register with `@SEGMENTERS.register_module("name")`."""

    # Method config keys that change only prediction, never `fit` (SaG: its inference scheme).
    # Runs that differ only in these share one trained model (harness/run/runner.py `fit_hash`).
    EVAL_ONLY_KEYS: tuple[str, ...] = ()
    # A method from outside the harness may ship its configs: `<CONFIG_DIR>/<name>.py` (synthref
    # family) and `<name>_refcoco.py` (real data) are read when configs/ has none (harness/config.py).
    CONFIG_DIR: Optional[Path] = None

    def __init__(self, cfg: dict, env: RunEnv):
        self.cfg = cfg
        self.env = env
        self.input_size = int(cfg.get("input_size", 64))

    @property
    def finetune(self) -> bool:
        return bool(self.cfg.get("finetune", True))

    def fit(self, train: RefDataset, train_cfg: dict, seed: int, ctx: "FitContext") -> dict:
        """Train from image–text pairs of `train` (which exposes no masks). Returns a training log.

        Methods train through harness/run/fit_loop.py, handing it their loss and parameter groups;
        `ctx` is its `FitContext` (training state, device, progress bar)."""
        raise NotImplementedError

    def prepare_eval(self, dataset: RefDataset) -> None:
        """Called once before predicting on `dataset` (default: nothing to do)."""
    def predict(self, images: torch.Tensor, texts: list[str],
                samples: Optional[list[RefSample]] = None) -> torch.Tensor:
        """Score maps [B, h, w] in [0, 1] for images [B, 3, S, S] in [0, 1].

        A list of B maps [h_i, w_i] is accepted too (e.g. an oracle answering at original size).
        """
        raise NotImplementedError

    def explain(self, image: torch.Tensor, text: str) -> dict:
        raise NotImplementedError(f"{type(self).__name__} offers no explanation")

    def reseed_inference(self, draw: int) -> bool:
        """Re-seed test-time sampling for evaluation draw `draw` (1, 2, …; draw 0 is the run's
        own pass, left as it is). Return False when predictions do not depend on any sampling
        (the default): the runner then evaluates no further draws (`protocol.inference_draws`).
        A method that samples at test time (SaG's slots) re-seeds and returns True."""
        return False

    def modules(self) -> dict[str, torch.nn.Module]:
        """The trainable/checkpointed parts, by name (default: none)."""
        return {}

    def state_dict(self) -> dict:
        return {name: m.state_dict() for name, m in self.modules().items()}

    def load_state_dict(self, sd: dict) -> None:
        for name, m in self.modules().items():
            m.load_state_dict(sd[name])

    def restore_fit(self, sd: dict, seed: int) -> None:
        """Put the segmenter where `fit(..., seed)` left it, from its saved `state_dict()`.

        The runner calls this instead of `fit` when a complete stored run with the same fit hash
        (harness/run/runner.py `fit_hash`) kept its model.pt. Override it when `fit` leaves state
        outside `modules()` (SaG re-seeds its test-time sampling)."""
        self.load_state_dict(sd)
