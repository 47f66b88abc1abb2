"""Evaluation speed: expressions per second for predict + protocol + metrics, per method, on a
synthref eval split, and the share of that time spent outside the model forward (goal: protocol
and metrics under 5% of evaluation time). Prints; asserts nothing.

    python benchmarks/bench_eval.py [--methods sag,maskclip,groupvit,tseg,whole,objects]
        [--profile smoke] [--split val] [--limit N] [--threads 1] [--data-root DIR]

The segmenters are built as `run` builds them (stand-in backbones from the cache, pretrained on
first use) but not fine-tuned: evaluation cost does not depend on the weights. Stages are the
runner's own timings (harness/run/eval_pass.py): data = reading/resizing images and decoding masks,
predict = the model forward, metrics = protocol (resize to the original size, min-max) plus the
evaluator. The first pass warms the image cache; the figures are from a second pass.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

DEFAULT_METHODS = "sag,maskclip,groupvit,tseg,whole,objects"


def build_segmenter(spec: str, profile: str, data_root: Path):
    """The segmenter of `spec` as the runner builds it (seeded, stand-ins from the cache)."""
    from harness.config import load_run_config
    from harness.data.datasets import open_split
    from harness.paths import cache_dir
    from harness.registry import segmenter_class
    from harness.seeding import seed_everything
    from harness.segmenter import RunEnv

    resolved = load_run_config(spec, "synthref", profile)
    seed_everything(0)
    root = open_split("synthref", "val", data_root=data_root).root
    env = RunEnv(dataset="synthref", data_root=Path(root), cache_dir=cache_dir(), progress=False)
    return segmenter_class(resolved.method)(resolved.cfg["method"], env), resolved.cfg


def time_eval(spec: str, profile: str, data_root: Path, split: str, limit) -> dict:
    """Timings (seconds by stage) of the second of two evaluation passes, and n."""
    from harness.data.datasets import open_split
    from harness.run.eval_pass import evaluate_split

    segmenter, cfg = build_segmenter(spec, profile, data_root)
    dataset = open_split("synthref", split, data_root=data_root, limit=limit)
    evaluate_split(segmenter, dataset, cfg, [0.5], False, progress=False)  # warm caches
    timings = {}
    start = time.perf_counter()
    evaluate_split(segmenter, dataset, cfg, [0.5], False, timings=timings, progress=False)
    timings["total"] = time.perf_counter() - start
    timings["n"] = len(dataset)
    return timings


def report(spec: str, t: dict) -> str:
    total = t["total"]
    outside = total - t["predict"]
    return (f"  {spec:<10} {t['n'] / total:9.1f} expr/s   predict {100 * t['predict'] / total:5.1f}%"
            f"   protocol+metrics {100 * t['metrics'] / total:5.1f}%   data {100 * t['data'] / total:5.1f}%"
            f"   outside the forward {100 * outside / total:5.1f}%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default=DEFAULT_METHODS)
    parser.add_argument("--profile", default="smoke", help="model sizes of this profile")
    parser.add_argument("--split", default="val")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--data-root", default=None, help="default: the generated synthref")
    args = parser.parse_args()
    from harness.data.synthref import ensure_synthref

    if args.threads:
        torch.set_num_threads(args.threads)
    data_root = Path(args.data_root) if args.data_root else ensure_synthref("synthref")
    print(f"evaluation on synthref {args.split} ({args.profile} models, {torch.get_num_threads()} "
          f"torch threads, no CRF): expressions/second and where the time goes")
    for spec in [s.strip() for s in args.methods.split(",") if s.strip()]:
        print(report(spec, time_eval(spec, args.profile, data_root, args.split, args.limit)),
              flush=True)


if __name__ == "__main__":
    main()
