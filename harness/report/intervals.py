"""How sure a figure is: a cluster bootstrap over images, paired across methods, and a paired test.

A replicate draws G images with replacement from a split's G images and weighs each image's sums
(harness/report/image_sums.py) by how often it was drawn: the expressions of one image — RefCOCO
has several per image, one image holds several referred objects — are resampled together, as
they are not independent. The draws `W [B, G]` depend only on the split's images and a fixed
seed, so every method and every seed of a split is resampled with the same images: a cell's
replicate is the seed-mean on one image multiset, and two cells of a column form paired
replicates whose difference is the paired-bootstrap difference.

`resample="images"` (default) is the interval of the seed-mean for the trained models at hand:
how much the figure would move on other images. `resample="images+seeds"` also draws the seeds
with replacement (a hierarchical bootstrap), folding training noise in — crude with 3 seeds,
but a claim that survives it does not rest on which seeds were run.

The paired test of `compare` is a sign-flip randomisation test over images: under "A and B are
exchangeable", swapping A's and B's records within any set of images gives an equally likely
difference; p = (1 + #{|Δ'| ≥ |Δ|}) / (1 + R).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.errors import ConfigError
from harness.report.image_sums import FIELDS, figure, figures, image_sums

BOOTSTRAP_SEED = 20231002          # fixed: a table's intervals are the same on every rerun
RESAMPLE = ("images", "images+seeds")


@dataclass(frozen=True)
class IntervalOptions:
    boot: int = 2000               # bootstrap replicates (B ≥ 1,000)
    level: float = 0.95
    resample: str = "images"       # RESAMPLE
    seed: int = BOOTSTRAP_SEED

    def __post_init__(self):
        if int(self.boot) < 1000:
            raise ConfigError(f"--boot {self.boot}: expected at least 1000 bootstrap replicates")
        if not 0.5 < float(self.level) < 1:
            raise ConfigError(f"interval level {self.level}: expected a number in (0.5, 1)")
        if self.resample not in RESAMPLE:
            raise ConfigError(f"--resample {self.resample!r}: expected one of {', '.join(RESAMPLE)}")

    @property
    def tails(self) -> tuple[float, float]:
        alpha = (1 - self.level) / 2
        return 100 * alpha, 100 * (1 - alpha)

    def describe(self) -> str:
        over = ("images (expressions of one image together), the same draws for every seed "
                "and method of a split" if self.resample == "images" else
                "images and, hierarchically, the seeds")
        return (f"{100 * self.level:g} % percentile interval of a cluster bootstrap over {over}; "
                f"B = {self.boot}, bootstrap seed {self.seed}")


def _stable(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def bootstrap_weights(images: pd.Index, opts: IntervalOptions) -> np.ndarray:
    """[B, G] draw counts of each image in each replicate, from the seed and the image ids only."""
    G = len(images)
    digest = _stable("\n".join(map(str, images)))
    rng = np.random.default_rng([opts.seed, digest])
    draws = rng.integers(0, G, size=(opts.boot, G))                            # [B, G]
    flat = (draws + G * np.arange(opts.boot)[:, None]).ravel()
    return np.bincount(flat, minlength=opts.boot * G).reshape(opts.boot, G).astype(np.float64)


def images_of(frames: list[pd.DataFrame]) -> pd.Index:
    """The split's images, sorted: the union over the runs (they normally agree)."""
    ids = sorted(set().union(*(set(f["image_id"]) for f in frames)))
    return pd.Index(ids)


def seed_sums(frames: list[pd.DataFrame], images: pd.Index) -> np.ndarray:
    """[S, G, F] per-image sums of each seed's rows."""
    return np.stack([image_sums(f, images) for f in frames])


@dataclass
class Estimate:
    point: float                   # the seed-mean on the whole split (= the table's mean)
    lo: float
    hi: float
    replicates: np.ndarray         # [B]

    def contains(self, value: float = 0.0) -> bool:
        return self.lo <= value <= self.hi


