"""Nothing is lost: a SIGKILLed multi-seed run, a fit killed mid-training and resumed with
`--resume`, a NaN loss, and two processes writing one store (harness/run/runner.py, harness/store/,
harness/store/lock.py, harness/run/train_state.py, harness/run/fit_loop.py).

The method is tests/tiny_segmenter.py's `tiny_probe` (dropout on, so a resumed fit must restore
the RNG state too); killed runs are subprocesses slowed by TINY_PROBE_STEP_SLEEP, which is not in
the config hash, so they share store entries with the normal runs they are compared with.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from harness import registry, store
from harness.cli import main
from harness.errors import CheckpointError
from harness.store.lock import run_lock
from harness.run.train_state import TrainState
from tests.tiny_segmenter import write_config

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "tests" / "tiny_segmenter.py"
STORE_FILES = {"config.json", "metrics.json", "samples.csv"}


@pytest.fixture(autouse=True)
def tiny_probe_only(monkeypatch):
    import tests.tiny_segmenter  # noqa: F401  (registers tiny_probe)

    monkeypatch.setattr(registry, "METHOD_MODULES", ("harness.reference_segmenters",))
    monkeypatch.setattr(registry, "_loaded", False)


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "tiny_probe.py"
    write_config(path, epochs=3)
    text = path.read_text().replace("dropout=0.0", "dropout=0.3")
    path.write_text(text)
    return path


def run_args(config, data_root, out, seeds="0", *extra):
    return ["run", "--methods", "tiny_probe", "--config", str(config), "--data-root", str(data_root),
            "--seeds", seeds, "--splits", "val", "--limit", "30", "--profile", "smoke",
            "--out", str(out), "--no-progress", *extra]


def start(args, log: Path, step_sleep: float = 0.0) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1",
               TINY_PROBE_STEP_SLEEP=str(step_sleep))
    with open(log, "w") as handle:
        return subprocess.Popen([sys.executable, str(SCRIPT), *args], cwd=REPO, env=env,
                                stdout=handle, stderr=subprocess.STDOUT)


def wait_for(condition, process, timeout=120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, "the run ended before the moment to kill it"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def kill(process: subprocess.Popen) -> None:
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def store_leftovers(out: Path) -> list[str]:
    """Anything in the store besides complete runs' files: temp files, training states."""
    odd = []
    for path in out.rglob("*"):
        if path.is_file() and path.name not in STORE_FILES:
            odd.append(str(path.relative_to(out)))
    return odd


def test_killed_multi_seed_run_keeps_finished_seed_and_completes(config, synthref_root, tmp_path):
    out = tmp_path / "runs"
    args = run_args(config, synthref_root, out, "0,1")
    first = store.Store(out).run_dir("synthref", "tiny_probe", 0) / "metrics.json"
    second = store.Store(out).run_dir("synthref", "tiny_probe", 1) / "metrics.json"
    process = start(args, tmp_path / "killed.log", step_sleep=0.15)
    wait_for(first.exists, process)
    kill(process)
    assert not second.exists()
    finished = first.stat()
    finished_bytes = first.read_bytes()

    rerun = start(args, tmp_path / "rerun.log")
    assert rerun.wait(timeout=300) == 0, (tmp_path / "rerun.log").read_text()
    log = (tmp_path / "rerun.log").read_text()
    assert "skip synthref/tiny_probe/seed0 (done)" in log and "1 run(s) computed" in log
    again = first.stat()
    assert (again.st_ino, again.st_mtime_ns) == (finished.st_ino, finished.st_mtime_ns)
    assert first.read_bytes() == finished_bytes
    assert store_leftovers(out) == []

    assert main(run_args(config, synthref_root, tmp_path / "clean", "0,1")) == 0
    for seed in (0, 1):
        for name in ("metrics.json", "samples.csv"):
            got = store.Store(out).run_dir("synthref", "tiny_probe", seed) / name
            want = store.Store(tmp_path / "clean").run_dir("synthref", "tiny_probe", seed) / name
            assert got.read_bytes() == want.read_bytes(), (seed, name)


def test_fit_killed_after_an_epoch_resumes_to_the_same_metrics(config, synthref_root, tmp_path):
    out = tmp_path / "runs"
    folder = store.Store(out).run_dir("synthref", "tiny_probe", 0)
    state_file = store.train_state_dir(folder) / "last.pt"
    process = start(run_args(config, synthref_root, out), tmp_path / "killed.log", step_sleep=0.2)
    wait_for(state_file.exists, process)
    kill(process)
    saved = torch.load(state_file, weights_only=True)
    assert 1 <= saved["epoch"] < 3 and not (folder / "metrics.json").exists()

    assert main(run_args(config, synthref_root, out, "0", "--resume")) == 0
    assert main(run_args(config, synthref_root, tmp_path / "clean")) == 0
    clean = store.Store(tmp_path / "clean").run_dir("synthref", "tiny_probe", 0)
    resumed_log = json.loads((folder / "config.json").read_text())["train_log"]
    clean_log = json.loads((clean / "config.json").read_text())["train_log"]
    assert resumed_log["resumed_from_epoch"] == saved["epoch"]
    assert resumed_log["loss_per_epoch"] == clean_log["loss_per_epoch"]  # same draws, same losses
    assert (folder / "metrics.json").read_bytes() == (clean / "metrics.json").read_bytes()
    assert (folder / "samples.csv").read_bytes() == (clean / "samples.csv").read_bytes()
    assert store_leftovers(out) == []  # the training state goes once the run is stored


