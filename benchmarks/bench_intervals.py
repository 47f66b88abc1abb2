"""How long intervals take: a 20-cell table with `--ci` at RefCOCO's size, and `compare`.

    python benchmarks/bench_intervals.py [--images 1500] [--expressions 10834] [--boot 2000]
        [--results results/a4]

Writes a store in a temporary folder: 5 methods × 3 seeds × 4 settings of samples.csv rows on
RefCOCO val's scale (10,834 expressions on 1,500 images, random IoUs), then times the 20 cells'
intervals (reading samples.csv included) and one `compare` with its sign-flip test. With
`--results` it also times `table A4 --ci` on a real store. Prints; asserts nothing.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

METHODS = ("m0", "m1", "m2", "m3", "m4")
SETTINGS = ("tau=0.30", "tau=0.40", "tau=0.50", "tau=0.60")


def write_store(root: Path, images: int, expressions: int) -> None:
    from harness.store import SAMPLE_COLUMNS

    rng = np.random.default_rng(0)
    image_of = np.sort(rng.integers(0, images, size=expressions))
    for m, method in enumerate(METHODS):
        for seed in range(3):
            folder = root / "synthref" / method / f"seed{seed}"
            folder.mkdir(parents=True)
            with open(folder / "samples.csv", "w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=SAMPLE_COLUMNS)
                writer.writeheader()
                for setting in SETTINGS:
                    inter = rng.integers(0, 100, size=expressions) + 5 * m
                    for k in range(expressions):
                        writer.writerow(dict(split="val", setting=setting, sample_id=k,
                                             ref_id=2 * image_of[k] + k % 2, image_id=image_of[k],
                                             I=inter[k], U=200, IoU=inter[k] / 200, pointing=k % 2,
                                             swap_ref_id=2 * image_of[k] + 1 - k % 2, I_swap=10,
                                             U_swap=200, IoU_swap=0.05))
            (folder / "metrics.json").write_text(json.dumps(
                {"method": method, "dataset": "synthref", "seed": seed, "config_hash": "h",
                 "splits": {"val": {s: {"mIoU": 0.0, "n": expressions} for s in SETTINGS}}}))


def main() -> None:
    from harness.report.cell_intervals import CellIntervals
    from harness.report.compare import compare_methods
    from harness.report.intervals import IntervalOptions

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1500)
    parser.add_argument("--expressions", type=int, default=10834)
    parser.add_argument("--boot", type=int, default=2000)
    parser.add_argument("--results", default=None, help="also time `table A4 --ci` on this store")
    args = parser.parse_args()
    opts = IntervalOptions(boot=args.boot)
    with tempfile.TemporaryDirectory() as tmp:
        tick = time.perf_counter()
        write_store(Path(tmp), args.images, args.expressions)
        print(f"store: {len(METHODS)} methods × 3 seeds × {len(SETTINGS)} settings × "
              f"{args.expressions} expressions on {args.images} images "
              f"(written in {time.perf_counter() - tick:.1f} s)")
        tick = time.perf_counter()
        intervals = CellIntervals(tmp, opts)
        for method in METHODS:
            for setting in SETTINGS:
                key = dict(dataset="synthref", method=method, split="val", setting=setting, metric="mIoU")
                intervals.estimate(key, (0, 1, 2))
        print(f"20 cells with 95 % intervals, B = {args.boot}: {time.perf_counter() - tick:.2f} s "
              "(reading the 15 samples.csv included)")
        tick = time.perf_counter()
        compare_methods(tmp, "m1", "m0", opts=opts)
        print(f"compare m1 m0 (7 figures × 4 scopes, each with a {args.boot}-round sign-flip test): "
              f"{time.perf_counter() - tick:.2f} s")
    if args.results:
        from harness.report.tables import render_table

        tick = time.perf_counter()
        render_table("A4", args.results, ci=opts)
        print(f"table A4 --ci on {args.results}: {time.perf_counter() - tick:.2f} s")


if __name__ == "__main__":
    main()
