"""Render a paper table from the results store: mean ± std over seeds, the paper's figure beside it.

Tables are a pure aggregation of `results/runs/<dataset>/<method>/seed<k>/metrics.json`; nothing
here trains or predicts. Which cells a table has comes from its spec (harness/report/table_specs.py).
"""

import json
import math
from dataclasses import dataclass, field, replace
from typing import Optional

import pandas as pd
from tabulate import tabulate

from harness.report import currency, table_specs
from harness.errors import ConfigError, DataError
from harness.report.cell_intervals import annotate
from harness.report.intervals import IntervalOptions
from harness.report.shape_checks import run_check_on_intervals, run_checks
from harness.report.variance import inference_spreads
from harness.store import Store

FORMATS = ("markdown", "csv", "latex", "json")
DASH = "–"


def seed_stats(frame: pd.DataFrame) -> dict:
    """(dataset, method, split, setting, metric) -> (mean, sample std or NaN, n seeds, configs, stale).

    `configs` counts the distinct config hashes among the seeds. Seeds stored under different
    configs (a config changed and only some seeds were rerun) are never pooled: such a cell has
    no mean and no std, and shows as mixed. `stale` counts the seeds a boolean `stale` column
    marks (harness/report/currency.py; 0 without one): a cell with any has no mean either.
    """
    if frame.empty:
        return {}
    keys = ["dataset", "method", "split", "setting", "metric"]
    if "stale" not in frame:
        frame = frame.assign(stale=False)
    grouped = (frame.assign(config_hash=frame["config_hash"].fillna("")).groupby(keys)
               .agg(mean=("value", "mean"), std=("value", "std"), count=("value", "count"),
                    configs=("config_hash", "nunique"), stale=("stale", "sum")))   # std: ddof=1
    stats = {}
    for key, row in grouped.iterrows():
        configs, stale = int(row["configs"]), int(row["stale"])
        mean, std = (row["mean"], row["std"]) if configs <= 1 and not stale else (math.nan, math.nan)
        stats[key] = (mean, std, int(row["count"]), configs, stale)
    return stats


@dataclass
class Cell:
    key: dict            # dataset, method, split, setting, metric
    mean: float = math.nan
    std: float = math.nan
    n: int = 0
    configs: int = 1     # distinct config hashes among the n seeds; > 1: not pooled (mixed)
    stale: int = 0       # seeds whose stored config is not today's (currency.py): not pooled
    paper: float | None = None
    seeds: tuple = ()    # the seeds stored
    # Spread over test-time sampling of each trained model (harness/report/variance.py), for
    # methods that sample at inference; None for the others.
    inference: object = None
    # With intervals (`table --ci`, harness/report/cell_intervals.py): the seed-mean's bootstrap
    # Estimate, and whether the difference from the pooled row above holds 0 (None: not judged).
    estimate: object = None
    same_as_above: Optional[bool] = None
    interval_error: Optional[str] = None
    note: Optional[str] = None   # a derived row's source (`best_of`: "at τ=0.3")

    @property
    def mixed(self) -> bool:
        return self.configs > 1

    @property
    def pooled(self) -> bool:
        """Whether the cell has a mean: some seeds, one config, and that config today's."""
        return self.n > 0 and not self.mixed and not self.stale


@dataclass
class TableData:
    spec: dict
    family: str
    results_dir: str
    rows: list[dict]
    columns: list[dict]
    cells: dict          # (row key, column key) -> Cell
    missing: list = field(default_factory=list)     # (run, command)
    intervals: Optional[IntervalOptions] = None       # set when the cells carry intervals
    show_intervals: bool = False                      # shown in the cells (`--ci`), not only judged

    @property
    def has_runs(self) -> bool:
        return any(cell.n > 0 for cell in self.cells.values())


