"""Line plots of swept tables (A2: iterations T, A3: threshold τ) as PNG files.

A table's rows that carry an `x` (its spec) are the sweep; every column is one line: our mean with
the seeds' std as error bars, the paper's figure dashed in the same colour (on real data for the
embedded family: compare the shape, not the level).
"""

from pathlib import Path

from matplotlib.figure import Figure

from harness.errors import ConfigError
from harness.report.tables import TableData, column_label, table_data


def _sweep_rows(data: TableData) -> list[dict]:
    rows = sorted((r for r in data.rows if "x" in r), key=lambda r: r["x"])
    if not rows:
        raise ConfigError(f"{data.spec['path']}: no row has an `x`, so there is nothing to plot")
    return rows


def _draw_column(axes, data: TableData, rows: list[dict], column: dict, colour: str) -> None:
    label = column_label(column, data.spec, data.family)
    cells = [data.cells[(str(r["key"]), str(column["key"]))] for r in rows]
    ours = [(r["x"], c.mean, 0.0 if c.n < 2 else c.std) for r, c in zip(rows, cells) if c.n > 0]
    if ours:
        xs, means, stds = zip(*ours)
        axes.errorbar(xs, means, yerr=stds, color=colour, marker="o", capsize=3,
                      label=f"{label} (ours, {data.family})")
    paper = [(r["x"], c.paper) for r, c in zip(rows, cells) if c.paper is not None]
    if paper:
        xs, figures = zip(*paper)
        axes.plot(xs, figures, color=colour, linestyle="--", marker="x", alpha=0.7,
                  label=f"{label} (paper)")


def plot_table(name: str, results_dir, out, dataset_family: str = "synthref") -> Path:
    """Write table `name`'s sweep as a PNG at `out`; returns its path."""
    data = table_data(name, results_dir, dataset_family)
    rows = _sweep_rows(data)
    plot_spec = data.spec.get("plot", {})
    figure = Figure(figsize=(6.4, 5.0), dpi=100)
    axes = figure.add_subplot()
    colours = [f"C{i}" for i in range(len(data.columns))]
    for column, colour in zip(data.columns, colours):
        _draw_column(axes, data, rows, column, colour)
    axes.set_xticks([r["x"] for r in rows])
    axes.set_xlabel(plot_spec.get("xlabel", "x"))
    axes.set_ylabel("%")
    axes.set_title(plot_spec.get("title", data.spec["title"]), fontsize=10)
    axes.grid(alpha=0.3)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize=7, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.15))
    figure.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, format="png")
    return out
