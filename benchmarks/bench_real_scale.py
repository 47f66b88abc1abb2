"""Real scale on this machine: every method at its real-data config (configs/*_refcoco.py) with
random weights in the official layouts, on official-format RefCOCO files with 640×480 JPEGs, at
the config's batch (32). Prints; asserts nothing.

    python benchmarks/bench_real_scale.py [--methods sag,tseg,maskclip,groupvit] [--steps 1]
        [--eval-n 8] [--device cpu|cuda] [--amp none,bf16,fp16] [--json OUT.json]
        [--gpu-name NAME --gpu-peak-tflops 312 --utilisation 0.3] [--tiny]

Per method, in a child process of its own (so its peak RSS is its alone): parameters; the
activations autograd keeps for backward (measured at batch 1 and 2, projected to 32); FLOPs of a
training step (torch's FlopCounterMode over the method's own fit: the ops with a FLOP formula —
matmuls, convolutions, attention; elementwise ops are not counted); seconds per step; peak memory;
evaluation expressions/s; and the release schedule (config epochs × ceil(120,624 / 32) steps on
RefCOCO train, then val+testA+testB) projected on this machine and, from the FLOPs at a stated
utilisation of a named GPU's peak, on one GPU (marked as a projection). A batch that would not fit
the memory cap is measured at the largest power of two that does and marked `b=…`, its per-step
figures scaled ×32/b. Also measured: the data path (images/s decoded and resized per DataLoader
worker) against the model's images/s, and the image cache's memory at real scale.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks import real_scale  # noqa: E402

GB = real_scale.GB
BATCH = 32


def memory_available() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def current_rss() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# ------------------------------------------------------------------------------- child: one method

def method_child(args) -> dict:
    """One method × AMP modes in this process; the figures as a dict (printed as a JSON line)."""
    import torch

    device = torch.device(args.device)
    ckpt = json.loads(args.ckpt)
    overrides = real_scale.method_overrides(args.child, ckpt, args.tiny) + [
        item.partition(":")[2] for item in args.set if item.startswith(args.child + ":")]
    segmenter, resolved, train = real_scale.build(args.child, overrides, Path(args.data_root), device)
    train_cfg = dict(resolved.cfg["train"])
    row = {"method": args.child, "device": str(device), "epochs": train_cfg["epochs"],
           "config_batch": train_cfg["batch_size"], "input_size": resolved.cfg["method"]["input_size"],
           **real_scale.parameters(segmenter), "built_rss_gb": current_rss() / GB, "modes": {}}
    for amp in args.amp.split(","):
        row["modes"][amp] = _one_mode(segmenter, resolved, train, train_cfg, device, None if amp == "none" else amp,
                                      args, row["param_bytes"] + current_rss())
    return row


def _one_mode(segmenter, resolved, train, train_cfg, device, amp, args, fixed_bytes) -> dict:
    import torch

    try:
        out = {}
        if not args.no_probe:
            probes = [real_scale.fit(segmenter, train, train_cfg, device, batch=b, amp=amp, saved_bytes=True)
                      for b in (1, 2)]                                      # also the warm-up
            per_sample = probes[1]["saved_bytes"] - probes[0]["saved_bytes"]
            fixed = probes[0]["saved_bytes"] - per_sample
            out = {"activations_gb_per_sample": per_sample / GB,
                   "activations_gb_at_32": (fixed + BATCH * per_sample) / GB}
        batch = args.batch or _batch_that_fits(fixed, per_sample, fixed_bytes, device, args.memory_cap_gb)
        out["batch"] = batch
        on_gpu = device.type == "cuda"
        if on_gpu:   # FLOPs in a step of their own: the counter's Python overhead would skew a GPU step
            out["flops_per_step"] = real_scale.fit(segmenter, train, train_cfg, device, batch=batch, amp=amp,
                                                   count_flops=True)["flops_per_step"]
            torch.cuda.reset_peak_memory_stats(device)
        timed = real_scale.fit(segmenter, train, train_cfg, device, batch=batch, steps=args.steps, amp=amp,
                               count_flops=not on_gpu)
        out.update(timed, **real_scale.peak_memory(device))
        if args.eval_n:
            out.update(real_scale.evaluate(segmenter, resolved, Path(args.data_root), args.eval_n, count_flops=not on_gpu))
    except torch.cuda.OutOfMemoryError as exc:
        out = dict(locals().get("out") or {}, oom=True, error=str(exc).splitlines()[0], **real_scale.peak_memory(device))
        torch.cuda.empty_cache()
    return out


def _batch_that_fits(fixed: int, per_sample: int, base_bytes: int, device, cap_gb: float) -> int:
    """32, or the largest power of two whose step fits the memory cap (CPU): the process as built
    plus the parameters once more (`base_bytes`), gradients and AdamW's two moments (2 × the
    parameters; within `base_bytes` + 1 GB for these models) and 1.1 × the activations."""
    if device.type != "cpu":
        return BATCH
    batch = BATCH
    while batch > 1 and base_bytes + GB + 1.1 * (fixed + batch * per_sample) > cap_gb * GB:
        batch //= 2
    return batch


# ------------------------------------------------------------------------------- child: data path

def data_child(args) -> dict:
    """Images/s of the training loader (decode + squash, no cache hits) by worker count and size,
    and the image cache's resident memory when it streams more images than its bound holds."""
    import torch

    from harness.data.datasets import open_split
    from harness.data.loader import ImageCache, TrainLoader

    train = open_split("refcoco", "train", data_root=Path(args.data_root))
    torch.set_num_threads(1)   # as in a worker: workers=0 is then one process decoding, like workers=1
    cache = cache_figures(train, args.cache_bound_mb)     # first, while nothing freed can be reused
    rows = []
    for size in (224, 384):
        for workers in [int(w) for w in args.workers.split(",")]:
            with TrainLoader(train, size, BATCH, seed=0, workers=workers, cache=ImageCache(1)) as loader:
                for _ in loader.epoch(0):               # starts the workers; the timed epoch is the second
                    pass
                started = time.perf_counter()
                n = sum(len(batch["sample_ids"]) for batch in loader.epoch(1))
                seconds = time.perf_counter() - started
            rows.append({"size": size, "workers": workers, "images_per_s": n / seconds,
                         "per_worker": n / seconds / max(1, workers)})
    return {"loader": rows, "threads": torch.get_num_threads(), "cache": cache}