def load_paper_table(file_name: str) -> pd.DataFrame:
    path = table_specs.paper_csv_path(file_name)
    if not path.is_file():
        raise DataError(path, "the paper's figures are missing; expected a CSV there")
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def paper_figure(paper: pd.DataFrame, row_match, column: str, where: str) -> float | None:
    """The paper's figure for a row (first-column value, or dict column -> value) and column."""
    match = row_match if isinstance(row_match, dict) else {paper.columns[0]: row_match}
    selected = paper
    for name, value in match.items():
        if name not in paper.columns:
            raise ConfigError(f"{where}: paper row filter on {name!r}, which the paper CSV lacks; "
                              f"its columns: {list(paper.columns)}")
        selected = selected[selected[name].astype(str) == str(value)]
    if len(selected) != 1 or column not in paper.columns:
        raise ConfigError(f"{where}: paper row {row_match!r} / column {column!r} matches "
                          f"{len(selected)} rows of the paper CSV; expected exactly one")
    text = selected.iloc[0][column].strip()
    return float(text) if text not in ("", "-", DASH) else None


def _key(item: dict) -> str:
    return str(item["key"])


def column_label(column: dict, spec: dict, family: str) -> str:
    if "label" in column:
        return column["label"]
    if "dataset" in column:
        dataset = table_specs.family_dataset(spec, column["dataset"], family)
        split_by = column.get("split_by", spec.get("split_by"))
        dataset += f" ({split_by})" if split_by else ""
        label = f"{dataset} {column.get('split', spec.get('split', ''))}".strip()
        metric = column.get("metric")   # a column reading another metric than the table's says so
        return label if metric in (None, spec.get("metric")) else f"{label} {metric}"
    return _key(column)


def _paper_lookup(spec: dict, row: dict, column: dict, paper_tables: dict) -> float | None:
    if "paper" not in row or "paper" not in column:
        return None
    csv_name = row.get("paper_csv", spec.get("paper_csv"))
    if csv_name not in paper_tables:
        paper_tables[csv_name] = load_paper_table(csv_name)
    where = f"{spec['path']} row {_key(row)!r}"
    return paper_figure(paper_tables[csv_name], row["paper"], column["paper"], where)


_KEY_FIELDS = ("dataset", "method", "split", "setting", "metric")


def _seeds_of(frame: pd.DataFrame) -> dict:
    if frame.empty:
        return {}
    return {key: tuple(sorted(set(int(s) for s in seeds)))
            for key, seeds in frame.groupby(list(_KEY_FIELDS))["seed"]}


def table_data(name: str, results_dir, dataset_family: str = "synthref",
               intervals: Optional[IntervalOptions] = None) -> TableData:
    """Every cell of table `name`: our seed statistics, the inference spread where a method
    samples at test time, the paper's figure, and with `intervals` each cell's bootstrap interval."""
    spec = table_specs.load_table_spec(name)
    stale = currency.stale_runs(table_specs.required_runs(name, dataset_family), Store(results_dir))
    frame = Store(results_dir).frame()
    frame = frame.assign(stale=[seed in stale.get((dataset, method), ()) for dataset, method, seed
                                in zip(frame["dataset"], frame["method"], frame["seed"])])
    stats, seeds = seed_stats(frame), _seeds_of(frame)
    hashes = {(d, m): h for d, m, h in zip(frame.get("dataset", []), frame.get("method", []),
                                           frame.get("config_hash", []))}
    spreads = inference_spreads(results_dir, hashes)
    columns = table_specs.family_columns(spec, dataset_family)
    cells, paper_tables = {}, {}
    for row in spec["rows"]:
        for column in columns:
            key = table_specs.cell_key(spec, row, column, dataset_family)
            at = tuple(key[f] for f in _KEY_FIELDS)
            figures = stats.get(at, (math.nan, math.nan, 0, 1, 0))
            paper = _paper_lookup(spec, row, column, paper_tables)
            cells[(_key(row), _key(column))] = Cell(key, *figures, paper=paper,
                                                    seeds=seeds.get(at, ()),
                                                    inference=spreads.get(at))
    _derive_best_rows(spec, columns, cells)
    missing = table_specs.missing_runs(name, results_dir, dataset_family, stale)
    data = TableData(spec, dataset_family, str(results_dir), spec["rows"], columns, cells, missing,
                     intervals=intervals)
    if intervals is not None:
        annotate(data, seeds, results_dir, intervals)
    return data


