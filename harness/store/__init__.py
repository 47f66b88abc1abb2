"""The results store (DESIGN §6): the single source of truth that tables, check and report read.

```
<results>/<dataset>[@<splitBy>]/<method>[@<variant>]/seed<k>/
    config.json    resolved config, seed, split scheme and data fingerprint, versions, git
                   revision, timings, training log, command
    metrics.json   {"method", "dataset", "split_by", "seed", "config_hash",
                    "splits": {split: {setting: {...}}}}
    samples.csv    split, setting, sample_id, ref_id, image_id, I, U, IoU, pointing, swap_ref_id, I_swap,
                   U_swap, IoU_swap (one row per expression and setting; swap fields blank where
                   the expression's image has no other ref — harness/eval/metrics.py)
    model.pt       optional checkpoint
    predictions/   with `run --save-predictions`: <split>[+crf]/<sample_id>.png (harness/store/predictions.py)
    train_state/   last.pt: the fit's per-epoch checkpoint (harness/run/train_state.py), for
                   `run --resume`; removed once metrics.json is written
```
Every file is written to a temporary name in the same folder, fsynced, then renamed, so a killed
run leaves no half file. metrics.json is written last: its presence (with the right config hash)
is what marks a run complete.

`Store(results)` answers what spans runs — where a run lives, every complete run, the metrics
frame tables read, which runs kept a model.pt and which of those a fit may share; the functions
below read and write one run folder. Nothing outside this module walks the results folder.

A dataset read under a split scheme other than its default is stored as `<dataset>@<splitBy>`
(`refcocog@umd`; harness/data/datasets.py `dataset_key`), so G-Ref google and umd runs both
exist; tables and `check` name it the same way (the frame's `dataset` column).
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, Optional

import pandas as pd
import torch

from harness.data.datasets import DATASETS, dataset_key
from harness.errors import HarnessError
from harness.eval.metrics import GROUNDING_KEYS, METRIC_KEYS

METRICS_FILE = "metrics.json"
CONFIG_FILE = "config.json"
SAMPLES_FILE = "samples.csv"
CHECKPOINT_FILE = "model.pt"
TRAIN_STATE_DIR = "train_state"
PREDICTIONS_DIR = "predictions"
TMP_SUFFIX = ".tmp"
COUNT_KEYS = ("n", "n_gap")
SAMPLE_COLUMNS = ("split", "setting", "sample_id", "ref_id", "image_id", "I", "U", "IoU", "pointing",
                  "swap_ref_id", "I_swap", "U_swap", "IoU_swap")
FRAME_COLUMNS = ("dataset", "method", "seed", "split", "setting", "metric", "value", "config_hash")


# ---------------------------------------------------------------------------------------- writing

def _write_atomic(path: Path, write) -> None:
    """Call `write(file)` on a temp file beside `path`, fsync it, then rename it onto `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: Path, data: bytes) -> None:
    _write_atomic(path, lambda handle: handle.write(data))


def write_json_atomic(path: Path, obj) -> None:
    """Deterministic JSON (sorted keys, 2-space indent, trailing newline)."""
    text = json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n"
    write_bytes_atomic(path, text.encode())


def save_checkpoint_atomic(path: Path, state_dict: dict) -> None:
    _write_atomic(path, lambda handle: torch.save(state_dict, handle))


def write_samples_atomic(path: Path, records: list[dict]) -> None:
    """samples.csv: one row per (split, setting, expression), IoU to 6 decimals."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SAMPLE_COLUMNS, lineterminator="\n",
                            extrasaction="ignore")
    writer.writeheader()
    for record in records:
        row = dict(record)
        for column in ("IoU", "IoU_swap"):
            if row.get(column) is not None:
                row[column] = f"{float(row[column]):.6f}"
        writer.writerow(row)
    write_bytes_atomic(path, buffer.getvalue().encode())


def rounded_summary(summary: dict) -> dict:
    """A setting's metrics as stored: percentages to 4 decimals, counts as ints; the grounding
    keys when the summary has them."""
    keys = METRIC_KEYS + ("n",) + tuple(k for k in GROUNDING_KEYS if k in summary)
    return {key: (int(summary[key]) if key in COUNT_KEYS else round(float(summary[key]), 4))
            for key in keys}


def metrics_document(method_spec: str, dataset: str, seed: int, config_hash: str,
                     splits: dict, split_by: Optional[str] = None) -> dict:
    """The metrics.json content: `splits` is {split: {setting: summary}}."""
    return {
        "method": method_spec,
        "dataset": dataset,
        "split_by": split_by,
        "seed": int(seed),
        "config_hash": config_hash,
        "splits": {split: {setting: rounded_summary(summary)
                           for setting, summary in sorted(by_setting.items())}
                   for split, by_setting in sorted(splits.items())},
    }


def write_metrics_atomic(path: Path, document: dict) -> None:
    write_json_atomic(path, document)


# ------------------------------------------------------------------------------- run lifecycle

def clean_tmp(folder: Path) -> list[Path]:
    """Remove temp files a killed run left behind; returns what was removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    leftovers = sorted(folder.glob(f".*{TMP_SUFFIX}"))
    leftovers += sorted((folder / TRAIN_STATE_DIR).glob(f".*{TMP_SUFFIX}"))
    for path in leftovers:
        path.unlink(missing_ok=True)
    return leftovers


def read_metrics(folder: Path) -> Optional[dict]:
    """The run's metrics.json, or None when the run is not complete (absent or unreadable)."""
    path = Path(folder) / METRICS_FILE
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def is_done(folder: Path, config_hash: Optional[str], splits=None, settings=None) -> bool:
    """True when metrics.json exists for this hash (None: any) and holds every split × setting
    (names) asked for."""
    metrics = read_metrics(folder)
    if metrics is None or config_hash not in (None, metrics.get("config_hash")):
        return False
    stored = metrics.get("splits", {})
    for split in splits or ():
        if split not in stored or any(s not in stored[split] for s in settings or ()):
            return False
    return True


def begin_run(folder: Path) -> None:
    """Prepare a run folder for (re)computation: metrics.json goes first, so that until the new
    one is written the folder never claims to be complete; older files are replaced. The folder
    itself is made by the first write, so a run that fails before writing leaves nothing; the
    training state is kept (it is what `--resume` continues from)."""
    folder = Path(folder)
    clean_tmp(folder)
    for name in (METRICS_FILE, SAMPLES_FILE, CONFIG_FILE, CHECKPOINT_FILE):
        (folder / name).unlink(missing_ok=True)
    shutil.rmtree(predictions_dir(folder), ignore_errors=True)  # maps of the metrics replaced


def predictions_dir(folder: Path) -> Path:
    return Path(folder) / PREDICTIONS_DIR


def load_checkpoint(folder: Path) -> dict:
    """The run's model.pt (a `Segmenter.state_dict()`), read as tensors only, on the CPU."""
    return torch.load(Path(folder) / CHECKPOINT_FILE, map_location="cpu", weights_only=True)


def train_state_dir(folder: Path) -> Path:
    return Path(folder) / TRAIN_STATE_DIR


def drop_train_state(folder: Path) -> None:
    """Remove the fit's per-epoch checkpoint once the run is stored (it is only for resuming)."""
    shutil.rmtree(train_state_dir(folder), ignore_errors=True)


# ---------------------------------------------------------------------------------------- reading

def stored_dataset(metrics: dict) -> str:
    """The dataset as the store names it: `refcocog@umd` for a non-default split scheme."""
    dataset, split_by = metrics["dataset"], metrics.get("split_by")
    try:
        return dataset_key(dataset, split_by) if dataset in DATASETS and split_by else dataset
    except HarnessError:      # a scheme this version does not know: keep it apart all the same
        return f"{dataset}@{split_by}"


def read_config(folder: Path) -> Optional[dict]:
    path = Path(folder) / CONFIG_FILE
    return json.loads(path.read_text()) if path.is_file() else None


class Store:
    """A results folder: where each run lives, which runs it holds, and what they hold. Nothing
    outside this module walks the folder."""

    def __init__(self, root):
        self.root = Path(root)

    def run_dir(self, dataset: str, method_spec: str, seed: int) -> Path:
        return self.root / dataset / method_spec / f"seed{int(seed)}"

    def runs(self, pattern: str = "*/*/seed*") -> Iterator[tuple[Path, dict]]:
        """(run folder, metrics) of every complete run (of `pattern`: dataset/method spec/seed
        folders), sorted by dataset, method spec and seed number (seed10 after seed2)."""
        folders = sorted((p.parent for p in self.root.glob(f"{pattern}/{METRICS_FILE}")),
                         key=_run_order)
        for folder in folders:
            metrics = read_metrics(folder)
            if metrics is not None:
                yield folder, metrics

    def frame(self) -> pd.DataFrame:
        """One row per (dataset, method spec, seed, split, setting, metric) with its value and
        the run's config hash; the dataset as the store names it (`stored_dataset`)."""
        rows = []
        for _, metrics in self.runs():
            dataset = stored_dataset(metrics)
            for split, by_setting in metrics.get("splits", {}).items():
                for setting, summary in by_setting.items():
                    for metric, value in summary.items():
                        rows.append((dataset, metrics["method"], int(metrics["seed"]),
                                     split, setting, metric, float(value), metrics.get("config_hash")))
        return pd.DataFrame(rows, columns=list(FRAME_COLUMNS))

    def trained_runs(self, dataset: str = "*", seed="*", method_specs=None) -> list[tuple[Path, dict]]:
        """(run folder, metrics) of the complete runs that kept their model.pt (of these method
        specs; None: any), in `runs` order."""
        return [(folder, metrics) for folder, metrics in self.runs(f"{dataset}/*/seed{seed}")
                if (folder / CHECKPOINT_FILE).is_file()
                and (method_specs is None or folder.parent.name in method_specs)]

    def fitted_runs(self, dataset: str, method_spec: str, seed: int) -> Iterator[tuple[Path, dict]]:
        """(run folder, config.json) of each complete run with a model.pt that this run may share
        a fit with: its own folder first, then every other method spec's on the same dataset
        and seed (harness/run/runner.py `_stored_fit`)."""
        own = self.run_dir(dataset, method_spec, seed)
        for folder, _ in sorted(self.trained_runs(dataset, seed), key=lambda run: run[0] != own):
            record = read_config(folder)
            if record is not None:
                yield folder, record


def _run_order(folder: Path) -> tuple:
    """(dataset, method spec, seed number, seed folder name)."""
    seed = folder.name[len("seed"):]
    return folder.parts[-3], folder.parts[-2], int(seed) if seed.isdigit() else -1, seed
