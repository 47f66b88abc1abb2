"""Intervals on a table's cells (`table --ci`): each cell's seed-mean with its bootstrap interval,
and whether it differs from the row above by more than noise.

Cells of one column share the split's image draws (harness/report/intervals.py), so the row
above and this row form paired replicates: `same_as_above` is True when the 95 % interval of
their difference holds 0 — the two rows are not resolved at this n.
"""

from __future__ import annotations

from harness.errors import DataError
from harness.report.image_sums import FIGURES
from harness.report.intervals import (IntervalOptions, bootstrap_weights, difference, estimate,
                                      images_of, seed_sums)
from harness.report.store_samples import StoreSamples


class CellIntervals:
    """Sums and draws of a store's cells, each computed once per table."""

    def __init__(self, results_dir, opts: IntervalOptions):
        self.samples, self.opts = StoreSamples(results_dir), opts
        self._sums: dict = {}
        self._weights: dict = {}

    def sums(self, dataset: str, method: str, seeds: tuple, split: str, setting: str):
        """(sums [S, G, F], images key, draws W [B, G]) of one cell's runs."""
        key = (dataset, method, seeds, split, setting)
        if key not in self._sums:
            frames = [self.samples.rows(dataset, method, s, split, setting) for s in seeds]
            images = images_of(frames)
            images_key = (dataset, split, tuple(images))
            if images_key not in self._weights:
                self._weights[images_key] = bootstrap_weights(images, self.opts)
            self._sums[key] = (seed_sums(frames, images), images_key)
        sums, images_key = self._sums[key]
        return sums, images_key, self._weights[images_key]

    def estimate(self, cell_key: dict, seeds: tuple):
        """(Estimate, images key) of a cell, or (None, None) for a metric with no interval."""
        if cell_key["metric"] not in FIGURES:
            return None, None
        sums, images_key, W = self.sums(cell_key["dataset"], cell_key["method"], seeds,
                                        cell_key["split"], cell_key["setting"])
        name = "/".join(str(cell_key[f]) for f in ("dataset", "method", "split", "setting", "metric"))
        return estimate(sums, cell_key["metric"], W, self.opts, key=name), images_key


def annotate(data, seeds_of: dict, results_dir, opts: IntervalOptions) -> None:
    """Set `estimate` and `same_as_above` on every pooled cell of `data` (a TableData)."""
    intervals = CellIntervals(results_dir, opts)
    for column in data.columns:
        above = None      # (Estimate, images key) of the nearest pooled row above
        for row in data.rows:
            cell = data.cells[(str(row["key"]), str(column["key"]))]
            if not cell.pooled:
                above = None
                continue
            seeds = seeds_of.get(tuple(cell.key[f] for f in ("dataset", "method", "split",
                                                              "setting", "metric")), ())
            try:
                cell.estimate, images_key = intervals.estimate(cell.key, seeds)
            except DataError as exc:
                cell.interval_error = str(exc)
                above = None
                continue
            if cell.estimate is None:
                above = None
                continue
            if above is not None and above[1] == images_key:
                cell.same_as_above = difference(cell.estimate, above[0], opts).contains(0.0)
            above = (cell.estimate, images_key)
