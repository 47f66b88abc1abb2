"""`python -m harness report --html OUT.html`: one self-contained page of a results store.

The page holds every paper table (mean ± std over seeds, the 95 % interval and the "same as the
row above" mark where the tables compute intervals, the paper's figure, the shape checks), the
sweep plots and the τ-curves (mIoU against τ per method), a gallery of expressions that sorts
and filters (html_gallery.py builds its data, html_gallery_script.py runs it), and how each run
was made. Everything is inline — images as PNG data URIs, the stylesheet and the script in the
page — so it opens from a file:// address with no server and no network. Rendering only:
nothing here trains or predicts.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import sys
import tempfile
from pathlib import Path

from matplotlib import colormaps
from matplotlib.figure import Figure

from harness.errors import HarnessError
from harness.eval.protocol import Setting
from harness.report import table_specs
from harness.report.html_assets import ERROR_TRAP, STYLE
from harness.report.html_gallery import GALLERY_N, build_gallery, choose_split, gallery_runs
from harness.report.html_gallery_script import GALLERY_SCRIPT
from harness.report.intervals import IntervalOptions
from harness.report.markdown import _run_rows, store_families
from harness.report.plots import plot_table
from harness.report.tables import Cell, format_cell, render_table, seed_stats
from harness.store import Store

GALLERY_SPLIT = "val"
EXPLAIN = ("Each method's run of its lowest seed; left: its stored map (jet colours, 0 blue → 1 red), "
           "right: the mask map / 255 ≥ τ of the chosen setting drawn in the page (red) over the "
           "image, the ground truth outlined in green. IoU: the run's own (samples.csv, at the "
           "original size). Images and maps are downscaled to at most 160 px.")


def esc(text) -> str:
    return html.escape(str(text), quote=True)


def png_uri(png_bytes: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes).decode("ascii")


def figure_uri(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return png_uri(buffer.getvalue())


# --------------------------------------------------------------------------------------- tables

def interval_kwargs() -> dict:
    """`ci=` for render_table: every cell with its interval (harness/report/intervals.py)."""
    return {"ci": IntervalOptions()}


def _number(value, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"


def cell_html(cell: dict) -> str:
    """One table cell: `mean ± std (n)` (tables.format_cell), then the interval, the paper's figure."""
    nan = float("nan")
    text = format_cell(Cell({}, cell["mean"] if cell.get("mean") is not None else nan,
                            cell["std"] if cell.get("std") is not None else nan, int(cell.get("n") or 0),
                            int(cell.get("configs") or 1), int(cell.get("stale") or 0)))
    unpooled = (cell.get("configs") or 1) > 1 or cell.get("stale")
    parts = [f'<span class="{"mixed" if unpooled else ""}">{esc(text)}</span>']
    if cell.get("ci_lo") is not None and cell.get("ci_hi") is not None:
        parts.append(f'<span class="ci">95 % [{_number(cell["ci_lo"])}, {_number(cell["ci_hi"])}]</span>')
    if cell.get("inference_std") is not None:
        parts.append(f'<span class="ci">inference std {_number(cell["inference_std"])}</span>')
    if cell.get("same_as_above"):
        parts.append('<span class="ci same" title="the difference from the row above has a 95 % '
                     'interval containing 0">≈ row above</span>')
    if cell.get("paper") is not None:
        parts.append(f'<span class="paper">paper {_number(cell["paper"])}</span>')
    return "".join(parts)


def verdict_class(status: str) -> str:
    slug = str(status).lower().split()[0] if status else "other"
    return f"v-{slug}" if slug in ("holds", "fails", "pass", "fail", "ok") else "v-other"


def table_html(doc: dict) -> str:
    """A table's JSON rendering (tables.render_table fmt="json") as HTML: cells, notes, checks,
    missing runs with their commands."""
    rows, columns, cells = {}, {}, {}
    for cell in doc["cells"]:
        rows.setdefault(cell["row"], cell["row_label"])
        columns.setdefault(cell["column"], cell["column_label"])
        cells[(cell["row"], cell["column"])] = cell
    head = "".join(f"<th>{esc(label)}</th>" for label in columns.values())
    body = "".join("<tr><td>" + esc(label) + "</td>" + "".join(
        f"<td>{cell_html(cells[(row, column)])}</td>" for column in columns) + "</tr>"
        for row, label in rows.items())
    out = [f'<h3>{esc(doc["table"])}: {esc(doc["title"])}</h3>',
           f'<div class="scroll"><table class="t"><tr><th></th>{head}</tr>{body}</table></div>']
    out += [f'<p class="note">{esc(note)}</p>' for note in doc.get("notes", [])]
    if doc.get("checks"):
        out.append("<p><b>Shape checks</b> (the paper's claims, on our figures):</p><ul>")
        out += [f'<li>{esc(c["name"])}: <span class="verdict {verdict_class(c["status"])}">'
                f'{esc(c["status"])}</span> — {esc(c["detail"])}</li>' for c in doc["checks"]]
        out.append("</ul>")
    missing = doc.get("missing", [])
    if missing:
        commands = "".join(f"<div><code>{esc(m['command'])}</code></div>" for m in missing)
        out.append(f"<details><summary>Missing or stale runs ({len(missing)})</summary>"
                   f"{commands}</details>")
    return "\n".join(out)


