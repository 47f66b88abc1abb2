"""`python -m harness breakdown --by KIND`: a table's rows split by what the expressions are like.

Per bin of the kind (harness/report/sample_attributes.py: target area, expression length,
location words or not, objects in the image, COCO (super)category) and per row (a method and
setting, from `--methods` or a table spec's rows): mIoU and the grounding gap on the bin's
expressions, seed-means with their cluster-bootstrap intervals over the bin's images
(harness/report/intervals.py). Nothing is recomputed: the runs' samples.csv are regrouped.
"""

from __future__ import annotations

import math

import numpy as np
from tabulate import tabulate

from harness.errors import ConfigError
from harness.report import table_specs
from harness.report.compare import stored_seeds
from harness.report.intervals import IntervalOptions, bootstrap_weights, estimate, images_of, seed_sums
from harness.report.sample_attributes import breakdown_bins, sample_attributes
from harness.report.store_samples import StoreSamples

BREAKDOWN_FIGURES = ("mIoU", "gap")


def table_rows(name: str, dataset: str, family: str = "synthref") -> list[dict]:
    """[{label, method, setting}] of a table spec's rows that name a method (A4's, by default)."""
    spec = table_specs.load_table_spec(name)
    rows = []
    for row in spec["rows"]:
        method = row.get("method", spec.get("method"))
        if method is None:
            continue
        rows.append(dict(label=row.get("label", str(row["key"])), method=method,
                         setting=row.get("setting", spec.get("setting", "tau=0.50"))))
    return rows


def breakdown(results_dir, kind: str, rows: list[dict], dataset: str = "synthref",
              split: str = "val", data_root=None, split_by=None, figures=BREAKDOWN_FIGURES,
              opts: IntervalOptions = IntervalOptions()) -> dict:
    """{"bins": [(bin, n expressions, n images)], "rows": [{label, method, setting, cells:
    {(bin, figure): Estimate | None}}]} for `rows` on `dataset` `split`."""
    attributes = sample_attributes(dataset, split, data_root=data_root, split_by=split_by)
    column, bins = breakdown_bins(kind, attributes)
    bin_of = dict(zip(attributes["sample_id"].astype(str), attributes[column]))
    samples = StoreSamples(results_dir)
    counts = attributes.groupby(column).agg(n=("sample_id", "size"), images=("image_id", "nunique"))
    out_rows = []
    for row in rows:
        seeds = stored_seeds(samples, dataset, row["method"])
        cells = {}
        frames = [samples.rows(dataset, row["method"], s, split, row["setting"]) for s in seeds]
        for name in bins:
            chosen = [f[f["sample_id"].map(bin_of) == name].reset_index(drop=True) for f in frames]
            if not chosen or chosen[0].empty:
                cells.update({(name, fig): None for fig in figures})
                continue
            images = images_of(chosen)
            W = bootstrap_weights(images, opts)
            sums = seed_sums(chosen, images)
            for fig in figures:
                cells[(name, fig)] = estimate(sums, fig, W, opts, key=f"{dataset}/{split}/{name}")
        out_rows.append(dict(row, seeds=seeds, cells=cells))
    bin_counts = [(b, int(counts.loc[b, "n"]) if b in counts.index else 0,
                   int(counts.loc[b, "images"]) if b in counts.index else 0) for b in bins]
    return dict(kind=kind, dataset=dataset, split=split, bins=bin_counts, rows=out_rows,
                figures=list(figures), intervals=opts.describe())


def _cell(estimate) -> str:
    if estimate is None or not math.isfinite(estimate.point):
        return "–"
    if not math.isfinite(estimate.lo):
        return f"{estimate.point:.2f}"
    return f"{estimate.point:.2f} [{estimate.lo:.2f}, {estimate.hi:.2f}]"


def render_breakdown(result: dict, fmt: str = "markdown") -> str:
    if fmt == "json":
        import json

        def encode(e):
            if e is None:
                return None
            return {k: (None if not np.isfinite(v) else float(v))
                    for k, v in (("mean", e.point), ("ci_lo", e.lo), ("ci_hi", e.hi))}
        doc = {k: result[k] for k in ("kind", "dataset", "split", "figures", "intervals")}
        doc["bins"] = [dict(bin=b, n=n, images=g) for b, n, g in result["bins"]]
        doc["rows"] = [dict(label=r["label"], method=r["method"], setting=r["setting"], seeds=r["seeds"],
                            cells=[dict(bin=b, figure=f, **(encode(e) or {}))
                                   for (b, f), e in r["cells"].items()]) for r in result["rows"]]
        return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    if fmt != "markdown":
        raise ConfigError(f"--format {fmt!r}: expected markdown or json")
    header = [""] + [f"{b} {f} (n={n})" for b, n, _ in result["bins"] for f in result["figures"]]
    body = [[f"{r['label']} (seeds {','.join(map(str, r['seeds']))})" if r["seeds"] else
             f"{r['label']} (no runs)"] +
            [_cell(r["cells"][(b, f)]) for b, _, _ in result["bins"] for f in result["figures"]]
            for r in result["rows"]]
    lines = [f"### Breakdown by {result['kind']} — {result['dataset']} {result['split']}", "",
             tabulate(body, headers=header, tablefmt="pipe", disable_numparse=True), "",
             "- Cells: seed-mean [95 % interval] on the bin's expressions; n = expressions in the "
             "bin (" + ", ".join(f"{b}: {g} images" for b, _, g in result["bins"]) + ").",
             f"- Intervals: {result['intervals']}, within each bin.",
             "- Within a bin the gap of a method that ignores the words is not 0 (an expression's "
             "partner object may fall in another bin: large targets overlap any map more); the "
             "floors' gap in a bin is its baseline.",
             "- Bins: harness/report/sample_attributes.py (area: COCO's 32²/96² px scaled to the "
             "image's size)."]
    return "\n".join(lines) + "\n"