def _derive_best_rows(spec: dict, columns: list[dict], cells: dict) -> None:
    """A row with `best_of` (row keys) shows per column the pooled cell of highest mean among
    those rows, noted with the row it came from (C1's oracle best τ)."""
    for row in spec["rows"]:
        if "best_of" not in row:
            continue
        for column in columns:
            found = [(cells[(str(k), _key(column))], k) for k in row["best_of"]]
            found = [(c, k) for c, k in found if c.pooled and math.isfinite(c.mean)]
            if found:
                best, key = max(found, key=lambda item: item[0].mean)
                cells[(_key(row), _key(column))] = replace(best, note=f"at {key}")
            else:
                cells[(_key(row), _key(column))] = Cell(cells[(str(row["best_of"][0]), _key(column))].key)


def format_cell(cell: Cell, intervals: bool = False) -> str:
    """`34.76 ± 0.05 (n=3)`; std shows "–" with one seed; "–" alone with none; seeds stored
    under different configs are not pooled: `mixed configs (2 in n=3)`, nor seeds whose config
    is no longer the config file's: `stale config (1 of n=3)`. A method that samples at test time
    adds its inference std: `(n=3; inference ± 0.04)`. With `intervals`: `34.76 ± 0.05 [33.9,
    35.6] (n=3)`, and ` ≈↑` when the difference from the row above is not resolved."""
    if cell.n == 0:
        return DASH
    if cell.stale:
        return f"stale config ({cell.stale} of n={cell.n})"
    if cell.mixed:
        return f"mixed configs ({cell.configs} in n={cell.n})"
    std = DASH if math.isnan(cell.std) else f"{cell.std:.2f}"
    inference = "" if cell.inference is None else f"; inference ± {cell.inference.std:.2f}"
    text = f"{cell.mean:.2f} ± {std}"
    if intervals and cell.estimate is not None and math.isfinite(cell.estimate.lo):
        text += f" [{cell.estimate.lo:.2f}, {cell.estimate.hi:.2f}]"
    text += f" (n={cell.n}{inference})"
    text += f" {cell.note}" if cell.note else ""
    return text + (" ≈↑" if intervals and cell.same_as_above else "")


def _paper_header(label: str, column: dict, family: str) -> str:
    if family == "real":
        return f"{label} (paper)"
    return f"paper: {column['paper']} ¹"


def table_rows(data: TableData, paper: bool) -> tuple[list[str], list[list[str]]]:
    """Header and body of the table as text cells."""
    header = [""]
    for column in data.columns:
        label = column_label(column, data.spec, data.family)
        header.append(label)
        if paper and "paper" in column:
            header.append(_paper_header(label, column, data.family))
    body = []
    for row in data.rows:
        line = [row.get("label", _key(row))]
        for column in data.columns:
            cell = data.cells[(_key(row), _key(column))]
            line.append(format_cell(cell, data.show_intervals))
            if paper and "paper" in column:
                line.append(DASH if cell.paper is None else f"{cell.paper:.2f}")
        body.append(line)
    return header, body


def check_results(data: TableData) -> list:
    """The spec's shape checks: on the seed means, or with intervals on the bootstrap margins
    (holds / fails / not resolved at this n; harness/report/shape_checks.py)."""
    labels = {_key(c): column_label(c, data.spec, data.family) for c in data.columns}
    columns = [_key(c) for c in data.columns]
    means = {k: (c.mean if c.pooled else None) for k, c in data.cells.items()}
    if data.intervals is None:
        return run_checks(data.spec.get("checks", []), means, columns, labels)
    estimates = {k: c.estimate for k, c in data.cells.items() if c.pooled}
    without = {k for k, c in data.cells.items() if c.pooled and c.estimate is None}
    results = []
    for check in data.spec.get("checks", []):
        if not without:
            results.append(run_check_on_intervals(check, estimates, columns, labels,
                                                  data.intervals.tails))
            continue
        # Some pooled cell has no per-expression records (a store written by hand or by an old
        # harness): that check is judged on the means, and says so.
        result = run_checks([check], means, columns, labels)[0]
        result.detail += " — on seed means: some cells have no samples.csv for an interval"
        results.append(result)
    return results