def _sweep_plot(name: str, results_dir, family: str) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        png = Path(tmp) / f"{name}.png"
        try:
            plot_table(name, results_dir, png, dataset_family=family)
        except HarnessError as exc:
            return f'<p class="note">plot of {esc(name)} skipped: {esc(exc)}</p>'
        return f'<img class="plot" alt="{esc(name)} ({esc(family)})" src="{png_uri(png.read_bytes())}">'


def tables_section(results_dir) -> str:
    out, kwargs = ['<h2 id="tables">Tables</h2>'], interval_kwargs()
    for family in store_families(results_dir):
        out.append(f"<h3>{esc(family)} datasets</h3>")
        for name in table_specs.table_names():
            doc = json.loads(render_table(name, results_dir, "json", paper=True,
                                          dataset_family=family, **kwargs))
            out.append(table_html(doc))
            if "plot" in table_specs.load_table_spec(name):
                out.append(_sweep_plot(name, results_dir, family))
    return "\n".join(out)


# --------------------------------------------------------------------------------------- curves

def tau_curves(results_dir, split: str = GALLERY_SPLIT) -> dict:
    """dataset -> method -> crf -> [(τ, mean mIoU over seeds)] of `split`, for every method with
    two τ or more in a setting family (raw, +crf)."""
    curves: dict = {}
    for key, (mean, *_rest) in seed_stats(Store(results_dir).frame()).items():
        dataset, method, key_split, setting, metric = key
        if key_split != split or metric != "mIoU" or math.isnan(mean):
            continue
        parsed = Setting.parse(setting)
        by_crf = curves.setdefault(dataset, {}).setdefault(method, {})
        by_crf.setdefault(parsed.crf, []).append((parsed.tau, mean))
    return {dataset: {method: {crf: sorted(points) for crf, points in by_crf.items() if len(points) > 1}
                      for method, by_crf in methods.items() if any(len(p) > 1 for p in by_crf.values())}
            for dataset, methods in sorted(curves.items())}


def curves_section(results_dir, split: str = GALLERY_SPLIT) -> str:
    curves = {d: m for d, m in tau_curves(results_dir, split).items() if m}
    head = f'<h2 id="curves">τ-curves ({esc(split)})</h2>'
    if not curves:
        return head + '<p class="note">No method has two τ or more stored on this split.</p>'
    figure = Figure(figsize=(4.6 * len(curves), 3.8), dpi=100)
    for index, (dataset, methods) in enumerate(curves.items()):
        axes = figure.add_subplot(1, len(curves), index + 1)
        for k, (method, by_crf) in enumerate(sorted(methods.items())):
            for crf, points in sorted(by_crf.items()):
                xs, ys = zip(*points)
                axes.plot(xs, ys, marker="o", markersize=3, color=f"C{k % 10}",
                          linestyle="--" if crf else "-", label=method + ("+crf" if crf else ""))
        axes.set_title(f"{dataset} {split}", fontsize=10)
        axes.set_xlabel("τ")
        axes.set_ylabel("mIoU (%), mean over seeds")
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7)
    figure.tight_layout()
    return (head + '<p class="note">mIoU against the threshold τ, the mean over each method\'s '
            'stored seeds; dashed: after DenseCRF.</p>'
            f'<img class="plot" alt="τ-curves" src="{figure_uri(figure)}">')


# -------------------------------------------------------------------------------------- gallery

def colormap_table() -> list[list[int]]:
    """The heatmap's 256 colours (matplotlib's jet), indexed by the map's 8-bit value."""
    return [[int(round(255 * c)) for c in colormaps["jet"](v / 255)[:3]] for v in range(256)]


