"""Training speed and memory: samples per second of each method's fit on synthref train, and the
peak resident memory of the process (resource.getrusage). Prints; asserts nothing.

    python benchmarks/bench_train.py [--methods sag,maskclip,groupvit,tseg] [--profile smoke]
        [--steps 8] [--threads 1] [--data-root DIR]

Each method runs in its own child process, so each peak RSS is that method's alone (model,
optimiser, activations, stand-in pretraining if not cached yet, the interpreter and its imports).
The fit is the method's own (`Segmenter.fit`, the global batch of its config) capped at `--steps`
optimiser steps; samples/second = steps × batch / fit seconds, after one warm-up fit of 1 step.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

DEFAULT_METHODS = "sag,maskclip,groupvit,tseg"


def fit_once(spec: str, profile: str, data_root: Path, steps: int) -> tuple[float, int]:
    """(seconds, global batch) of one capped fit, built as the runner builds it."""
    from harness.config import load_run_config
    from harness.data.datasets import open_split
    from harness.paths import cache_dir
    from harness.registry import segmenter_class
    from harness.seeding import seed_everything
    from harness.segmenter import RunEnv
    from harness.run.fit_loop import FitContext

    resolved = load_run_config(spec, "synthref", profile, [f"train.max_steps={steps}"])
    seed_everything(0)
    train = open_split("synthref", "train", data_root=data_root)
    env = RunEnv(dataset="synthref", data_root=Path(train.root), cache_dir=cache_dir(), progress=False)
    segmenter = segmenter_class(resolved.method)(resolved.cfg["method"], env)
    train_cfg = dict(resolved.cfg["train"])
    start = time.perf_counter()
    segmenter.fit(train, train_cfg, 0, FitContext.of(env))
    return time.perf_counter() - start, int(train_cfg.get("batch_size", 32))


def child(spec: str, profile: str, data_root: Path, steps: int) -> None:
    """One method: warm-up fit, timed fit, then a JSON line with the figures."""
    fit_once(spec, profile, data_root, 1)
    seconds, batch = fit_once(spec, profile, data_root, steps)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes
    print(json.dumps({"method": spec, "samples_per_s": steps * batch / seconds,
                      "batch": batch, "seconds": seconds, "peak_rss_mb": peak_mb}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default=DEFAULT_METHODS)
    parser.add_argument("--profile", default="smoke", help="model sizes of this profile")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--data-root", default=None, help="default: the generated synthref")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    import torch

    from harness.data.synthref import ensure_synthref

    if args.threads:
        torch.set_num_threads(args.threads)
    data_root = Path(args.data_root) if args.data_root else ensure_synthref("synthref")
    if args.child:
        child(args.child, args.profile, data_root, args.steps)
        return
    print(f"training on synthref train ({args.profile} models, {args.steps} steps, "
          f"{args.threads or torch.get_num_threads()} torch threads)")
    for spec in [s.strip() for s in args.methods.split(",") if s.strip()]:
        command = [sys.executable, __file__, "--child", spec, "--profile", args.profile,
                   "--steps", str(args.steps), "--data-root", str(data_root)]
        if args.threads:
            command += ["--threads", str(args.threads)]
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True,
                              env=dict(os.environ, PYTHONPATH=str(REPO)))
        if done.returncode != 0:
            print(f"  {spec:<10} failed: {done.stderr.strip().splitlines()[-1:]}")
            continue
        row = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"  {spec:<10} {row['samples_per_s']:8.1f} samples/s (batch {row['batch']}, "
              f"{row['seconds']:.2f} s)   peak RSS {row['peak_rss_mb']:7.0f} MB", flush=True)


if __name__ == "__main__":
    main()
