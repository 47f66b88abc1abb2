"""DenseCRF post-processing of a foreground probability map (the † rows), and a process pool.

A binary fully connected CRF (pydensecrf2) over {background, foreground}: unary = −log of
[1 − p, p] (clipped), a Gaussian smoothness term and a bilateral appearance term with the image.
The defaults are the ones weakly supervised segmentation uses since DeepLab/AffinityNet/IRN:
Gaussian sxy=3, compat=3; bilateral sxy=80, srgb=13, compat=10; 10 mean-field iterations.

`CRFPool` runs the CRF for a batch in worker processes (spawn, so it is safe beside torch
threads and DDP); the runner feeds it each batch of protocol'd maps, so τ sweeps with and
without CRF come from one prediction pass.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import pydensecrf.densecrf as dcrf
from pydensecrf.utils import unary_from_softmax

from harness.errors import ConfigError


@dataclass(frozen=True)
class CRFConfig:
    """DenseCRF parameters (config keys `protocol.crf.<field>`)."""

    iterations: int = 10
    gaussian_sxy: float = 3.0
    gaussian_compat: float = 3.0
    bilateral_sxy: float = 80.0
    bilateral_srgb: float = 13.0
    bilateral_compat: float = 10.0
    prob_clip: float = 1e-5      # unary probabilities are clipped to [clip, 1] before −log

    @classmethod
    def from_dict(cls, params: Optional[dict]) -> "CRFConfig":
        """Build from a config dict; unknown keys raise a ConfigError naming them."""
        params = dict(params or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ConfigError(f"protocol.crf: unknown key(s) {unknown}; expected some of {sorted(known)}")
        config = cls(**params)
        if int(config.iterations) < 1:
            raise ConfigError(f"protocol.crf.iterations = {config.iterations}: expected an integer ≥ 1")
        if not 0.0 < float(config.prob_clip) < 0.5:
            raise ConfigError(f"protocol.crf.prob_clip = {config.prob_clip}: expected a number in (0, 0.5)")
        return config


def dense_crf(image: np.ndarray, prob: np.ndarray, config: Optional[CRFConfig] = None,
              **params) -> np.ndarray:
    """Foreground marginal after DenseCRF, float32 [H, W] in [0, 1].

    image: uint8 [H, W, 3] (RGB); prob: foreground probability [H, W] in [0, 1].
    `params` override fields of `config` (e.g. `iterations=5`).
    """
    config = CRFConfig.from_dict({**dataclasses.asdict(config or CRFConfig()), **params})
    image, prob = _checked_inputs(image, prob)
    height, width = prob.shape
    two_class = np.stack([1.0 - prob, prob])  # [2, H, W]
    unary = unary_from_softmax(two_class, clip=config.prob_clip)  # [2, H*W] float32
    crf = dcrf.DenseCRF2D(width, height, 2)
    crf.setUnaryEnergy(np.ascontiguousarray(unary))
    crf.addPairwiseGaussian(sxy=config.gaussian_sxy, compat=config.gaussian_compat)
    crf.addPairwiseBilateral(sxy=config.bilateral_sxy, srgb=config.bilateral_srgb,
                             rgbim=image, compat=config.bilateral_compat)
    marginals = np.asarray(crf.inference(int(config.iterations)), dtype=np.float32)  # [2, H*W]
    return marginals[1].reshape(height, width)  # [H, W]


def _checked_inputs(image, prob) -> tuple[np.ndarray, np.ndarray]:
    image = np.asarray(image)
    prob = np.asarray(prob, dtype=np.float32)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"DenseCRF needs a uint8 [H, W, 3] image, got {image.dtype} {image.shape}")
    if prob.shape != image.shape[:2]:
        raise ValueError(f"probability map {prob.shape} does not match the image {image.shape[:2]}")
    # pydensecrf takes a writable C-contiguous buffer: arrays read from PIL are read-only, and a
    # strided view (e.g. a BGR→RGB flip) would be read as garbage.
    return np.require(image, requirements=["C", "W"]), np.clip(prob, 0.0, 1.0)


def _crf_task(args) -> np.ndarray:
    image, prob, config = args
    return dense_crf(image, prob, config)


def available_cpus() -> int:
    """CPUs this process may run on (the affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class CRFPool:
    """DenseCRF over a batch in `workers` processes; `workers=1` runs inline (no processes).

    Use as a context manager or call `close()`: the processes start on the first `map` and are
    kept for the next batches.
    """

    def __init__(self, workers: Optional[int] = None, config: Optional[CRFConfig | dict] = None):
        workers = available_cpus() if workers is None else workers
        if int(workers) < 1:
            raise ConfigError(f"CRF workers = {workers}: expected an integer ≥ 1")
        self.workers = int(workers)
        self.config = config if isinstance(config, CRFConfig) else CRFConfig.from_dict(config)
        self._pool = None

    def map(self, images: Sequence[np.ndarray], probs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """DenseCRF of each (image uint8 [H, W, 3], prob [H, W]) pair, in order."""
        if len(images) != len(probs):
            raise ValueError(f"{len(images)} images for {len(probs)} probability maps")
        tasks = [(image, prob, self.config) for image, prob in zip(images, probs)]
        if self.workers == 1 or len(tasks) <= 1:
            return [_crf_task(task) for task in tasks]
        if self._pool is None:
            self._pool = multiprocessing.get_context("spawn").Pool(self.workers)
        chunk = max(1, len(tasks) // (self.workers * 4))
        return self._pool.map(_crf_task, tasks, chunksize=chunk)

    def close(self) -> None:
        """Stop the worker processes (if any were started)."""
        if self._pool is not None:
            self._pool.close()
            self._pool.join()
            self._pool = None

    def __enter__(self) -> "CRFPool":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