def gallery_data(results_dir, n: int = GALLERY_N, split: str = GALLERY_SPLIT) -> dict:
    """The gallery's JSON: one gallery per stored dataset (html_gallery.build_gallery). A dataset
    whose data cannot be read is skipped with a note on stderr and in the page."""
    galleries, skipped = [], []
    for dataset, runs in gallery_runs(results_dir).items():
        chosen = choose_split(runs, split)
        if chosen is None:
            continue
        try:
            galleries.append(build_gallery(dataset, runs, chosen, n, results_dir))
        except HarnessError as exc:
            print(f"report: gallery of {dataset} skipped ({exc})", file=sys.stderr)
            skipped.append(f"{dataset}: {exc}")
    return {"galleries": galleries, "skipped": skipped, "colormap": colormap_table(), "explain": EXPLAIN}


def script_json(data: dict) -> str:
    """JSON safe inside a <script> element (no `</` can end it early)."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/")


SORTS = (("order", "dataset order"), ("worst", "IoU of A, worst first"), ("best", "IoU of A, best first"),
         ("diff", "IoU(A) − IoU(B), largest first"), ("absdiff", "|IoU(A) − IoU(B)|, largest first"))
THUMBS = (("72", "small"), ("112", "medium"), ("160", "large"))


def gallery_section(data: dict) -> str:
    sorts = "".join(f'<option value="{v}">{esc(label)}</option>' for v, label in SORTS)
    thumbs = "".join(f'<option value="{v}">{label}</option>' for v, label in THUMBS)
    skipped = "".join(f'<p class="note">gallery skipped: {esc(s)}</p>' for s in data["skipped"])
    empty = "" if data["galleries"] else '<p class="note">No stored run to show.</p>'
    return f"""<h2 id="gallery">Gallery</h2>
<p class="note" id="gallery-note"></p><div id="gallery-missing"></div>{skipped}{empty}
<div class="controls" id="gallery-controls">
<label>dataset <select id="c-dataset"></select></label>
<label>setting <select id="c-setting"></select></label>
<label>sort <select id="c-sort">{sorts}</select></label>
<label>A <select id="c-a"></select></label> <label>B <select id="c-b"></select></label>
<label>breakdown bin <select id="c-filter"></select></label>
<label>search <input id="c-q" type="search" placeholder="words or id"></label>
<label>size <select id="c-thumb">{thumbs}</select></label>
<span id="c-count"></span></div>
<div id="gallery-head" class="grid"></div><div id="items"></div>
<script type="application/json" id="gallery-data">{script_json(data)}</script>"""


# ----------------------------------------------------------------------------------------- runs

def runs_section(results_dir) -> str:
    rows, stages, versions = _run_rows(results_dir)
    if not rows:
        return f'<h2 id="runs">Runs</h2><p class="note">No runs stored in {esc(results_dir)}.</p>'
    headers = ["dataset", "method", "seed", "config hash", "profile", "git"] + [f"{s} (s)" for s in stages]
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{esc(v)}</td>" for v in row) + "</tr>" for row in rows)
    packages = "; ".join(f"{esc(p)} {esc(', '.join(sorted(v)))}" for p, v in sorted(versions.items()))
    return (f'<h2 id="runs">Runs</h2><details><summary>How each of the {len(rows)} stored runs was made '
            f'(config.json)</summary><div class="scroll"><table class="t"><tr>{head}</tr>{body}</table>'
            f'</div><p class="note">Package versions: {packages or "–"}</p></details>')


def write_html_report(results_dir, out, gallery_n: int = GALLERY_N,
                      gallery_split: str = GALLERY_SPLIT) -> Path:
    """Write the page to `out`; returns its path."""
    results_dir, out = Path(results_dir), Path(out)
    part = '<section class="page-part">{}</section>'.format   # hidden in the gallery-only view
    gallery = gallery_section(gallery_data(results_dir, gallery_n, gallery_split))
    sections = [part(tables_section(results_dir)), part(curves_section(results_dir, gallery_split)),
                f"<section>{gallery}</section>", part(runs_section(results_dir))]
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>sag-harness report: {esc(results_dir)}</title>
<link rel="icon" href="data:,"><style>{STYLE}</style><script>{ERROR_TRAP}</script></head>
<body><h1>sag-harness report</h1>
<p class="note page-part">Results store: <code>{esc(results_dir)}</code>. Cells are mean ± sample std over
seeds (n seeds), with the paper's figure beneath. One self-contained file: no server, no network.</p>
<nav class="page-part"><a href="#tables">tables</a><a href="#curves">τ-curves</a>
<a href="#gallery">gallery</a><a href="#runs">runs</a></nav>
{chr(10).join(sections)}
<div id="status" data-errors="0" data-items="0" data-visible="0" data-ready="0">page script: not run</div>
<script>{GALLERY_SCRIPT}</script></body></html>
"""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out
