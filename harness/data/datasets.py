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
class SplitScheme:
    splits: tuple                 # every split the scheme's files hold
    eval_splits: tuple            # the splits the papers report


@dataclass(frozen=True)
class DatasetInfo:
    kind: str                     # "refer" | "phrasecut" | "synthref"
    split_by: Optional[str]       # default REFER splitBy (None for PhraseCut)
    schemes: dict                 # splitBy -> SplitScheme (PhraseCut: {None: ...})
    synthetic: bool
    image_dir: str                # default image folder, relative to the data root

    @property
    def splits(self) -> tuple:
        """Every split under the default scheme."""
        return self.schemes[self.split_by].splits

    @property
    def eval_splits(self) -> tuple:
        return self.schemes[self.split_by].eval_splits

    def resolve_split_by(self, split_by: Optional[str], name: str = "") -> Optional[str]:
        """The scheme a run reads: `split_by`, or the default; an unknown one is an error."""
        if split_by is None:
            return self.split_by
        if self.kind == "phrasecut":
            raise ConfigError(f"--split-by applies to REFER datasets, not {name or 'phrasecut'!r}")
        if split_by not in self.schemes:
            raise UnknownNameError(f"split scheme (--split-by) of {name}", split_by, self.schemes)
        return split_by

    def scheme(self, split_by: Optional[str] = None, name: str = "") -> SplitScheme:
        return self.schemes[self.resolve_split_by(split_by, name)]


_UNC = SplitScheme(("train", "val", "testA", "testB"), ("val", "testA", "testB"))
_GOOGLE = SplitScheme(("train", "val"), ("val",))       # G-Ref google: its test was never released
_UMD = SplitScheme(("train", "val", "test"), ("val", "test"))


def _refer(name: str, schemes: dict, kind: str = "refer") -> DatasetInfo:
    split_by, image_dir = REFER_DEFAULTS[name]
    return DatasetInfo(kind, split_by, schemes, kind == "synthref", image_dir)


DATASETS = {
    "refcoco": _refer("refcoco", {"unc": _UNC}),
    "refcoco+": _refer("refcoco+", {"unc": _UNC}),
    "refcocog": _refer("refcocog", {"google": _GOOGLE, "umd": _UMD}),
    "phrasecut": DatasetInfo("phrasecut", None,
                             {None: SplitScheme(("train", "val", "test", "miniv"), ("val",))},
                             False, "images"),
    "synthref": _refer("synthref", {"unc": _UNC}, "synthref"),
    "synthref+": _refer("synthref+", {"unc": _UNC}, "synthref"),
    "synthrefg": _refer("synthrefg", {"unc": _GOOGLE}, "synthref"),
}
KEY_SEPARATOR = "@"   # a store key: `refcocog@umd` (dataset under a non-default split scheme)


def dataset_info(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise UnknownNameError("dataset", name, DATASETS)
    return DATASETS[name]


def dataset_key(name: str, split_by: Optional[str] = None) -> str:
    """How the store and the tables name a dataset read under a split scheme: the name under its
    default scheme (`refcocog` = google), `name@scheme` under another (`refcocog@umd`), so that
    runs on different splits of one dataset never share a store folder."""
    info = dataset_info(name)
    split_by = info.resolve_split_by(split_by, name)
    return name if split_by == info.split_by else f"{name}{KEY_SEPARATOR}{split_by}"


def parse_dataset_key(key: str) -> tuple[str, Optional[str]]:
    """`refcocog@umd` → ("refcocog", "umd"); `refcoco` → ("refcoco", "unc")."""
    name, _, split_by = key.partition(KEY_SEPARATOR)
    info = dataset_info(name)
    return name, info.resolve_split_by(split_by or None, name)


def splits_of(name: str, split_by: Optional[str] = None) -> tuple:
    return dataset_info(name).scheme(split_by, name).splits


def eval_splits_of(name: str, split_by: Optional[str] = None) -> tuple:
    return dataset_info(name).scheme(split_by, name).eval_splits


def is_synthetic(name: str) -> bool:
    return dataset_info(name).synthetic


def open_split(name: str, split: str, data_root=None, image_root=None, split_by: Optional[str] = None,
               limit: Optional[int] = None, phrasecut_list: Optional[str] = None) -> RefDataset:
    """One split of a named dataset. The synthref family with no data_root is generated into
    the cache on first use; real datasets need their data_root (the folder holding
    `<name>/instances.json`, or for PhraseCut the folder holding `refer_<split>.json` or a
    `phrasecut/` folder that does). `limit` keeps the first N expressions; `phrasecut_list`
    picks PhraseCut's task list (harness/data/phrasecut.py `PHRASECUT_LISTS`)."""
    info = dataset_info(name)
    if limit is not None and int(limit) < 1:
        raise ConfigError(f"limit must be ≥ 1, got {limit}")
    split_by = info.resolve_split_by(split_by, name)
    if phrasecut_list is not None and info.kind != "phrasecut":
        raise ConfigError(f"--phrasecut-list applies to phrasecut, not {name!r}")
    data_root = resolve_data_root(name, data_root)
    if info.kind == "phrasecut":
        return load_phrasecut(phrasecut_folder(data_root), split, image_root=image_root, limit=limit,
                              task_list=phrasecut_list)
    image_root = image_root if image_root is not None else data_root / info.image_dir
    dataset = load_refer(data_root, name, split, split_by=split_by, image_root=image_root)
    return dataset.subset(int(limit)) if limit is not None else dataset


def resolve_data_root(name: str, data_root=None) -> Path:
    """The data root to read: the given one, or (synthref family only) the generated cache."""
    if data_root is not None:
        return Path(data_root)
    if dataset_info(name).kind != "synthref":
        raise ConfigError(f"dataset {name!r} needs its data root (--data-root DIR)")
    return Path(ensure_synthref(name))


def phrasecut_folder(data_root: Path) -> Path:
    """A shared data root may hold PhraseCut in `phrasecut/`; else the root is PhraseCut's own."""
    nested = Path(data_root) / "phrasecut"
    return nested if nested.is_dir() else Path(data_root)


def dataset_present(name: str, data_root=None, split_by: Optional[str] = None) -> bool:
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
            and refs_path(Path(data_root), name, info.resolve_split_by(split_by, name)).is_file())
