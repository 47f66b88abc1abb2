"""The issue's wall-clock budgets, measured end to end through the CLI. Prints; asserts nothing.

    python benchmarks/bench_budgets.py main   # README main job from a fresh cache (goal ≤ 12 min)
    python benchmarks/bench_budgets.py a4     # run --table A4 on synthref, stand-ins cached (goal ≤ 60 min)
    python benchmarks/bench_budgets.py ci     # the CI gate's run (goal: .ci/run ≤ 30 min with the tests)
    python benchmarks/bench_budgets.py a2     # run --table A2 (SaG at T = 8, 6, 4, 2, 1; no goal)
    python benchmarks/bench_budgets.py a3     # run --table A3 (τ sweep; re-predicts stored SaG runs)
    python benchmarks/bench_budgets.py t3     # run --table T3 (main paper Table 3: K_g x K_s, schemes)

Each job runs in a child process into its own store; the per-stage breakdown (build = segmenter
construction incl. stand-in pretraining on a cache miss, fit, data, predict, crf, metrics) is
summed from the `timings_s` every run writes to its config.json, so the slowest stage is visible.
`--cache DIR` chooses the cache (default: a new temporary one for `main`, the user's for the rest);
`--out DIR` keeps the store (e.g. results/runs, for `harness table` and `harness report` afterwards).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

JOBS = {
    "main": (["--methods", "sag,maskclip"], 12 * 60),
    "a4": (["--table", "A4"], 60 * 60),
    # No goal in the issue for these two; A3 re-predicts SaG's stored A4 runs (no refit).
    "a2": (["--table", "A2"], None),
    "a3": (["--table", "A3"], None),
    "t3": (["--table", "T3"], None),
    "ci": (["--profile", "ci", "--seeds", "0", "--methods",
            "sag,maskclip,maskclip@zeroshot,groupvit,groupvit@zeroshot,tseg,whole,objects"], 15 * 60),
}


def stage_totals(results: Path) -> tuple[dict, dict]:
    """Seconds per stage over all runs, and per method spec."""
    totals, per_method = defaultdict(float), defaultdict(float)
    for config in results.glob("*/*/seed*/config.json"):
        record = json.loads(config.read_text())
        for stage, seconds in (record.get("timings_s") or {}).items():
            totals[stage] += seconds
            per_method[f"{config.parent.parent.parent.name}/{config.parent.parent.name}"] += seconds
    return dict(totals), dict(per_method)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("job", choices=sorted(JOBS))
    parser.add_argument("--cache", help="SAG_HARNESS_CACHE for the child (default: see above)")
    parser.add_argument("--out", help="store to run into (default: a new temporary one); a store that "
                        "already holds runs skips them, so the time measured is only what was missing")
    args = parser.parse_args()
    flags, goal = JOBS[args.job]
    env = dict(os.environ)
    if args.cache:
        env["SAG_HARNESS_CACHE"] = args.cache
    elif args.job == "main":
        env["SAG_HARNESS_CACHE"] = tempfile.mkdtemp(prefix="bench-cache-")
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix=f"bench-{args.job}-"))
    command = [sys.executable, "-m", "harness", "run", *flags, "--out", str(out), "--no-progress"]
    print("running:", " ".join(command[1:]), f"(cache {env.get('SAG_HARNESS_CACHE', 'default')})", flush=True)
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True)
    wall = time.perf_counter() - started
    totals, per_method = stage_totals(out)
    verdict = "no goal set" if goal is None else \
        f"goal {goal / 60:.0f} min: {'within' if wall <= goal else 'OVER'}"
    print(f"\n{args.job}: {wall:.0f} s wall ({wall / 60:.1f} min; {verdict})")
    print("per stage (s, summed over runs):",
          " · ".join(f"{k} {v:.0f}" for k, v in sorted(totals.items(), key=lambda kv: -kv[1])))
    for name, seconds in sorted(per_method.items(), key=lambda kv: -kv[1]):
        print(f"  {name:40s} {seconds:7.0f} s")


if __name__ == "__main__":
    main()
