"""harness/distributed.py under torchrun: 2 CPU processes (gloo) train with DDP and shard the
evaluation; the merged per-sample I/U and the metrics equal the one-process run's.

The method is tests/tiny_segmenter.py's `tiny_probe`, whose loss is a mean over samples (so the
DDP update with a per-rank batch of B/2 is the one-process update with batch B); `--limit 41`
gives odd split sizes, so a sampler that padded would count an expression twice.
"""

import csv
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from harness import distributed, registry
from harness.cli import main
from tests.tiny_segmenter import write_config

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "tests" / "tiny_segmenter.py"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def tiny_probe_only(monkeypatch):
    import tests.tiny_segmenter  # noqa: F401  (registers tiny_probe)

    monkeypatch.setattr(registry, "METHOD_MODULES", ("harness.reference_segmenters",))
    monkeypatch.setattr(registry, "_loaded", False)


def run_args(config, data_root, out):
    return ["run", "--methods", "tiny_probe", "--config", str(config), "--data-root", str(data_root),
            "--seeds", "0", "--splits", "val,testA", "--limit", "41", "--profile", "smoke",
            "--out", str(out), "--no-progress"]


def torchrun(args, nproc: int) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
               "--master-addr", "127.0.0.1", "--master-port", str(free_port()), str(SCRIPT), *args]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def read_samples(folder: Path) -> list[dict]:
    with open(folder / "samples.csv") as handle:
        return list(csv.DictReader(handle))


def test_two_gloo_processes_equal_one_process(synthref_root, tmp_path, tiny_probe_only):
    config = write_config(tmp_path / "tiny_probe.py")
    assert main(run_args(config, synthref_root, tmp_path / "one")) == 0
    done = torchrun(run_args(config, synthref_root, tmp_path / "two"), nproc=2)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("1 run(s) computed") == 1  # rank 0 alone reports and writes

    one = tmp_path / "one" / "synthref" / "tiny_probe" / "seed0"
    two = tmp_path / "two" / "synthref" / "tiny_probe" / "seed0"
    logs = [json.loads((f / "config.json").read_text())["train_log"] for f in (one, two)]
    assert [log["world_size"] for log in logs] == [1, 2]  # it did run as two processes
    assert logs[0]["steps"] == logs[1]["steps"] == 16     # 62 samples, global batch 8, 2 epochs
    assert logs[1]["loss_per_epoch"] == pytest.approx(logs[0]["loss_per_epoch"], rel=1e-12)

    rows = read_samples(two)
    assert rows == read_samples(one)                      # per-sample I and U, every expression
    for split, n in (("val", 41), ("testA", 29)):        # testA holds 29 expressions in all
        ids = [r["sample_id"] for r in rows if r["split"] == split]
        assert len(ids) == len(set(ids)) == n             # each scored exactly once, no padding
    assert len({r["IoU"] for r in rows}) > 10             # not a constant answer
    assert (two / "metrics.json").read_bytes() == (one / "metrics.json").read_bytes()
    metrics = json.loads((two / "metrics.json").read_text())
    assert metrics["splits"]["val"]["tau=0.50"]["n"] == 41


def test_single_process_helpers_and_batch_split():
    assert not distributed.is_distributed() and distributed.world_size() == 1
    assert distributed.shard_indices(5) == [0, 1, 2, 3, 4]
    assert distributed.all_gather_objects({"a": 1}) == [{"a": 1}]
    assert distributed.all_true(True) and not distributed.all_true(False)
    assert distributed.local_batch_size(32) == 32


def test_shutdown_leaves_the_group_it_joined(tmp_path):
    import torch.distributed as dist

    distributed.shutdown_distributed()          # never joined: nothing to leave, no error
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    assert dist.is_initialized()
    distributed.shutdown_distributed()
    assert not dist.is_initialized()
