"""Training checkpoints, one per epoch, so that a killed fit resumes where it stopped (`--resume`).

The runner builds one `TrainState` per fit (the run folder's train_state/, the config hash as tag,
`--resume`) and hands it to `fit` in its `FitContext`; the fit loop (harness/run/fit_loop.py) asks it
where to start and saves at the end of every epoch:

    state = TrainState(directory, resume=True, tag=config_hash, method="tseg", seed=seed)
    start = state.maybe_resume({"model": model}, optimizer)     # a ResumePoint
    for epoch in range(start.epoch, epochs):
        ...
        state.save(epoch + 1, step, {"model": model}, optimizer, log=log)

The file (`<run dir>/train_state/last.pt`) holds the modules' and optimiser's state dicts (the
learning rate is a function of the step: harness/run/fit_loop.py `Schedule`), the next epoch and the
global step, the loop's log, the config hash, and every rank's RNG states — python, numpy, torch
CPU and CUDA, plus any private generators the loop names (a loader's torch.Generator, a loss's
random.Random) — so the continuation draws the same dropout masks and batches as an uninterrupted
run. Every rank calls `save` (the RNG states are gathered);
rank 0 alone writes, to a temporary name that is then renamed, so a kill never leaves half a file.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from harness import distributed
from harness.errors import CheckpointError
from harness.store import save_checkpoint_atomic

STATE_FILE = "last.pt"
FORMAT_VERSION = 1
RNG_TYPES = (random.Random, np.random.Generator, torch.Generator)


@dataclass
class ResumePoint:
    """Where a fit loop starts: epoch 0 / step 0 unless a saved state was loaded."""

    epoch: int = 0                       # the first epoch still to run
    step: int = 0                        # optimiser steps already taken
    log: dict = field(default_factory=dict)   # the loop's log as saved (empty when fresh)
    resumed: bool = False


# ------------------------------------------------------------------------------------ RNG states

def _numpy_state() -> dict:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached": float(cached)}


def _set_numpy_state(saved: dict) -> None:
    keys = saved["keys"].numpy().astype(np.uint32)
    np.random.set_state((saved["name"], keys, saved["pos"], saved["has_gauss"], saved["cached"]))


def _private_state(rng):
    if isinstance(rng, random.Random):
        return rng.getstate()
    if isinstance(rng, torch.Generator):
        return rng.get_state()
    return rng.bit_generator.state  # np.random.Generator: a dict of python ints


def _set_private_state(rng, state) -> None:
    if isinstance(rng, random.Random):
        rng.setstate(state)
    elif isinstance(rng, torch.Generator):
        rng.set_state(state)
    else:
        rng.bit_generator.state = state


def rng_states(private: Optional[dict] = None) -> dict:
    """This process's RNG states (global ones and the named private generators)."""
    states = {"python": random.getstate(), "numpy": _numpy_state(), "torch": torch.get_rng_state(),
              "private": {name: _private_state(rng) for name, rng in (private or {}).items()}}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict, private: Optional[dict] = None) -> None:
    random.setstate(_as_python_state(states["python"]))
    _set_numpy_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    for name, rng in (private or {}).items():
        if name not in states["private"]:
            raise CheckpointError(f"training state holds no RNG state for {name!r}")
        _set_private_state(rng, states["private"][name])


def _as_python_state(state):
    """random.setstate wants tuples; a round trip through torch.load may give lists."""
    version, internal, gauss = state
    return version, tuple(internal), gauss


def rng_attributes(obj) -> dict:
    """The private generators an object keeps as attributes (e.g. a loss's `self.rng`), by name."""
    return {name: value for name, value in sorted(vars(obj).items()) if isinstance(value, RNG_TYPES)}


def reseed_for(seed: int, epoch: int) -> None:
    """Fresh RNG streams from (seed, epoch, rank): used only when a state saved under another
    world size cannot give every rank its own stream back."""
    value = (int(seed) * 1_000_003 + int(epoch) * 101 + distributed.rank()) % 2**32
    random.seed(value)
    np.random.seed(value)
    torch.manual_seed(value)


