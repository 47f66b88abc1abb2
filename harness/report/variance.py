"""Variance, decomposed: the spread over test-time sampling of one trained model beside the spread
over training seeds.

A method that samples at test time (SaG draws its entity slots from Gaussians) is evaluated
`protocol.inference_draws` times per trained model (harness/run/runner.py `_inference_draws`),
each draw with its own sampling seed; metrics.json keeps every draw's figures under
`inference_draws`. Per cell this module gives the *inference std*: the std over draws within each
trained model (ddof = 1), pooled over the cell's seeds as √(mean variance). The table's ± is the
std over training seeds (each seed: another training run and another sampling). The paper's
"the standard deviation across [3 experiments] is always less than 0.06", caused by "randomness
when sampling the entity slots", is the inference std of one trained model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from harness.store import Store, stored_dataset


@dataclass(frozen=True)
class InferenceSpread:
    std: float       # √(mean over seeds of the variance over draws)
    draws: int       # draws per trained model (the smallest among the seeds)
    seeds: int       # trained models it pools

    def describe(self) -> str:
        return f"inference std {self.std:.2f} ({self.draws} draws × {self.seeds} trained models)"


def _variance(values: list) -> float:
    values = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if len(values) < 2:
        return math.nan
    mean = math.fsum(values) / len(values)
    return math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1)


def inference_spreads(results_dir, config_hashes: dict | None = None) -> dict:
    """{(dataset, method, split, setting, metric): InferenceSpread} over the store's runs that
    hold draws; with `config_hashes` {(dataset, method): hash}, only runs of that hash pool."""
    pooled: dict = {}
    for _, metrics in Store(results_dir).runs():
        draws = metrics.get("inference_draws")
        if not draws:
            continue
        dataset, method = stored_dataset(metrics), metrics["method"]
        wanted = (config_hashes or {}).get((dataset, method))
        if wanted is not None and metrics.get("config_hash") != wanted:
            continue
        for split, by_setting in draws.items():
            for setting, by_metric in by_setting.items():
                for metric, values in by_metric.items():
                    pooled.setdefault((dataset, method, split, setting, metric), []).append(values)
    spreads = {}
    for key, per_seed in pooled.items():
        variances = [v for v in map(_variance, per_seed) if math.isfinite(v)]
        if variances:
            spreads[key] = InferenceSpread(math.sqrt(math.fsum(variances) / len(variances)),
                                           min(len(v) for v in per_seed), len(variances))
    return spreads
