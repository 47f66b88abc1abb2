"""`run --jobs N`: independent method × seed runs in N worker processes (DESIGN §9).

Each run writes its own store folder, so runs never share a file. Workers split the CPU threads
between them (N processes × all cores each would oversubscribe), and so the DenseCRF pool each
worker starts for the +crf settings — except where a config pins `runtime.torch_threads` (the
synthref configs do: the figures depend on it), which wins, so `--jobs` never changes a figure.
Oversubscribed workers then wait passively (OMP_WAIT_POLICY=PASSIVE) instead of spinning.
Workers are not daemonic (a concurrent.futures pool, not a
multiprocessing.Pool), because that CRF pool needs child processes of its own. A user mistake inside a worker
comes back as its message and is raised here as a HarnessError, so the CLI still prints one line.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

from harness.errors import HarnessError
from harness.eval.postprocess import available_cpus


def _worker_threads(jobs: int) -> int:
    return max(1, available_cpus() // jobs)


def _run_job(args):
    run_one, spec, seed, opts, threads = args
    import torch

    torch.set_num_threads(threads)
    try:
        return "ok", run_one(spec, seed, opts)
    except HarnessError as exc:
        # HarnessError subclasses take structured arguments and do not unpickle: send the text.
        return "error", str(exc)


def run_parallel(run_one, work: list[tuple[str, int]], opts, jobs: int) -> list:
    """run_one(spec, seed, opts) for each (spec, seed) in `work`, `jobs` at a time, in order
    (`run_one` is harness/run/runner.py's, passed in: it is sent to the workers by its name)."""
    threads = _worker_threads(jobs)
    if opts.crf_workers is None:  # one per CPU overall, not one per CPU in every worker
        opts = dataclasses.replace(opts, crf_workers=threads)
    tasks = [(run_one, spec, seed, opts, threads) for spec, seed in work]
    context = multiprocessing.get_context("spawn")
    # Spawned workers read the environment at start-up: without a passive wait policy, OpenMP
    # threads of pinned runs that outnumber the cores spin against each other (10x slower, measured).
    ours = "OMP_WAIT_POLICY" not in os.environ
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        with ProcessPoolExecutor(max_workers=min(jobs, len(tasks)), mp_context=context) as pool:
            answers = list(pool.map(_run_job, tasks))
    finally:
        if ours:
            os.environ.pop("OMP_WAIT_POLICY", None)
    outcomes = []
    for status, value in answers:
        if status == "error":
            raise HarnessError(value)
        outcomes.append(value)
    return outcomes
