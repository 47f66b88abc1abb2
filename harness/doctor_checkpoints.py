"""The checkpoint half of `harness doctor`: build each method from its real-data config on the
CPU, through the registry's class and so through the real backbone loaders, with the user's
`--set method.<part>.checkpoint=PATH` overrides; report OK or the loader's error.

Which methods: `--methods`, else every method whose real-data config (`configs/<m>_refcoco.py`)
holds the section an override names (`method.vit.checkpoint` → sag and tseg). The segmenter is
built in an empty data folder, so a missing checkpoint is always a CheckpointError and never a
stand-in pretraining.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Optional

import torch

from harness.config import config_file_for, load_run_config, read_config_file
from harness.errors import HarnessError
from harness.paths import cache_dir
from harness.registry import method_names, segmenter_class
from harness.segmenter import RunEnv

REAL_DATASET = "refcoco"     # any real dataset: they share the `_refcoco` configs


def check_checkpoints(overrides: list[str], methods: Optional[list[str]], data_root=None) -> list:
    """(name, ok, line) per method (and per override no method takes): harness/doctor.py's findings."""
    findings = []
    chosen = methods or _methods_named_by(overrides)
    unused = [o for o in overrides if not any(_applies(o, m) for m in chosen)]
    for assignment in unused:
        findings.append((f"--set {assignment.partition('=')[0]}", False,
                         f"no method's real-data config has section "
                         f"{_section(assignment)!r} (methods checked: {', '.join(chosen) or 'none'})"))
    for method in chosen:
        own = [o for o in overrides if _applies(o, method)]
        tick = time.perf_counter()
        try:
            _build(method, own)
        except HarnessError as err:
            findings.append((method, False, " ".join(str(err).split())))
            continue
        except Exception as err:  # noqa: BLE001 — a loader bug is still the answer to "will it load?"
            findings.append((method, False, f"{type(err).__name__}: {err}"))
            continue
        seconds = time.perf_counter() - tick
        findings.append((method, True, f"built on the CPU from {', '.join(own) or 'its config'} "
                                       f"({seconds:.1f}s)"))
    return findings


def _section(assignment: str) -> str:
    """`method.vit.checkpoint=PATH` → `method.vit`."""
    return assignment.partition("=")[0].strip().rpartition(".")[0]


def _real_config(method: str) -> Optional[dict]:
    path = config_file_for(method, REAL_DATASET)
    return read_config_file(path) if path.is_file() else None


def _applies(assignment: str, method: str) -> bool:
    """Whether the override names a section (or key) the method's real config has."""
    cfg = _real_config(method)
    if cfg is None:
        return False
    node = cfg
    for part in _section(assignment).split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return isinstance(node, dict)


def _methods_named_by(overrides: list[str]) -> list[str]:
    return [m for m in method_names() if any(_applies(o, m) for o in overrides)]


def _build(method: str, overrides: list[str]) -> None:
    """The method's segmenter from its real config, on the CPU, in an empty data folder."""
    resolved = load_run_config(method, REAL_DATASET, "full", overrides)
    with tempfile.TemporaryDirectory(prefix="sag-doctor-") as empty:
        env = RunEnv(dataset=REAL_DATASET, data_root=Path(empty), cache_dir=cache_dir(),
                     device=torch.device("cpu"), progress=False)
        segmenter_class(method)(resolved.cfg["method"], env)