def render_table(name: str, results_dir, fmt: str = "markdown", paper: bool = False,
                 dataset_family: str = "synthref", ci: Optional[IntervalOptions] = None) -> str:
    """Table `name` from the store in `fmt`; with `paper`, the paper's figures and shape checks.

    markdown/latex: the table, notes, shape checks and missing runs with their commands (with no
    runs at all: the paper's table instead of ours). csv: one line per cell (parses back).
    json: everything, cells with mean, std, n and the paper's figure.
    `ci` (IntervalOptions, or True for the defaults): every cell's 95 % bootstrap interval, the
    rows not resolved from the one above. With `paper` the shape checks are judged on intervals
    (the default options) whether or not the cells show them.
    """
    writers = {"markdown": _as_text, "latex": _as_text, "csv": _as_csv, "json": _as_json}
    if fmt not in writers:
        raise ConfigError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    ci = IntervalOptions() if ci is True else (ci or None)
    # The shape checks are judged on intervals whenever they are shown, with or without --ci.
    judged = ci or (IntervalOptions() if paper and table_specs.load_table_spec(name).get("checks")
                    else None)
    data = table_data(name, results_dir, dataset_family, intervals=judged)
    data.show_intervals = ci is not None
    return writers[fmt](data, paper, fmt)


def _notes(data: TableData, paper: bool) -> list[str]:
    notes = ["Cells: mean ± sample std (ddof=1) over training seeds; n = seeds stored; – = no run."]
    if data.show_intervals:
        notes.append(f"[lo, hi]: {data.intervals.describe()}. ≈↑: the paired interval of the "
                     "difference from the row above holds 0 — the two rows are not resolved at "
                     "this n. `python -m harness compare A B` tests one pair.")
        failed = sorted({c.interval_error for c in data.cells.values() if c.interval_error})
        notes += [f"no interval: {error}" for error in failed]
    sampled = sorted({f"{c.key['dataset']}/{c.key['method']}" for c in data.cells.values()
                      if c.inference is not None})
    if sampled:
        draws = min(c.inference.draws for c in data.cells.values() if c.inference is not None)
        notes.append(f"inference ± (for {', '.join(sampled)}): the std over {draws} test-time "
                     "sampling draws of each trained model (its slots are sampled), pooled over "
                     "the seeds — the spread the paper's \"std across 3 experiments < 0.06\" "
                     "describes. The ± before it is over training seeds, a different quantity "
                     "(harness/report/variance.py).")
    mixed = sorted({f"{c.key['dataset']}/{c.key['method']}" for c in data.cells.values() if c.mixed})
    if mixed:
        notes.append(f"mixed configs: {', '.join(mixed)} hold seeds run under different configs "
                     "(a config changed and not every seed was rerun); they are not averaged. "
                     "Rerun them (`python -m harness run --table ...` recomputes the stale seeds).")
    stale = sorted({f"{c.key['dataset']}/{c.key['method']}" for c in data.cells.values() if c.stale})
    if stale:
        notes.append(f"stale config: {', '.join(stale)} hold seeds computed under a config that is no "
                     "longer the config file's (it was edited, or the run had overrides or another "
                     "profile); they are not shown. The runs below recompute them.")
    if paper and data.family == "synthref":
        notes.append("¹ the paper's figure on real data (RefCOCO family); synthref is a "
                     "different benchmark, so it is not comparable — only the shape is.")
    return notes + list(data.spec.get("footnotes", []))


