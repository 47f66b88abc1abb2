"""Figures against the stand-ins' pretraining: what a method scores on a stand-in pretrained for N
steps on synthref's captions (mIoU, grounding gap, pointing) — zero-shot where the method has a
zero-shot variant (CLIP, GroupViT), else after its fine-tuning at the common budget (the ViT
stand-in, through TSEG, its cheaper reader). Prints a table and writes standin_curves.json and
standin_curves.png; asserts nothing.

    python benchmarks/bench_standin_curves.py [--standins clip,groupvit,vit] [--steps 100,200,400,800]
        [--standin-seeds 0] [--split val] [--out results/standin-curves]

Each point pretrains the stand-in afresh at N steps (its warm-up and cosine schedule span the N
steps; `--set method.<backbone>.standin.steps=N` through the CLI, cached by config hash like any
stand-in) and runs the method on it. A stand-in's seed is fixed in its config (0), so the run seeds
never vary it; `--standin-seeds 0,1,2` pretrains it at each seed (`<section>.seed`) to show how much
a figure owes to that one draw. The configs' values (CLIP 400, GroupViT 200, ViT 300) are points of
the curve; the CLIP stand-in's issue target is MaskCLIP zero-shot ≥ 15 mIoU on synthref val.
`--standins vit --steps 300 --standin-seeds 0,1,2` gives TSEG at the ViT stand-in's seeds.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.bench_learning_curves import parse_steps, plot_curves, print_table, run_point  # noqa: E402

# stand-in -> (the method that reads it, the config section of its pretraining)
STANDINS = {
    "clip": ("maskclip@zeroshot", "method.clip.standin"),
    "groupvit": ("groupvit@zeroshot", "method.backbone.standin"),
    "vit": ("tseg", "method.vit.standin"),
}


def label(series: str) -> str:
    standin, _, seed = series.partition("@seed")
    return f"{STANDINS[standin][0]} ({standin} stand-in{f', seed {seed}' if seed else ''})"


def mark_target(axes, name: str) -> None:
    if name == "mIoU":
        axes.axhline(15, color="red", linestyle="--", linewidth=1)   # the CLIP stand-in's target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--standins", default="clip,groupvit")
    parser.add_argument("--steps", default="100,200,400,800")
    parser.add_argument("--standin-seeds", default="0")
    parser.add_argument("--split", default="val")
    parser.add_argument("--out", default=str(REPO / "results" / "standin-curves"))
    args = parser.parse_args()
    standins = args.standins.split(",")
    unknown = sorted(set(standins) - set(STANDINS))
    if unknown:
        raise SystemExit(f"--standins: unknown {unknown}; expected some of {sorted(STANDINS)}")
    steps = parse_steps(args.steps)
    try:
        seeds = [int(s) for s in args.standin_seeds.split(",")]
    except ValueError:
        raise SystemExit(f"--standin-seeds: expected comma-separated integers, got {args.standin_seeds}") from None
    out = Path(args.out)
    points = []
    for standin in standins:
        method, key = STANDINS[standin]
        for seed in seeds:
            # seed 0 (the configs' own) keeps the folders and the series name of a one-seed curve
            series = standin if seed == 0 else f"{standin}@seed{seed}"
            overrides = [] if seed == 0 else [f"{key}.seed={seed}"]
            for n in steps:
                point = run_point(method, overrides + [f"{key}.steps={n}"], 0, args.split,
                                  out / f"{series.replace('@', '-')}-steps{n}")
                points.append(dict(point, standin=series, steps=n, split=args.split))
                print(f"{method:18s} stand-in seed {seed} {n:4d} steps: mIoU {point['mIoU']:6.2f}  "
                      f"gap {point['gap']:6.2f}  pointing {point['pointing']:6.2f}  "
                      f"(build incl. pretraining {point['build_s']:.0f} s)", flush=True)
    (out / "standin_curves.json").write_text(json.dumps(points, indent=1))
    print_table(points, "standin", label, steps, "method (stand-in)",
                "build seconds include the pretraining on a cache miss")
    figure = plot_curves(points, "standin", label, "stand-in pretraining steps (log)",
                         lambda name: f"{name} (synthref {args.split})", mark_target,
                         out / "standin_curves.png")
    print(f"wrote {out / 'standin_curves.json'} and {figure}")


if __name__ == "__main__":
    main()
