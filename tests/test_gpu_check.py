"""benchmarks/gpu_check.sh on its CPU path (`--device cpu --dry-run`): every stage of the GPU check
runs — the ci-profile gate and its verdict, real-config steps under AMP, a torchrun DDP step — and
its figures land in one JSON. (No GPU here: the CUDA path itself is untested until a GPU runs it.)"""

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "benchmarks" / "gpu_check.sh"


def run_script(*args, timeout=420) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO), PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_the_dry_run_runs_every_stage_and_writes_one_json(tmp_path):
    done = run_script("--device", "cpu", "--dry-run", "--out", str(tmp_path / "check"))
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "gate pass, stages failed: none" in done.stdout
    report = json.loads((tmp_path / "check" / "gpu_check.json").read_text())
    assert report["device"] == "cpu" and report["dry_run"] and report["environment"]["cuda_available"] is False
    gate = report["gate"]
    assert gate["verdict"] == "pass" and gate["computed_on"] == {"synthref/whole/seed0": "cpu"}
    assert gate["check"]["output_tail"][-1].startswith("check passed: 5 metrics")
    steps = {row["method"]: row["modes"]["bf16"] for row in report["steps"]["figures"]}
    assert set(steps) == {"sag", "maskclip"}
    for mode in steps.values():
        assert mode["finite"] and mode["batch"] == 2 and mode["seconds_per_step"] > 0 and mode["flops_per_step"] > 1e9
    ddp = report["ddp"]["figures"]
    assert (ddp["backend"], ddp["world_size"], ddp["ddp_wrapped"], ddp["all_reduce_ok"]) == ("gloo", 1, True, True)
    assert ddp["max_grad_difference"] == 0.0 and ddp["grads_compared"] > 100 and ddp["loss"] == ddp["loss_without_ddp"]


def test_bad_options_and_a_missing_gpu_are_named(tmp_path):
    done = run_script("--devices", "cpu")
    assert done.returncode == 2 and "unknown option --devices" in done.stderr
    (tmp_path / "wheels").mkdir()
    (tmp_path / "wheels" / "mmengine-0.10.7-py3-none-any.whl").write_bytes(b"")   # no pydensecrf2 sdist
    done = run_script("--wheels", str(tmp_path / "wheels"), "--out", str(tmp_path))
    assert done.returncode == 2 and f"--wheels {tmp_path / 'wheels'}: expected the wheels" in done.stderr
    if not torch.cuda.is_available():
        done = run_script("--no-install", "--out", str(tmp_path))
        assert done.returncode == 2 and "torch sees no CUDA GPU here" in done.stderr
