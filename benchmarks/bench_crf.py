"""DenseCRF cost: milliseconds per image at 64×64 (synthref) and 480×640 (COCO-sized), and the
speed-up of `CRFPool` with 2 processes over 1 on a batch of 480×640 images. Prints; asserts nothing.

    python benchmarks/bench_crf.py [--images 16] [--repeats 3] [--workers 2]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.eval.postprocess import CRFConfig, CRFPool, available_cpus, dense_crf  # noqa: E402


def synthetic_pair(seed: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """A noisy image with a coloured ellipse, and a soft, offset score map of it."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width]
    inside = ((yy - height / 2) / (0.3 * height)) ** 2 + ((xx - width / 2) / (0.25 * width)) ** 2 < 1
    image = np.where(inside[..., None], [200, 60, 50], [70, 110, 80])
    image = np.clip(image + rng.integers(-20, 21, (height, width, 3)), 0, 255).astype(np.uint8)
    score = np.roll(inside.astype(np.float32), width // 20, axis=1) * 0.6 + rng.random((height, width)) * 0.4
    return image, score.astype(np.float32)


def ms_per_image(height: int, width: int, repeats: int) -> tuple[float, float]:
    """(wall, CPU) milliseconds per image; CPU time shows the cost on a machine shared with others."""
    image, score = synthetic_pair(0, height, width)
    dense_crf(image, score)                                  # warm-up
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        dense_crf(image, score)
    return (1000 * (time.perf_counter() - wall) / repeats, 1000 * (time.process_time() - cpu) / repeats)


def pool_seconds(workers: int, pairs: list, repeats: int) -> float:
    """Best-of-`repeats` seconds for one `map` over the batch (the pool started beforehand)."""
    images, scores = [p[0] for p in pairs], [p[1] for p in pairs]
    with CRFPool(workers=workers) as pool:
        pool.map(images[:workers], scores[:workers])         # start the processes outside the timing
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            pool.map(images, scores)
            best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    config = CRFConfig()
    print(f"DenseCRF, {config.iterations} iterations; {available_cpus()} CPUs available to this process")
    for height, width, repeats in ((64, 64, 50), (480, 640, args.repeats)):
        wall_ms, cpu_ms = ms_per_image(height, width, repeats)
        print(f"  {height}x{width}: {wall_ms:8.1f} ms / image wall, {cpu_ms:8.1f} ms CPU")
    pairs = [synthetic_pair(seed, 480, 640) for seed in range(args.images)]
    one = pool_seconds(1, pairs, args.repeats)
    many = pool_seconds(args.workers, pairs, args.repeats)
    print(f"  pool on {args.images} images of 480x640: 1 process {one:.2f} s, "
          f"{args.workers} processes {many:.2f} s, speed-up {one / many:.2f}x")


if __name__ == "__main__":
    main()
