"""What a run records beside its metrics (config.json): enough to say how a figure was made.

The resolved config and its hash, the seed and profile, the split scheme and the data identity
(PhraseCut list, annotation file digests, fingerprint), package versions, the git revision,
UTC timestamps (no host name), the command line, per-stage timings and `fit`'s training log.
"""

from __future__ import annotations

import platform
import subprocess
import time
from datetime import datetime, timezone
from importlib import metadata

import torch

from harness.numerics import platform_record
from harness.paths import REPO_ROOT

VERSIONED_PACKAGES = {
    "torch": "torch",
    "numpy": "numpy",
    "open_clip": "open_clip_torch",
    "timm": "timm",
    "transformers": "transformers",
    "mmengine": "mmengine",
}


def package_versions() -> dict:
    """{name: version} for the packages the figures depend on, plus python."""
    versions = {"python": platform.python_version()}
    for name, distribution in VERSIONED_PACKAGES.items():
        try:
            versions[name] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_revision() -> str | None:
    """The checkout's commit, with `-dirty` when tracked files differ; None outside git."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=REPO_ROOT, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("-dirty" if dirty.strip() else "")


def utc_iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).isoformat(timespec="seconds")


def config_record(resolved, seed: int, opts, train_log: dict, timings: dict,
                  started: float) -> dict:
    """The config.json document of one run."""
    return {
        "method": resolved.spec,
        "dataset": resolved.dataset,
        "seed": int(seed),
        "profile": resolved.profile,
        "config_hash": resolved.config_hash,
        "config_file": str(resolved.source) if resolved.source else None,
        "config": resolved.cfg,
        "overrides": list(opts.overrides),
        "evaluation": {"splits": opts.splits, "taus": list(opts.taus), "crf": bool(opts.crf),
                       "limit": opts.limit},
        "data_root": str(opts.data_root) if opts.data_root else None,
        # What was read (also in the config hash): split scheme / PhraseCut list, file digests.
        "split_by": (resolved.data or {}).get("split_by"),
        "data": resolved.data,
        "versions": package_versions(),
        "git_revision": git_revision(),
        "started_at": utc_iso(started),
        "finished_at": utc_iso(time.time()),
        "torch_threads": torch.get_num_threads(),   # what computed it (runtime.torch_threads pins it)
        # What can change a float result beyond the config: CPU, kernels, BLAS (harness/numerics.py).
        "platform": platform_record(),
        "timings_s": {stage: round(seconds, 3) for stage, seconds in timings.items()},
        "train_log": train_log,
        "command": opts.command,
    }


def timing_line(label: str, timings: dict) -> str:
    """`time <label>: fit 12.3s · predict 1.2s · crf 0.0s · metrics 0.4s`."""
    parts = " · ".join(f"{stage} {seconds:.1f}s" for stage, seconds in timings.items())
    return f"time {label}: {parts}"