# ------------------------------------------------------------------------------------ the state

class TrainState:
    """Per-epoch checkpoints of one fit in `directory` (None: checkpointing off)."""

    def __init__(self, directory, resume: bool = False, tag: str = "", method: str = "",
                 seed: int = 0):
        self.directory = Path(directory) if directory else None
        self.resume, self.tag, self.method, self.seed = bool(resume), str(tag), method, int(seed)

    @property
    def path(self) -> Optional[Path]:
        return self.directory / STATE_FILE if self.directory else None

    def save(self, epoch: int, step: int, modules: dict, optimizer, log: Optional[dict] = None,
             private_rngs: Optional[dict] = None) -> None:
        """Checkpoint after `epoch` epochs (the next to run) and `step` steps. Every rank calls it."""
        if self.directory is None:
            return
        all_rngs = distributed.all_gather_objects(rng_states(private_rngs))  # one per rank
        if distributed.is_main():

            document = {
                "format": FORMAT_VERSION, "tag": self.tag, "method": self.method,
                "seed": self.seed, "epoch": int(epoch), "step": int(step),
                "modules": {name: distributed.unwrap(m).state_dict() for name, m in modules.items()},
                "optimizer": optimizer.state_dict(),
                "log": dict(log or {}), "rng": all_rngs,
            }
            save_checkpoint_atomic(self.path, document)
        distributed.barrier()  # no rank runs ahead of a checkpoint that is not on disk yet

    def maybe_resume(self, modules: dict, optimizer, private_rngs: Optional[dict] = None) -> ResumePoint:
        """Load the saved state into the given objects when resuming and one exists."""
        if not self.resume or self.path is None or not self.path.is_file():
            if self.resume and distributed.is_main():
                print(f"resume {self.method} seed {self.seed}: no training state yet, "
                      "starting from epoch 0", flush=True)
            return ResumePoint()
        saved = self._read()
        self._load_modules(saved, modules)
        optimizer.load_state_dict(saved["optimizer"])
        self._restore_rngs(saved, private_rngs)
        if distributed.is_main():
            print(f"resume {self.method} seed {self.seed}: from epoch {saved['epoch']} "
                  f"(step {saved['step']}) of {self.path}", flush=True)
        return ResumePoint(saved["epoch"], saved["step"], dict(saved.get("log") or {}), True)

    def _read(self) -> dict:
        try:
            saved = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a foreign or damaged file: name it rather than train on
            raise CheckpointError(f"{self.path}: cannot be read as a training state ({exc}); "
                                  "delete it or run without --resume") from exc
        if not isinstance(saved, dict) or saved.get("format") != FORMAT_VERSION:
            raise CheckpointError(f"{self.path}: not a training state of this harness "
                                  f"(format {FORMAT_VERSION} expected)")
        if saved.get("tag") != self.tag:
            raise CheckpointError(
                f"{self.path}: saved for config hash {saved.get('tag')!r}, this run's is "
                f"{self.tag!r}; run without --resume to train this config from the start")
        return saved

    def _load_modules(self, saved: dict, modules: dict) -> None:
        missing = sorted(set(modules) - set(saved["modules"]))
        if missing:
            raise CheckpointError(f"{self.path}: holds no state for module(s) {', '.join(missing)}")
        for name, module in modules.items():
            distributed.unwrap(module).load_state_dict(saved["modules"][name])

    def _restore_rngs(self, saved: dict, private_rngs: Optional[dict]) -> None:
        per_rank = saved["rng"]
        if len(per_rank) == distributed.world_size():
            set_rng_states(per_rank[distributed.rank()], private_rngs)
            return
        if distributed.is_main():
            print(f"resume {self.method} seed {self.seed}: saved with {len(per_rank)} process(es), "
                  f"resumed with {distributed.world_size()}: model and optimiser are exact, random "
                  "streams are re-seeded from (seed, epoch, rank)", flush=True)
        set_rng_states(per_rank[0], private_rngs)
        reseed_for(self.seed, saved["epoch"])
