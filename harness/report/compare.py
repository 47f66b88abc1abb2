"""`python -m harness compare A B`: is A's figure different from B's beyond noise?

On the expressions both runs scored (same dataset, split and setting), per figure — mIoU (the
mean per-expression IoU difference), cIoU, A@k (the hit difference), pointing and the grounding
gap — the difference Δ = A − B of the seed-means, with a paired cluster-bootstrap interval (the
same image draws for both; harness/report/intervals.py) and a sign-flip p-value over images;
then the same for each seed (seed k of A against seed k of B). Seeds are paired by number: only
the seeds both methods stored are used. With resample="images+seeds" the p-value comes from the
bootstrap replicates instead (`bootstrap_p`), so that it, too, carries the seeds' spread.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import pandas as pd
from tabulate import tabulate

from harness.errors import ConfigError, DataError
from harness.report.image_sums import FIGURES
from harness.report.intervals import (IntervalOptions, bootstrap_p, bootstrap_weights, difference,
                                      estimates, images_of, seed_sums, sign_flip_ps)
from harness.report.store_samples import StoreSamples

COMPARED = ("mIoU", "cIoU", "A@0.3", "A@0.5", "A@0.7", "pointing", "gap")


@dataclass
class Comparison:
    figure: str
    scope: str          # "over seeds" or "seed k"
    a: float
    b: float
    delta: float
    lo: float
    hi: float
    p: float

    @property
    def verdict(self) -> str:
        if not (math.isfinite(self.lo) and math.isfinite(self.hi)):
            return "no figure"
        if self.lo > 0:
            return "A > B"
        if self.hi < 0:
            return "A < B"
        return "not resolved at this n"


def stored_seeds(samples: StoreSamples, dataset: str, method: str) -> list[int]:
    return sorted(int(metrics["seed"]) for _, metrics in
                  samples.store.runs(f"{dataset}/{method}/seed*"))


def _common(frames: list[pd.DataFrame]) -> list[pd.DataFrame]:
    """Each frame restricted to the expressions every frame holds, in one order."""
    common = set(frames[0]["sample_id"])
    for frame in frames[1:]:
        common &= set(frame["sample_id"])
    if not common:
        raise DataError("samples.csv", "the two methods share no scored expression")
    return [f[f["sample_id"].isin(common)].sort_values("sample_id").reset_index(drop=True)
            for f in frames]


def compare_methods(results_dir, a: str, b: str, dataset: str = "synthref", split: str = "val",
                    setting: str = "tau=0.50", seeds=None, figures=COMPARED,
                    opts: IntervalOptions = IntervalOptions()) -> dict:
    """{"comparisons": [Comparison], "n", "images", "seeds"} (module docstring)."""
    samples = StoreSamples(results_dir)
    unknown = [f for f in figures if f not in FIGURES]
    if unknown:
        raise ConfigError(f"compare: no figure {unknown[0]!r}; expected some of {', '.join(FIGURES)}")
    have = {m: stored_seeds(samples, dataset, m) for m in (a, b)}
    for method, found in have.items():
        if not found:
            raise DataError(samples.store.root / dataset / method,
                            f"no stored run of {method!r} on {dataset} (run it first)")
    shared = sorted(set(have[a]) & set(have[b]))
    seeds = shared if seeds is None else sorted(int(s) for s in seeds)
    absent = [s for s in seeds if s not in shared]
    if not seeds or absent:
        raise ConfigError(f"compare: seeds {absent or seeds} are not stored for both methods; "
                          f"{a}: {have[a]}, {b}: {have[b]}")
    frames = _common([samples.rows(dataset, m, s, split, setting) for m in (a, b) for s in seeds])
    fa, fb = frames[:len(seeds)], frames[len(seeds):]
    images = images_of(frames)
    W = bootstrap_weights(images, opts)
    sa, sb = seed_sums(fa, images), seed_sums(fb, images)
    scopes = [("over seeds", slice(None))]
    if len(seeds) > 1:
        scopes += [(f"seed {s}", slice(k, k + 1)) for k, s in enumerate(seeds)]
    rows = {}   # (figure, scope) -> Comparison
    for scope, at in scopes:     # replicate and exchanged sums once per scope, for every figure
        ea = estimates(sa[at], figures, W, opts, key=f"{dataset}/{split}/{a}")
        eb = estimates(sb[at], figures, W, opts, key=f"{dataset}/{split}/{b}")
        ds = {name: difference(ea[name], eb[name], opts) for name in figures}
        ps = (sign_flip_ps(sa[at], sb[at], figures, rounds=opts.boot, seed=opts.seed)
              if opts.resample == "images" else {n: bootstrap_p(d.replicates) for n, d in ds.items()})
        for name in figures:
            d = ds[name]
            rows[name, scope] = Comparison(name, scope, ea[name].point, eb[name].point,
                                           d.point, d.lo, d.hi, ps[name])
    out = [rows[name, scope] for name in figures for scope, _ in scopes]
    return dict(comparisons=out, n=len(fa[0]), images=len(images), seeds=seeds, a=a, b=b,
                dataset=dataset, split=split, setting=setting, intervals=opts.describe())


def _finite_or_none(value):
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _fmt(value: float) -> str:
    return "–" if not math.isfinite(value) else f"{value:.2f}"


def render_comparison(result: dict, fmt: str = "markdown") -> str:
    if fmt == "json":
        doc = {k: v for k, v in result.items() if k != "comparisons"}
        doc["comparisons"] = [{k: _finite_or_none(v) for k, v in dict(vars(c), verdict=c.verdict).items()}
                              for c in result["comparisons"]]
        return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    if fmt != "markdown":
        raise ConfigError(f"--format {fmt!r}: expected markdown or json")
    head = (f"### compare A = {result['a']} vs B = {result['b']} — {result['dataset']} "
            f"{result['split']}, {result['setting']}")
    lines = [head, "",
             f"- {result['n']} expressions both scored, on {result['images']} images; seeds "
             f"{', '.join(map(str, result['seeds']))} (seed k of A paired with seed k of B).",
             f"- Δ = A − B; interval: {result['intervals']}; p: " + (
                 "two-sided sign-flip test over images (A's and B's records exchanged within "
                 "images)." if "hierarchically" not in result["intervals"] else
                 "two-sided, from the bootstrap replicates (seeds resampled too)."), ""]
    rows = [[c.figure, c.scope, _fmt(c.a), _fmt(c.b), _fmt(c.delta),
             f"[{_fmt(c.lo)}, {_fmt(c.hi)}]", f"{c.p:.4f}", c.verdict]
            for c in result["comparisons"]]
    lines.append(tabulate(rows, headers=["figure", "scope", "A", "B", "Δ", "95 % interval", "p",
                                         "verdict"], tablefmt="pipe", disable_numparse=True))
    return "\n".join(lines) + "\n"