def test_nan_loss_names_method_seed_step_and_leaves_store_consistent(config, synthref_root,
                                                                     tmp_path, capsys):
    out = tmp_path / "runs"
    code = main(run_args(config, synthref_root, out, "0", "--set", "+method.nan_at_step=10"))
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "error: tiny_probe seed 0: loss became nan at step 10; last finite loss 0." in err
    folder = store.Store(out).run_dir("synthref", "tiny_probe", 0)
    assert not (folder / "metrics.json").exists()
    # What is left is the epoch-1 training state (8 steps per epoch), complete and resumable.
    assert store_leftovers(out) == ["synthref/tiny_probe/seed0/train_state/last.pt"]
    assert torch.load(store.train_state_dir(folder) / "last.pt", weights_only=True)["epoch"] == 1


def test_two_processes_on_one_store_take_turns(config, synthref_root, tmp_path):
    """Two runs asking different τ of the same run folder, started while the folder's lock is
    held: each waits, then they run one after the other, and the second adds its τ to the
    first's (without the lock one would overwrite the other, or mix their files)."""
    out = tmp_path / "runs"
    folder = store.Store(out).run_dir("synthref", "tiny_probe", 0)
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    with run_lock(folder):
        runs = [start(run_args(config, synthref_root, out, "0", "--taus", tau), log, step_sleep=0.02)
                for tau, log in zip(("0.3", "0.5"), logs)]
        for run, log in zip(runs, logs):
            wait_for(lambda log=log: "waiting for another process" in log.read_text(), run)
        assert not folder.exists()
    for run, log in zip(runs, logs):
        assert run.wait(timeout=300) == 0, log.read_text()
    metrics = json.loads((folder / "metrics.json").read_text())
    assert sorted(metrics["splits"]["val"]) == ["tau=0.30", "tau=0.50"]
    assert main(run_args(config, synthref_root, tmp_path / "clean", "0", "--taus", "0.3,0.5")) == 0
    clean = store.Store(tmp_path / "clean").run_dir("synthref", "tiny_probe", 0)
    assert (folder / "metrics.json").read_bytes() == (clean / "metrics.json").read_bytes()
    assert (folder / "samples.csv").read_bytes() == (clean / "samples.csv").read_bytes()
    assert store_leftovers(out) == []


def test_train_state_restores_every_rng_and_refuses_another_config(tmp_path):
    net = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(net.parameters(), lr=0.1)
    private = {"loader": torch.Generator().manual_seed(5), "phrases": random.Random(7)}
    state = TrainState(tmp_path, resume=True, tag="h1", method="m", seed=0)
    net(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    state.save(2, 11, {"net": net}, optimizer, log={"loss_per_epoch": [1.0, 0.5]}, private_rngs=private)

    def draws():
        return (random.random(), float(np.random.rand()), float(torch.rand(1)),
                float(torch.rand(1, generator=private["loader"])), private["phrases"].random())

    expected, weights = draws(), net.weight.detach().clone()
    torch.nn.init.zeros_(net.weight)
    draws()
    fresh = torch.optim.AdamW(net.parameters(), lr=0.1)
    point = state.maybe_resume({"net": net}, fresh, private_rngs=private)
    assert (point.epoch, point.step, point.resumed) == (2, 11, True)
    assert point.log == {"loss_per_epoch": [1.0, 0.5]}
    assert torch.equal(net.weight, weights) and fresh.state_dict()["state"][0]["step"] == 1
    assert draws() == expected
    with pytest.raises(CheckpointError, match="saved for config hash 'h1', this run's is 'h2'"):
        TrainState(tmp_path, resume=True, tag="h2").maybe_resume({"net": net}, fresh)
    assert TrainState(tmp_path, resume=False, tag="h2").maybe_resume({"net": net}, fresh).epoch == 0


def test_adding_settings_to_a_stored_run_restores_its_model_instead_of_refitting(config, synthref_root,
                                                                                 tmp_path, capsys):
    """A3 asks SaG's stored A4 runs for more τ: the run re-predicts from its model.pt. The settings
    it had come out byte-identical, the new ones equal a from-scratch run that asked for all."""
    out, clean = tmp_path / "runs", tmp_path / "clean"
    keep = ["--set", "runtime.save_checkpoint=True"]
    assert main(run_args(config, synthref_root, out, "0", "--taus", "0.5", *keep)) == 0
    folder = store.Store(out).run_dir("synthref", "tiny_probe", 0)
    first = json.loads((folder / "metrics.json").read_text())
    first_log = json.loads((folder / "config.json").read_text())["train_log"]
    capsys.readouterr()
    assert main(run_args(config, synthref_root, out, "0", "--taus", "0.3", "--crf", *keep)) == 0
    assert f"restored synthref/tiny_probe/seed0 from {folder / 'model.pt'}" in capsys.readouterr().out
    record = json.loads((folder / "config.json").read_text())
    assert record["timings_s"]["fit"] == 0.0
    assert record["train_log"]["fit_restored_from"].endswith("model.pt")
    assert record["train_log"]["loss_per_epoch"] == first_log["loss_per_epoch"]  # the fit log travels along
    second = json.loads((folder / "metrics.json").read_text())
    assert sorted(second["splits"]["val"]) == ["tau=0.30", "tau=0.30+crf", "tau=0.50", "tau=0.50+crf"]
    assert second["splits"]["val"]["tau=0.50"] == first["splits"]["val"]["tau=0.50"]
    assert (folder / "model.pt").is_file()
    assert main(run_args(config, synthref_root, clean, "0", "--taus", "0.3,0.5", "--crf", *keep)) == 0
    fresh = json.loads((store.Store(clean).run_dir("synthref", "tiny_probe", 0) / "metrics.json").read_text())
    assert fresh["splits"] == second["splits"]