def cache_figures(train, bound_mb: int) -> dict:
    """Every train image through an ImageCache bounded at `bound_mb` at 384 px: what it holds and
    how much this process grew."""
    from harness.data.loader import ImageCache, load_image

    paths = list(dict.fromkeys(s.image_path for s in train.samples))
    load_image(paths[0], 384)                              # the decoder's own buffers, before measuring
    cache, before = ImageCache(bound_mb * 1024 ** 2), current_rss()
    for path in paths:
        cache.get(path, 384)
    return {"bound_mb": bound_mb, "images_streamed": len(paths), "entries": len(cache),
            "held_mb": cache._bytes / 1024 ** 2, "rss_growth_mb": (current_rss() - before) / 1024 ** 2,
            "unbounded_mb": len(paths) * 3 * 384 * 384 * 4 / 1024 ** 2}


# ------------------------------------------------------------------------------- parent

def run_child(kind: str, args, extra: list[str]) -> dict:
    command = [sys.executable, __file__, "--child", kind, "--data-root", str(args.data_root), "--device", args.device,
               "--memory-cap-gb", str(args.memory_cap_gb), *extra]
    # Threads that find their cores taken wait passively instead of spinning (this machine is shared:
    # a spinning 2-thread step measured 20x slower beside other work).
    env = {"OMP_WAIT_POLICY": "PASSIVE", **os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=env,
                          preexec_fn=lambda: _cap_memory(args.memory_cap_gb))
    if done.returncode != 0:
        errors = [line for line in done.stderr.splitlines() if "Error" in line or line.startswith("error")]
        return {"method": kind, "error": errors[-1].strip() if errors else f"exit status {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _cap_memory(cap_gb: float) -> None:
    """The child's private memory capped (RLIMIT_DATA): past it an allocation fails in the child
    instead of pressing the machine (this one is shared with other work)."""
    cap = int(cap_gb * GB)
    resource.setrlimit(resource.RLIMIT_DATA, (cap, cap))


def projection(row: dict, mode: dict, args) -> dict:
    """The release schedule's length here and on the named GPU (from FLOPs), in hours."""
    steps = row["epochs"] * math.ceil(real_scale.REFCOCO["train"] / BATCH)
    scale = BATCH / mode["batch"]
    gpu_flops = args.gpu_peak_tflops * 1e12 * args.utilisation
    out = {"release_steps": steps, "scale": scale,
           "cpu_train_h": steps * mode["seconds_per_step"] * scale / 3600}
    if "flops_per_step" in mode:
        out["gpu_train_h"] = steps * mode["flops_per_step"] * scale / gpu_flops / 3600
        out["model_images_per_s_gpu"] = BATCH / (mode["flops_per_step"] * scale / gpu_flops)
    if "expressions_per_s" in mode:
        out["cpu_eval_h"] = real_scale.EVAL_EXPRESSIONS / mode["expressions_per_s"] / 3600
    if "flops_per_expression" in mode:   # the model from its FLOPs, the protocol at this CPU's speed
        out["gpu_eval_h"] = real_scale.EVAL_EXPRESSIONS * (mode["flops_per_expression"] / gpu_flops
                                                           + mode["eval_protocol_s_per_expression"]) / 3600
    out["model_images_per_s_here"] = mode["batch"] / mode["seconds_per_step"]
    return out


def duration(hours: float) -> str:
    if hours < 1 / 60:
        return f"{hours * 3600:.0f} s"
    if hours < 1:
        return f"{hours * 60:.1f} min"
    if hours < 48:
        return f"{hours:.1f} h"
    return f"{hours / 24:.0f} d" if hours < 24 * 365 else f"{hours / 24 / 365:.1f} y"


def print_table(rows: list[dict], data: dict, args) -> None:
    from tabulate import tabulate

    table = []
    for row in rows:
        if "error" in row:
            table.append([row["method"], "failed: " + row["error"]] + [""] * 10)
            continue
        for amp, mode in row["modes"].items():
            if "seconds_per_step" not in mode:
                table.append([row["method"], amp, "out of memory: " + mode.get("error", "")] + [""] * 9)
                continue
            p = mode["projection"]
            mark = "" if mode["batch"] == BATCH else f" (b={mode['batch']}, ×{p['scale']:.0f})"
            table.append([row["method"] + ("" if amp == "none" else f" {amp}"), f"{row['params'] / 1e6:.1f} M",
                          f"{mode['flops_per_step'] * p['scale'] / 1e12:.2f}{mark}" if "flops_per_step" in mode else "–",
                          f"{mode['seconds_per_step'] * p['scale']:.1f}{mark}",
                          f"{mode.get('activations_gb_at_32', float('nan')):.1f}", f"{mode['peak_rss_gb']:.1f}",
                          f"{mode.get('expressions_per_s', float('nan')):.2f}",
                          f"{p['release_steps']:,}", duration(p["cpu_train_h"]),
                          duration(p["cpu_eval_h"]) if "cpu_eval_h" in p else "–",
                          duration(p["gpu_train_h"]) if "gpu_train_h" in p else "–",
                          duration(p["gpu_eval_h"]) if "gpu_eval_h" in p else "–"])
    print(tabulate(table, headers=["method", "params", "TFLOPs/step", "s/step", "act. GB @32", "peak RSS GB",
                                   "eval expr/s", "release steps", "train here", "eval here", f"train {args.gpu_name}*",
                                   f"eval {args.gpu_name}*"], tablefmt="github"))
    print(f"* projection: FLOPs at {args.utilisation:.0%} of {args.gpu_peak_tflops:g} TFLOP/s "
          f"({args.gpu_name}, dense bf16/fp16 tensor-core peak); evaluation adds the protocol's CPU time "
          "per expression as measured here; not measured on a GPU")
    if data:
        print_data(data, rows)


def print_data(data: dict, rows: list[dict]) -> None:
    print("\ndata path (decode 640×480 JPEG + antialiased squash, no cache hits; one torch thread a process;"
          " workers 0: the main process decodes):")
    for r in data["loader"]:
        print(f"  {r['size']} px, workers {r['workers']}: {r['images_per_s']:7.1f} images/s "
              f"({r['per_worker']:.1f} per worker process)")
    for row in rows:
        for amp, mode in row.get("modes", {}).items():
            if "projection" in mode:
                p, size = mode["projection"], row["input_size"]
                worker = next((r["per_worker"] for r in data["loader"] if (r["size"], r["workers"]) == (size, 1)), None)
                gpu = p.get("model_images_per_s_gpu")
                need = f", {math.ceil(gpu / worker)} worker(s) to feed it" if gpu and worker else ""
                print(f"  {row['method']} {amp}: model {p['model_images_per_s_here']:.2f} images/s here; "
                      f"{gpu or float('nan'):.0f} images/s projected on the GPU{need}")
    c = data["cache"]
    print(f"image cache at 384 px (float32, {3 * 384 * 384 * 4 / 1024 ** 2:.2f} MB an image): streaming "
          f"{c['images_streamed']} images ({c['unbounded_mb']:.0f} MB unbounded) through a {c['bound_mb']} MB bound "
          f"held {c['entries']} ({c['held_mb']:.0f} MB); resident memory grew {c['rss_growth_mb']:.0f} MB")
    for size in (224, 384):
        per = 3 * size * size * 4
        print(f"  RefCOCO train at {size} px: {real_scale.REFCOCO['train_images'] * per / GB:.1f} GB for all "
              f"{real_scale.REFCOCO['train_images']:,} images; the default 2 GiB holds {2 * GB // per:,} "
              f"({2 * GB // per / real_scale.REFCOCO['train_images']:.0%})")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default=",".join(real_scale.METHODS))
    parser.add_argument("--steps", type=int, default=1, help="timed optimiser steps per method")
    parser.add_argument("--eval-n", type=int, default=8, help="val expressions in the evaluation pass (0: none)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", default="none", help="comma-separated: none, bf16, fp16")
    parser.add_argument("--batch", type=int, default=None, help="force this batch (default: 32 if it fits)")
    parser.add_argument("--train-images", type=int, default=64, help="fixture train images (2 expressions each)")
    parser.add_argument("--eval-images", type=int, default=4)
    parser.add_argument("--work", default=None, help="where fixtures and checkpoints live (default: the cache)")
    parser.add_argument("--data-root", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--memory-cap-gb", type=float, default=None,
                        help="each child's private memory cap (default: what is available now − 3 GB)")
    parser.add_argument("--workers", default="0,1,2", help="loader worker counts to measure")
    parser.add_argument("--cache-bound-mb", type=int, default=64)
    parser.add_argument("--no-data", action="store_true", help="skip the data-path and cache measurements")
    parser.add_argument("--gpu-name", default="A100")
    parser.add_argument("--gpu-peak-tflops", type=float, default=312.0)
    parser.add_argument("--utilisation", type=float, default=0.3)
    parser.add_argument("--tiny", action="store_true", help="the tests' small backbones (a rehearsal)")
    parser.add_argument("--json", default=None, help="also write every figure to this file")
    parser.add_argument("--prepare-only", action="store_true", help="write the fixtures and checkpoints, then stop")
    parser.add_argument("--no-probe", action="store_true", help="skip the activation probes (needs --batch)")
    parser.add_argument("--set", action="append", default=[], metavar="METHOD:KEY=VALUE",
                        help="a config override for one method, e.g. maskclip:method.templates=bare")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--ckpt", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.no_probe and not args.batch:
        parser.error("--no-probe needs --batch (the probes size the batch to the memory cap)")
    if args.memory_cap_gb is None:
        args.memory_cap_gb = round(max(2.0, memory_available() / GB - 3.0), 1)
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(data_child(args) if args.child == "data" else method_child(args)))
        return {}
    from harness.paths import cache_dir

    work = Path(args.work) if args.work else cache_dir() / "real-scale"
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    started = time.perf_counter()
    args.data_root = real_scale.write_data(work / "data", args.train_images, args.eval_images)
    ckpt = real_scale.write_checkpoints(work / "checkpoints", methods, args.tiny)
    print(f"fixtures and checkpoints ready in {time.perf_counter() - started:.0f} s ({work}); "
          f"memory cap per child {args.memory_cap_gb} GB", flush=True)
    if args.prepare_only:
        return {}
    data = {} if args.no_data else run_child("data", args, ["--workers", args.workers,
                                                             "--cache-bound-mb", str(args.cache_bound_mb)])
    rows = []
    for method in methods:
        extra = ["--amp", args.amp, "--steps", str(args.steps), "--eval-n", str(args.eval_n),
                 "--ckpt", json.dumps({k: str(v) for k, v in ckpt.items()})]
        extra += ["--tiny"] if args.tiny else []
        extra += ["--batch", str(args.batch)] if args.batch else []
        extra += ["--no-probe"] if args.no_probe else []
        extra += [f"--set={item}" for item in args.set]
        rows.append(run_child(method, args, extra))
        for mode in rows[-1].get("modes", {}).values():
            if "seconds_per_step" in mode:
                mode["projection"] = projection(rows[-1], mode, args)
        print(f"  {method} done at {time.perf_counter() - started:.0f} s", flush=True)
    print_table(rows, data, args)
    report = {"methods": rows, "data": data, "gpu": {"name": args.gpu_name, "peak_tflops": args.gpu_peak_tflops,
                                                     "utilisation": args.utilisation},
              "seconds": time.perf_counter() - started}
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
