"""One Markdown report of a results store: every paper table with the paper's figures and shape
checks, the sweep plots, the entity figure, whether each stored method used the words (grounding
gap and pointing, harness/eval/metrics.py), and how each run was made (hash, profile, versions,
timings per stage). Rendering only: nothing here trains or predicts.
"""

from pathlib import Path
from typing import Callable, Optional

from tabulate import tabulate

from harness.errors import HarnessError
from harness.eval.protocol import Setting
from harness.registry import explaining_methods
from harness.report import table_specs
from harness.report.figures import entity_figure
from harness.report.plots import plot_table
from harness.report.tables import Cell, format_cell, render_table, seed_stats
from harness.store import Store, read_config, stored_dataset

ENTITY_FIGURE = "entities.png"
# config.json stores timings with sorted keys; show them in the order the stages run.
STAGE_ORDER = ("pretrain", "fit", "predict", "crf", "metrics")
GROUNDING_METRICS = ("mIoU", "gap", "pointing")
GROUNDING_SETTINGS = (Setting(0.5).name, Setting(0.5, crf=True).name)


def store_families(results_dir) -> list[str]:
    """The dataset families with runs in the store (the embedded one when the store is empty)."""
    datasets = {metrics.get("dataset") for _, metrics in Store(results_dir).runs()}
    real = any(d not in table_specs.SYNTHETIC_DATASETS for d in datasets)
    synthetic = any(d in table_specs.SYNTHETIC_DATASETS for d in datasets)
    return (["synthref"] if synthetic or not real else []) + (["real"] if real else [])


def _table_sections(results_dir, out: Path, family: str) -> list[str]:
    lines = []
    for name in table_specs.table_names():
        # With intervals: a reader of the report sees which differences are resolved.
        text = render_table(name, results_dir, "markdown", paper=True, dataset_family=family,
                            ci=True)
        lines += [text.replace("### ", f"### {name}: ", 1), ""]
        if "plot" in table_specs.load_table_spec(name):
            png = out.parent / f"{out.stem}_{name}_{family}.png"
            plot_table(name, results_dir, png, dataset_family=family)
            lines += [f"![{name} ({family})]({png.name})", ""]
    return lines


def stored_entity_figure(results_dir) -> Optional[Callable[[Path], object]]:
    """A drawer of the paper's qualitative figure from the store's first run that kept its
    model.pt of a method that implements `explain` (synthref first), or None when there is none.
    A run whose data moved is skipped with a note on stderr rather than failing the whole report."""
    import sys


    found = [(stored_dataset(metrics), metrics["method"]) for _, metrics in
             Store(results_dir).trained_runs(method_specs=explaining_methods())]
    if not found:
        return None
    dataset, method = min(found, key=lambda run: (run[0] != "synthref", run[0]))

    def draw(png: Path) -> None:
        try:
            entity_figure(results_dir, method, dataset, out=png)
        except HarnessError as exc:
            print(f"report: entity figure skipped ({exc})", file=sys.stderr)

    return draw


def _entity_section(out: Path, entity_figure: Optional[Callable[[Path], object]]) -> list[str]:
    png = out.parent / ENTITY_FIGURE
    if entity_figure is not None:
        entity_figure(png)
    if not png.is_file():
        return []
    return ["## Qualitative: discovered entities", "", f"![entities]({png.name})", ""]


def _grounding_section(results_dir) -> list[str]:
    """mIoU, grounding gap and pointing of every stored (dataset, method, split) at τ = 0.5, raw
    and +crf: mean ± std over seeds. Runs stored before the gap existed show "–" there."""
    stats = seed_stats(Store(results_dir).frame())
    cells = sorted({key[:4] for key in stats if key[3] in GROUNDING_SETTINGS and key[4] == "mIoU"})
    if not cells:
        return []
    rows = []
    for dataset, method, split, setting in cells:
        figures = [stats.get((dataset, method, split, setting, metric)) for metric in GROUNDING_METRICS]
        rows.append([dataset, method, split, setting]
                    + [format_cell(Cell({}, *figure)) if figure else "–" for figure in figures])
    return ["## Grounding: did each method use the words?", "",
            "gap = mIoU against the expression's own object − against another object of the "
            "same image (0 for a method that ignores the words); pointing = % of expressions "
            "whose map peaks inside the target (README, Protocol and metrics).", "",
            tabulate(rows, headers=["dataset", "method", "split", "setting", *GROUNDING_METRICS],
                     tablefmt="pipe", disable_numparse=True), ""]


def _run_rows(results_dir) -> tuple[list[list], list[str], dict]:
    """Per run: dataset, method, seed, hash, profile, git, then stage timings; and versions seen."""
    records, stages, versions = [], [], {}
    for folder, metrics in Store(results_dir).runs():
        config = read_config(folder) or {}
        timings = config.get("timings_s", {})
        stages += [s for s in timings if s not in stages]
        records.append((metrics, config, timings))
        for package, version in config.get("versions", {}).items():
            versions.setdefault(package, set()).add(str(version))
    rank = {stage: i for i, stage in enumerate(STAGE_ORDER)}
    stages.sort(key=lambda s: (rank.get(s, len(rank)), s))
    rows = [[m["dataset"], m["method"], m["seed"], m.get("config_hash", "–"),
             c.get("profile", "–"), (c.get("git_revision") or "–")[:10]]
            + [f"{t[s]:.1f}" if s in t else "–" for s in stages] for m, c, t in records]
    return rows, stages, versions


def _runs_section(results_dir) -> list[str]:
    rows, stages, versions = _run_rows(results_dir)
    if not rows:
        return ["## Runs", "", f"No runs stored in {results_dir}.", ""]
    headers = ["dataset", "method", "seed", "config hash", "profile", "git"]
    headers += [f"{stage} (s)" for stage in stages]
    lines = ["## Runs", "", "How each stored run was made (from its config.json).", "",
             tabulate(rows, headers=headers, tablefmt="pipe", disable_numparse=True), ""]
    if versions:
        mixed = [p for p, v in versions.items() if len(v) > 1]
        lines += ["## Package versions", "",
                  tabulate([[p, ", ".join(sorted(v))] for p, v in sorted(versions.items())],
                           headers=["package", "version(s)"], tablefmt="pipe"), ""]
        if mixed:
            lines += [f"Runs were made with different versions of: {', '.join(sorted(mixed))}.", ""]
    return lines


def write_report(results_dir, out="report.md",
                 entity_figure: Optional[Callable[[Path], object]] = None) -> Path:
    """Write the report to `out` and its PNGs beside it; returns the report's path.

    `entity_figure(path)`, if given, draws the qualitative figure to `path` (entities.png beside
    the report); otherwise an entities.png already there is included.
    """
    results_dir, out = Path(results_dir), Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# sag-harness report", "",
             f"Results store: `{results_dir}`. Cells are mean ± sample std over seeds (n seeds); "
             "beside them the paper's figures, and the shapes the paper implies, checked.", ""]
    for family in store_families(results_dir):
        lines += [f"## Tables ({family} datasets)", ""] + _table_sections(results_dir, out, family)
    lines += _grounding_section(results_dir)
    lines += _entity_section(out, entity_figure)
    lines += _runs_section(results_dir)
    out.write_text("\n".join(lines))
    return out
