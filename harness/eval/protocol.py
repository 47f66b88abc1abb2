"""The runner's protocol from a method's score map to the maps the evaluator thresholds (DESIGN §5).

For every method alike: bilinear resize to the original image size (align_corners=False) →
min-max normalise (per method config `protocol.minmax`, on by default, as SaG and MaskCLIP do) →
optional DenseCRF → `score ≥ τ`. τ is applied here, never inside a method.

Min-max is exactly (s − min) / (max − min + 1e-9): a constant map (e.g. the `whole` floor, all
ones) becomes all zeros, so a method whose maps may be constant sets `protocol.minmax=False`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from harness.errors import ConfigError

MINMAX_EPS = 1e-9


@dataclass(frozen=True)
class Setting:
    """Threshold τ on the raw maps, or on the DenseCRF'd ones (crf). Its `name` ("tau=0.50",
    "tau=0.50+crf") keys metrics.json and samples.csv; settings compare by it (τ to 2 decimals)."""

    tau: float
    crf: bool = False

    def __post_init__(self):
        object.__setattr__(self, "tau", check_tau(self.tau))   # rejects τ outside (0, 1)

    @property
    def name(self) -> str:
        return f"tau={self.tau:.2f}" + ("+crf" if self.crf else "")

    def __eq__(self, other) -> bool:
        return isinstance(other, Setting) and self.name == other.name

    def __hash__(self) -> int:
        return hash(self.name)

    @classmethod
    def parse(cls, name: str) -> "Setting":
        """Inverse of `name`: "tau=0.50+crf" -> Setting(0.5, crf=True)."""
        body, crf = (name[: -len("+crf")], True) if name.endswith("+crf") else (name, False)
        if not body.startswith("tau="):
            raise ConfigError(f"setting {name!r}: expected 'tau=<0..1>' optionally followed by '+crf'")
        try:
            return cls(float(body[len("tau="):]), crf)
        except ValueError as exc:
            raise ConfigError(f"setting {name!r}: τ is not a number") from exc

    @classmethod
    def grid(cls, taus: Iterable[float], crf: bool) -> list["Setting"]:
        """Every τ on the raw maps, then (with `crf`) every τ on the CRF'd maps."""
        raw = [cls(tau) for tau in taus]
        return raw + ([cls(s.tau, True) for s in raw] if crf else [])


def check_tau(tau) -> float:
    """τ as a float, or a ConfigError naming τ when it is not strictly between 0 and 1."""
    try:
        value = float(tau)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"threshold τ (tau) = {tau!r}: expected a number in (0, 1)") from exc
    if not 0.0 < value < 1.0:
        raise ConfigError(f"threshold τ (tau) = {tau!r}: expected a number strictly between 0 and 1")
    return value


def to_original_size(score: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize (align_corners=False) of a score map [h, w] to the image's (H, W)."""
    score = torch.as_tensor(score).float()
    height, width = int(size[0]), int(size[1])
    if tuple(score.shape) == (height, width):
        return score
    batched = score[None, None]  # [1, 1, h, w]
    resized = F.interpolate(batched, size=(height, width), mode="bilinear", align_corners=False)
    return resized[0, 0]  # [H, W]


def minmax(score):
    """(s − min) / (max − min + 1e-9): minimum 0, maximum 1 − ~1e-9 (tensor or ndarray)."""
    low, high = score.min(), score.max()
    return (score - low) / (high - low + MINMAX_EPS)


def binarise(score, tau: float):
    """Foreground mask: score ≥ τ (inclusive), bool, same type and shape as `score`."""
    return score >= tau


def probability_map(score, size: tuple[int, int], use_minmax: bool = True) -> np.ndarray:
    """One sample's score map [h, w] → the map thresholded by the evaluator, float64 [H, W].

    float64 so that `value ≥ τ` is decided on the nearest double to each value (exact for
    8-bit predictions v/255 against τ = 0.2, 0.4, …).
    """
    resized = to_original_size(score, size).double()  # [H, W]
    if use_minmax:
        resized = minmax(resized)
    return resized.numpy()


def protocol_maps(scores: Sequence, sizes: Sequence[tuple[int, int]], use_minmax: bool = True,
                  images: Optional[Sequence[np.ndarray]] = None, crf_pool=None):
    """A batch through the protocol: (raw maps, CRF'd maps or None), each a list of [H_i, W_i].

    scores: what `Segmenter.predict` returned — a tensor [B, h, w] or a list of B maps [h_i, w_i].
    sizes: each sample's original (H, W). With `crf_pool` (a `postprocess.CRFPool`) the raw maps
    also go through DenseCRF with their images (uint8 [H, W, 3]), so τ sweeps and † rows come
    from this one prediction pass.
    """
    if len(scores) != len(sizes):
        raise ValueError(f"{len(scores)} score maps for {len(sizes)} samples")
    raw_maps = [probability_map(score.detach().cpu() if torch.is_tensor(score) else score, size, use_minmax)
                for score, size in zip(scores, sizes)]
    if crf_pool is None:
        return raw_maps, None
    if images is None or len(images) != len(raw_maps):
        raise ValueError("DenseCRF needs one image per score map")
    return raw_maps, crf_pool.map(images, raw_maps)
