"""Every dataset the harness knows, and `open_split`: the single entry the runner and CLI use."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from harness.data.phrasecut import load_phrasecut
from harness.data.refer import REFER_DEFAULTS, load_refer, refs_path
from harness.data.synthref import ensure_synthref
from harness.data.types import RefDataset
from harness.errors import ConfigError, UnknownNameError


@dataclass(frozen=True)
class DatasetInfo:
    kind: str                     # "refer" | "phrasecut" | "synthref"
    split_by: Optional[str]       # default REFER splitBy (None for PhraseCut)
    splits: tuple                 # every split under the default splitBy
    eval_splits: tuple            # the splits the papers report
    synthetic: bool
    image_dir: str                # default image folder, relative to the data root


def _refer(name: str, splits: tuple, eval_splits: tuple, kind: str = "refer") -> DatasetInfo:
    split_by, image_dir = REFER_DEFAULTS[name]
    return DatasetInfo(kind, split_by, splits, eval_splits, kind == "synthref", image_dir)


DATASETS = {
    "refcoco": _refer("refcoco", ("train", "val", "testA", "testB"), ("val", "testA", "testB")),
    "refcoco+": _refer("refcoco+", ("train", "val", "testA", "testB"), ("val", "testA", "testB")),
    "refcocog": _refer("refcocog", ("train", "val"), ("val",)),
    "phrasecut": DatasetInfo("phrasecut", None, ("train", "val", "test", "miniv"), ("val",), False, "images"),
    "synthref": _refer("synthref", ("train", "val", "testA", "testB"), ("val", "testA", "testB"), "synthref"),
    "synthref+": _refer("synthref+", ("train", "val", "testA", "testB"), ("val", "testA", "testB"), "synthref"),
    "synthrefg": _refer("synthrefg", ("train", "val"), ("val",), "synthref"),
}


def dataset_info(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise UnknownNameError("dataset", name, DATASETS)
    return DATASETS[name]


def is_synthetic(name: str) -> bool:
    return dataset_info(name).synthetic


def open_split(name: str, split: str, data_root=None, image_root=None, split_by: Optional[str] = None,
               limit: Optional[int] = None) -> RefDataset:
    """One split of a named dataset. The synthref family with no data_root is generated into
    the cache on first use; real datasets need their data_root (the folder holding
    `<name>/instances.json`, or for PhraseCut the folder holding `refer_<split>.json` or a
    `phrasecut/` folder that does). `limit` keeps the first N expressions."""
    info = dataset_info(name)
    if limit is not None and int(limit) < 1:
        raise ConfigError(f"limit must be ≥ 1, got {limit}")
    if data_root is None:
        if info.kind != "synthref":
            raise ConfigError(f"dataset {name!r} needs its data root (--data-root DIR)")
        data_root = ensure_synthref(name)
    data_root = Path(data_root)
    if info.kind == "phrasecut":
        if split_by is not None:
            raise ConfigError(f"--split-by applies to REFER datasets, not {name!r}")
        return load_phrasecut(phrasecut_folder(data_root), split, image_root=image_root, limit=limit)
    image_root = image_root if image_root is not None else data_root / info.image_dir
    dataset = load_refer(data_root, name, split, split_by=split_by, image_root=image_root)
    return dataset.subset(int(limit)) if limit is not None else dataset


def phrasecut_folder(data_root: Path) -> Path:
    """A shared data root may hold PhraseCut in `phrasecut/`; else the root is PhraseCut's own."""
    nested = Path(data_root) / "phrasecut"
    return nested if nested.is_dir() else Path(data_root)


def dataset_present(name: str, data_root=None) -> bool:
    """Whether `open_split` could find the dataset's files (synthref: always, generated on use)."""
    info = dataset_info(name)
    if info.kind == "synthref" and data_root is None:
        return True
    if data_root is None:
        return False
    if info.kind == "phrasecut":
        folder = phrasecut_folder(Path(data_root))
        return any(folder.glob("refer_*.json"))
    return ((Path(data_root) / name / "instances.json").is_file()
            and refs_path(Path(data_root), name, info.split_by).is_file())