def _paper_only(data: TableData, fmt: str) -> str:
    if "paper_csv" not in data.spec:
        return "(this table has no paper figures)"
    paper = load_paper_table(data.spec["paper_csv"])
    tablefmt = "pipe" if fmt == "markdown" else "latex"
    return tabulate(paper.values.tolist(), headers=list(paper.columns), tablefmt=tablefmt,
                    disable_numparse=True)


def _as_text(data: TableData, paper: bool, fmt: str) -> str:
    """Markdown or LaTeX (notes as `%` comments in LaTeX)."""
    lead = "- " if fmt == "markdown" else "% "
    title = f"{data.spec['title']} [results: {data.results_dir}; family: {data.family}]"
    lines = [f"### {title}" if fmt == "markdown" else f"% {title}", ""]
    if data.has_runs:
        header, body = table_rows(data, paper)
        lines.append(tabulate(body, headers=header, tablefmt="pipe" if fmt == "markdown"
                              else "latex", disable_numparse=True))
        lines += [""] + [lead + note for note in _notes(data, paper)]
    else:
        lines.append(f"{lead}No runs stored for this table yet; the paper's figures:")
        lines += ["", _paper_only(data, fmt)]
    if paper and data.spec.get("checks"):
        basis = "on intervals" if data.intervals is not None else "on our seed means"
        lines += ["", f"Shape checks (the paper's claims, {basis}):" if fmt == "markdown"
                  else f"% Shape checks (the paper's claims, {basis}):"]
        lines += [f"{lead}{r.name}: **{r.status}** — {r.detail}" if fmt == "markdown"
                  else f"{lead}{r.name}: {r.status} — {r.detail}" for r in check_results(data)]
    head = f"Missing or stale runs ({len(data.missing)}):" if data.missing else "Missing runs: none."
    lines += ["", head if fmt == "markdown" else f"% {head}"]
    lines += [f"{lead}`{command}`" if fmt == "markdown" else f"{lead}{command}"
              for _, command in data.missing]
    return "\n".join(lines) + "\n"


def _cell_records(data: TableData, paper: bool) -> list[dict]:
    records = []
    for row in data.rows:
        for column in data.columns:
            cell = data.cells[(_key(row), _key(column))]
            record = {"row": _key(row), "row_label": row.get("label", _key(row)),
                      "column": _key(column),
                      "column_label": column_label(column, data.spec, data.family),
                      **cell.key, "mean": cell.mean if cell.pooled else None,
                      "std": None if math.isnan(cell.std) else cell.std, "n": cell.n,
                      "configs": cell.configs, "stale": cell.stale, "note": cell.note,
                      "inference_std": None if cell.inference is None else cell.inference.std,
                      "inference_draws": None if cell.inference is None else cell.inference.draws}
            if data.show_intervals:
                estimate = cell.estimate
                record.update(ci_lo=_finite(estimate.lo) if estimate else None,
                              ci_hi=_finite(estimate.hi) if estimate else None,
                              same_as_above=cell.same_as_above)
            if paper:
                record["paper"] = cell.paper
            records.append(record)
    return records


def _finite(value: float) -> Optional[float]:
    return float(value) if math.isfinite(value) else None


def _as_csv(data: TableData, paper: bool, fmt: str) -> str:
    return pd.DataFrame.from_records(_cell_records(data, paper)).to_csv(index=False)


def _as_json(data: TableData, paper: bool, fmt: str) -> str:
    doc = {"table": data.spec["name"], "title": data.spec["title"], "family": data.family,
           "results_dir": data.results_dir, "cells": _cell_records(data, paper),
           "notes": _notes(data, paper),
           "missing": [{"run": run, "command": command} for run, command in data.missing]}
    if data.show_intervals:
        doc["intervals"] = data.intervals.describe()
    if paper:
        doc["checks"] = [vars(r) for r in check_results(data)]
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