def _seed_resampled(per_seed: np.ndarray, opts: IntervalOptions, key: str) -> np.ndarray:
    """[B] replicate seed-means from per-seed replicates [B, S]."""
    B, S = per_seed.shape
    if opts.resample == "images" or S == 1:
        return np.nanmean(per_seed, axis=1) if S > 1 else per_seed[:, 0]
    rng = np.random.default_rng([opts.seed, _stable(key)])
    pick = rng.integers(0, S, size=(B, S))
    return np.nanmean(np.take_along_axis(per_seed, pick, axis=1), axis=1)


def _interval(point: float, replicates: np.ndarray, opts: IntervalOptions) -> Estimate:
    finite = replicates[np.isfinite(replicates)]
    if not math.isfinite(point) or finite.size == 0:
        return Estimate(point, math.nan, math.nan, replicates)
    lo, hi = np.percentile(finite, opts.tails)
    return Estimate(float(point), float(lo), float(hi), replicates)


def estimates(sums: np.ndarray, metrics, W: np.ndarray, opts: IntervalOptions,
              key: str = "") -> dict:
    """{metric: Estimate} of the seed-means from sums [S, G, F] and draws W [B, G]; the
    replicate sums are formed once for all the metrics."""
    whole = figures(sums.sum(axis=1))                                          # {metric: [S]}
    replicated = figures(np.einsum("bg,sgf->bsf", W, sums))                    # {metric: [B, S]}
    return {m: _interval(float(np.nanmean(_checked(whole, m))),
                         _seed_resampled(replicated[m], opts, key), opts) for m in metrics}


def estimate(sums: np.ndarray, metric: str, W: np.ndarray, opts: IntervalOptions,
             key: str = "") -> Estimate:
    """The seed-mean of `metric` and its interval, from sums [S, G, F] and draws W [B, G]."""
    return estimates(sums, [metric], W, opts, key)[metric]


def difference(a: Estimate, b: Estimate, opts: IntervalOptions) -> Estimate:
    """A − B from paired replicates (the same image draws)."""
    return _interval(a.point - b.point, a.replicates - b.replicates, opts)


def sign_flip_ps(a: np.ndarray, b: np.ndarray, metrics, rounds: int, seed: int) -> dict:
    """{metric: two-sided p} of the seed-mean difference A − B under exchanging A and B within
    images; a, b: sums [S, G, F] of the same expressions (seed k of A paired with seed k of B).
    The exchanged sums are formed once for all the metrics."""
    rng = np.random.default_rng([seed, rounds])
    flip = rng.integers(0, 2, size=(rounds, a.shape[1])).astype(np.float64)    # [R, G]
    keep = 1.0 - flip
    a_new = figures(np.einsum("rg,sgf->rsf", keep, a) + np.einsum("rg,sgf->rsf", flip, b))
    b_new = figures(np.einsum("rg,sgf->rsf", flip, a) + np.einsum("rg,sgf->rsf", keep, b))
    fa, fb = figures(a.sum(1)), figures(b.sum(1))
    out = {}
    for m in metrics:
        observed = float(np.nanmean(_checked(fa, m)) - np.nanmean(fb[m]))
        null = np.nanmean(a_new[m], 1) - np.nanmean(b_new[m], 1)              # [R]
        out[m] = (1 + np.count_nonzero(np.abs(null) >= abs(observed) - 1e-12)) / (1 + rounds)
    return out


def sign_flip_p(a: np.ndarray, b: np.ndarray, metric: str, rounds: int, seed: int) -> float:
    """`sign_flip_ps` for one metric."""
    return sign_flip_ps(a, b, [metric], rounds, seed)[metric]


def _checked(by_metric: dict, metric: str) -> np.ndarray:
    figure(np.zeros((1, len(FIELDS))), metric)      # an unknown metric: the KeyError naming them
    return by_metric[metric]


def bootstrap_p(replicates: np.ndarray) -> float:
    """Two-sided p of "Δ = 0" from a difference's bootstrap replicates: twice the smaller share
    on either side of 0 (at least 1 / (B + 1)). Used with resample="images+seeds", where the
    sign-flip test, which exchanges images only, would ignore the seeds' spread."""
    finite = replicates[np.isfinite(replicates)]
    if finite.size == 0:
        return math.nan
    tail = min(np.count_nonzero(finite <= 0), np.count_nonzero(finite >= 0))
    return min(1.0, max(2 * tail, 1) / (finite.size + 1))
