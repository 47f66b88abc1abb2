"""The GPU check's stages (benchmarks/gpu_check.sh runs the install, then this): what a researcher
about to spend GPU-days checks first, in one JSON (`<out>/gpu_check.json`).

1. environment: torch, CUDA, the GPU, bf16 support, CPUs.
2. gate: the `ci` profile of every gated method on this device (`python -m harness run --profile
   ci`), then `python -m harness check` against configs/reference/ci.json — the CPU reference with
   its tolerance bands; the verdict and the failing lines are recorded, and where each run computed.
3. steps: SaG and MaskCLIP at their real-data configs (batch 32, random weights in the official
   layouts) without AMP and with bf16 / fp16: seconds per step, peak GPU memory, or out-of-memory
   (benchmarks/bench_real_scale.py).
4. ddp: one DDP step under `torchrun` on NCCL (benchmarks/ddp_step.py), gradients checked
   against the same step without DDP.

Every stage runs in its own process group with a time limit (the whole fits 8 minutes on one
GPU with the install); one that fails or runs out of time is recorded as such and the others still
run. The exit status is 1 when a stage failed to run, 0 otherwise: the gate's verdict is a figure
in the JSON (and the last line printed), not a failure of the check.
`--dry-run` is the CPU rehearsal: the same stages at their smallest (the floor `whole` for the
gate, on val; the tests' small backbones at batch 2 under bf16, MaskCLIP's prompt ensemble cut to
the bare expression, for the steps; batch 8 for DDP), run at once: about a minute on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GATED = "sag,maskclip,maskclip@zeroshot,groupvit,groupvit@zeroshot,tseg,whole,objects"


def stage(command: list[str], limit_s: float, env: dict) -> dict:
    """Run `command` in a process group of its own; {rc, seconds, timed_out, output_tail}."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    try:
        output, timed_out = process.communicate(timeout=limit_s)[0], False
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)        # the run's --jobs workers too
        output, timed_out = process.communicate()[0], True
    lines = [line for line in (output or "").splitlines() if line.strip()]
    return {"command": " ".join(command), "rc": process.returncode, "timed_out": timed_out,
            "seconds": round(time.perf_counter() - started, 1), "limit_s": limit_s, "output_tail": lines[-25:]}


def environment() -> dict:
    import torch

    record = {"python": platform.python_version(), "torch": torch.__version__, "cuda_build": torch.version.cuda,
              "cuda_available": torch.cuda.is_available(), "cpus": os.cpu_count()}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        record.update(gpu=props.name, gpus=torch.cuda.device_count(), memory_gb=round(props.total_memory / 1024 ** 3, 1),
                      capability=f"{props.major}.{props.minor}", bf16=torch.cuda.is_bf16_supported(),
                      cudnn=torch.backends.cudnn.version())
    return record


