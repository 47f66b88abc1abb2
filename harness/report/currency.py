"""Whether a stored run is the one the config files describe today, or a stale one.

The store holds one folder per (dataset, method spec, seed), and the runner recomputes a seed only
when its config hash changed, so after a config file is edited the older runs stay on disk until
someone reruns them. A table must not show those as current: a stored seed is **stale** when the
config its config.json records differs from what `load_run_config` resolves today for the
table's run (method spec, dataset, profile, no overrides) — the same resolved config whose hash
the runner compares. The data's identity (annotation digests) is left to the runner's hash: a
table is rendered without the data at hand.

A seed whose config.json is absent or records no "config" (written by hand) cannot be judged and
is not called stale; every run the runner writes records it.
"""

from __future__ import annotations

import json
from functools import lru_cache

from harness.config import load_run_config
from harness.data.datasets import parse_dataset_key
from harness.store import Store, read_config


def _canonical(cfg: dict) -> str:
    """The config as the hash sees it (harness/config.py config_hash): canonical JSON."""
    return json.dumps(cfg, sort_keys=True, separators=(",", ":"), default=str)


@lru_cache(maxsize=None)
def current_config(method_spec: str, dataset: str, profile: str) -> str:
    """The canonical resolved config a table run of `method_spec` on `dataset` (a store dataset
    key, e.g. `refcocog@umd`) at `profile` would compute today. Read once per process (the CLI
    renders and exits)."""
    name, _ = parse_dataset_key(dataset)
    return _canonical(load_run_config(method_spec, name, profile).cfg)


def stale_seeds(store: Store, run: dict) -> list[int]:
    """The stored seeds of `run` (a required run: method, dataset, profile) whose recorded config
    is not today's; every stored seed folder counts, not only the run's own seeds."""
    want = current_config(run["method"], run["dataset"], run.get("profile") or "full")
    stale = []
    for folder, metrics in store.runs(f"{run['dataset']}/{run['method']}/seed*"):
        record = read_config(folder) or {}
        if "config" in record and _canonical(record["config"]) != want:
            stale.append(int(metrics["seed"]))
    return sorted(stale)


def stale_runs(runs: list[dict], store: Store) -> dict:
    """{(dataset, method spec): stale seeds} over `runs` (table_specs.required_runs), the runs
    with none left out."""
    stale = {}
    for run in runs:
        seeds = stale_seeds(store, run)
        if seeds:
            stale[(run["dataset"], run["method"])] = seeds
    return stale
