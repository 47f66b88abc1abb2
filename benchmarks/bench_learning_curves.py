"""Learning curves on synthref: mIoU, grounding gap and pointing against the training budget.
Prints a table and writes curves.json and curves.png; asserts nothing.

    python benchmarks/bench_learning_curves.py [--methods sag,maskclip,tseg,groupvit]
        [--steps 100,300,600,1200] [--seed 0] [--split val] [--out results/learning-curves]

Every point is a fit of its own at that budget, made through the CLI as a table run is
(`harness run --set train.max_steps=N train.epochs=E`): the schedule (warm-up, cosine) spans the
N steps, as it would if N were the common budget in configs/_base_/synthref.py, so the curve
answers "what would this method score if every method got N steps", not "how far along one run
is it". E is the fewest epochs that hold N steps (3 at 300, the table runs' own value, so that point
is the table run's config). Each budget has its own store, `<out>/steps<N>`; a rerun skips the
fits already stored (the runner resumes), so the curve can be extended one budget at a time.

The issue's budget is 300 steps for every method; this shows what each method does below and
beyond it, at the same steps for all.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SETTING = "tau=0.50"
FIGURES = ("mIoU", "gap", "pointing")


def epochs_for(steps: int, train_size: int, train_cfg: dict) -> int:
    """The fewest epochs that hold `steps` steps, and never fewer than the method config's own
    (the table runs' value, configs/_base_/synthref.py)."""
    per_epoch = max(1, math.ceil(train_size / int(train_cfg["batch_size"])))
    return max(int(train_cfg["epochs"]), math.ceil(steps / per_epoch))


def run_point(method: str, overrides: list[str], seed: int, split: str, store: Path) -> dict:
    """Run (or resume) one method under `--set overrides` into `store` through the CLI; its
    figures at SETTING and the seconds of its stages (build includes a stand-in's pretraining)."""
    command = [sys.executable, "-m", "harness", "run", "--methods", method, "--seeds", str(seed),
               "--splits", split, "--out", str(store), "--no-progress", "--set", *overrides]
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    run = store / "synthref" / method / f"seed{seed}"
    metrics = json.loads((run / "metrics.json").read_text())
    timings = json.loads((run / "config.json").read_text()).get("timings_s") or {}
    summary = metrics["splits"][split][SETTING]
    return dict(method=method, seed=seed, wall_s=round(time.perf_counter() - started, 1),
                **{f"{stage}_s": round(float(timings.get(stage, math.nan)), 1) for stage in ("build", "fit")},
                **{name: round(float(summary[name]), 2) for name in FIGURES})


def fit_point(method: str, steps: int, epochs: int, seed: int, split: str, store: Path) -> dict:
    """One method fitted at one budget (its own schedule over `steps`)."""
    point = run_point(method, [f"train.max_steps={steps}", f"train.epochs={epochs}"], seed, split, store)
    return dict(point, steps=steps, epochs=epochs)


def parse_steps(text: str) -> list[int]:
    """`--steps 100,300` -> sorted distinct positive step counts, or SystemExit naming the flag."""
    steps = sorted({int(n) for n in text.split(",")})
    if steps[0] < 1:
        raise SystemExit(f"--steps: expected positive step counts, got {text}")
    return steps


def print_table(points: list[dict], series: str, label, steps: list[int], header: str, footnote: str) -> None:
    """A markdown table: one row per `point[series]` value (labelled `label(value)`), one column per step count."""
    print(f"\n| {header} | {' | '.join(f'{n} steps' for n in steps)} |")
    print("|---|" + "---|" * len(steps))
    for value in dict.fromkeys(p[series] for p in points):
        cells = {p["steps"]: p for p in points if p[series] == value}
        print(f"| {label(value)} | " + " | ".join(
            f"{cells[n]['mIoU']:.2f} / {cells[n]['gap']:.2f} / {cells[n]['pointing']:.1f}" for n in steps) + " |")
    print(f"(mIoU / grounding gap / pointing at τ = 0.5; {footnote})")


def plot_curves(points: list[dict], series: str, label, xlabel: str, title, mark, out: Path) -> Path:
    """One panel per figure in FIGURES: a curve per `point[series]` value against the steps (log axis).
    `title(figure name)` titles a panel; `mark(axes, figure name)` draws its reference lines; one
    legend goes below the panels."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(12, 3.8), dpi=100)
    values = sorted({p[series] for p in points})
    budgets = sorted({p["steps"] for p in points})
    for i, name in enumerate(FIGURES):
        axes = figure.add_subplot(1, len(FIGURES), i + 1)
        for j, value in enumerate(values):
            curve = sorted((p["steps"], p[name]) for p in points if p[series] == value)
            axes.plot(*zip(*curve), marker="o", color=f"C{j}", label=label(value))
        mark(axes, name)
        axes.set_xscale("log")
        axes.set_xticks(budgets, labels=[str(n) for n in budgets])
        axes.minorticks_off()
        axes.set_xlabel(xlabel)
        axes.set_title(title(name), fontsize=9)
        axes.grid(alpha=0.3)
    handles, labels = figure.axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=len(values), fontsize=8, frameon=False)
    figure.tight_layout(rect=(0, 0.06, 1, 1))     # the legend below the panels hides no point
    figure.savefig(out, format="png")
    return out


def mark_budget_and_target(axes, name: str) -> None:
    axes.axvline(300, color="grey", linestyle=":", linewidth=1)       # the common budget
    if name == "gap":
        axes.axhline(5, color="red", linestyle="--", linewidth=1)     # the gap target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", default="sag,maskclip,tseg,groupvit")
    parser.add_argument("--steps", default="100,300,600,1200")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split", default="val")
    parser.add_argument("--out", default=str(REPO / "results" / "learning-curves"))
    args = parser.parse_args()

    from harness.config import load_run_config
    from harness.data.datasets import open_split

    steps = parse_steps(args.steps)
    train_size = len(open_split("synthref", "train"))
    out = Path(args.out)
    points = []
    for method in args.methods.split(","):
        train_cfg = load_run_config(method, "synthref", "full", []).cfg["train"]
        for n in steps:
            point = fit_point(method, n, epochs_for(n, train_size, train_cfg), args.seed, args.split,
                              out / f"steps{n}")
            points.append(dict(point, split=args.split))
            print(f"{method:10s} {n:5d} steps: mIoU {point['mIoU']:6.2f}  gap {point['gap']:6.2f}  "
                  f"pointing {point['pointing']:6.2f}  (fit {point['fit_s']:.0f} s)", flush=True)
    (out / "curves.json").write_text(json.dumps(points, indent=1))
    print_table(points, "method", str, steps, "method", "every point its own fit")
    figure = plot_curves(points, "method", str, "optimiser steps of 32 (log)",
                         lambda name: f"{name} (synthref {args.split}, seed {args.seed})",
                         mark_budget_and_target, out / "curves.png")
    print(f"wrote {out / 'curves.json'} and {figure}")


if __name__ == "__main__":
    main()