def gate(args, env: dict) -> dict:
    runs = Path(args.out) / "ci-runs"
    if args.dry_run:   # the floor `whole` on val: no training, the gate's whole path
        methods, narrow, only = "whole", ["--splits", "val"], ["--only", "synthref/whole/seed0/val/*"]
    else:
        methods, narrow, only = GATED, ["--jobs", str(max(1, min(4, (os.cpu_count() or 2) // 2)))], []
    run = stage([sys.executable, "-m", "harness", "run", "--profile", "ci", "--seeds", "0", "--no-progress",
                 "--out", str(runs), "--methods", methods, *narrow], args.gate_limit_s, env)
    check = stage([sys.executable, "-m", "harness", "check", "--results", str(runs), "--reference",
                   str(REPO / "configs" / "reference" / "ci.json"), *only], 120, env)
    verdict = "pass" if check["rc"] == 0 else "fail" if check["rc"] == 1 else "error"
    return {"run": run, "check": check, "verdict": verdict, "computed_on": computed_on(runs)}


def computed_on(runs: Path) -> dict:
    """{run: the GPU its config.json records, or "cpu"}: the gate did run where it was meant to."""
    where = {}
    for record in sorted(runs.glob("*/*/seed*/config.json")):
        cuda = (json.loads(record.read_text()).get("platform") or {}).get("cuda")
        where[str(record.parent.relative_to(runs))] = cuda["device"] if cuda else "cpu"
    return where


def prepare(args, env: dict) -> subprocess.Popen:
    """Fixtures and checkpoints for the steps and DDP stages, written while the gate runs."""
    return subprocess.Popen(_bench(args) + ["--prepare-only"], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT, start_new_session=True)


def _bench(args) -> list[str]:
    command = [sys.executable, str(REPO / "benchmarks" / "bench_real_scale.py"), "--methods", "sag,maskclip",
               "--device", args.device, "--work", str(Path(args.out) / "real-scale"), "--no-data", "--eval-n", "0"]
    if args.dry_run:
        return command + ["--tiny", "--batch", "2", "--no-probe", "--steps", "1", "--train-images", "2",
                          "--amp", "bf16", "--set", "maskclip:method.templates=bare"]
    return command + ["--steps", "5", "--amp", "none,bf16,fp16" if args.device == "cuda" else "none,bf16"]


def steps(args, env: dict) -> dict:
    out = Path(args.out) / "steps.json"
    result = stage(_bench(args) + ["--json", str(out)], args.steps_limit_s, env)
    if out.is_file():
        result["figures"] = [_step_row(row) for row in json.loads(out.read_text())["methods"]]
    return result


def _step_row(row: dict) -> dict:
    keep = ("batch", "seconds_per_step", "flops_per_step", "finite", "cuda_peak_allocated_gb", "cuda_peak_reserved_gb",
            "peak_rss_gb", "activations_gb_at_32", "oom", "error")
    modes = {amp: {k: v for k, v in mode.items() if k in keep} for amp, mode in row.get("modes", {}).items()}
    for mode in modes.values():
        if mode.get("seconds_per_step"):
            mode["steps_per_s"] = 1 / mode["seconds_per_step"]
    return {"method": row["method"], "params": row.get("params"), "error": row.get("error"), "modes": modes}


def ddp(args, env: dict) -> dict:
    out = Path(args.out) / "ddp.json"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "1", "--master-addr", "127.0.0.1",
               "--master-port", str(port), str(REPO / "benchmarks" / "ddp_step.py"), "--json", str(out),
               "--work", str(Path(args.out) / "real-scale")] + (["--tiny", "--batch", "8"] if args.dry_run else [])
    result = stage(command, args.ddp_limit_s, dict(env, OMP_NUM_THREADS="1" if args.dry_run else env.get("OMP_NUM_THREADS", "4")))
    if out.is_file():
        result["figures"] = json.loads(out.read_text())
    return result


def run_stages(args, env: dict) -> dict:
    """On the device: the gate while the fixtures are written, then the steps alone on the GPU (so
    their timing is theirs), then DDP. In the dry run all three at once (only the code paths count)."""
    writer = prepare(args, env)
    if not args.dry_run:
        out = {"gate": gate(args, env)}
        writer.wait()
        return dict(out, steps=steps(args, env), ddp=ddp(args, env))
    writer.wait()
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {name: pool.submit(stage_of, args, env) for name, stage_of in
                   (("gate", gate), ("steps", steps), ("ddp", ddp))}
        return {name: future.result() for name, future in futures.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--dry-run", action="store_true", help="every stage at its smallest (the CPU rehearsal)")
    parser.add_argument("--out", default="results/gpu-check")
    parser.add_argument("--install-seconds", type=float, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--gate-limit-s", type=float, default=240)
    parser.add_argument("--steps-limit-s", type=float, default=120)
    parser.add_argument("--ddp-limit-s", type=float, default=60)
    parser.add_argument("--environment", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.environment:   # in a child, so that the CPU path sees the environment it runs in
        print(json.dumps(environment()))
        return 0
    started = time.perf_counter()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    env = {"OMP_WAIT_POLICY": "PASSIVE", **os.environ,
           "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    if args.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""             # the CPU path even on a machine with a GPU
    probe = subprocess.run([sys.executable, __file__, "--environment"], env=env, capture_output=True, text=True)
    report = {"about": __doc__.splitlines()[0], "device": args.device, "dry_run": args.dry_run,
              "date": time.strftime("%Y-%m-%d %H:%M:%S"), "install_seconds": args.install_seconds,
              "environment": json.loads(probe.stdout or "{}")}
    report.update(run_stages(args, env))
    report["seconds"] = round(time.perf_counter() - started + (args.install_seconds or 0), 1)
    failed = [name for name in ("steps", "ddp") if report[name]["rc"] != 0] + \
        (["gate"] if report["gate"]["verdict"] == "error" or report["gate"]["run"]["rc"] != 0 else [])
    report["stages_failed"] = failed
    path = Path(args.out) / "gpu_check.json"
    path.write_text(json.dumps(report, indent=2))
    print(f"gpu check ({args.device}{', dry run' if args.dry_run else ''}) in {report['seconds']:.0f} s: gate "
          f"{report['gate']['verdict']}, stages failed: {', '.join(failed) or 'none'}; figures in {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
