"""A store's per-expression records (samples.csv), read once per run, with each expression's image.

Intervals, comparisons and breakdowns all start here: `StoreSamples(root).rows(dataset, method,
seed, split, setting)` is one run's rows for one split and setting, with an `image_id` column —
from samples.csv (written since 2026-12-03), else looked up in the dataset the run's config.json
names (older stores), so that expressions of one image can be resampled together.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Optional

import pandas as pd

from harness.data.datasets import open_split
from harness.errors import DataError
from harness.store import SAMPLES_FILE, Store, read_config, read_metrics


@lru_cache(maxsize=32)
def _image_of(dataset: str, split: str, data_root: Optional[str], split_by: Optional[str]) -> dict:
    ds = open_split(dataset, split, data_root=data_root, split_by=split_by)
    return {str(s.sample_id): s.image_id for s in ds.samples}


class StoreSamples:
    """samples.csv of a store's runs, each file read once (a table reads one run many times)."""

    def __init__(self, root):
        self.store = Store(root)
        self._frames: dict = {}

    def folder(self, dataset: str, method: str, seed: int) -> Path:
        return self.store.run_dir(dataset, method, int(seed))

    def frame(self, dataset: str, method: str, seed: int) -> pd.DataFrame:
        key = (dataset, method, int(seed))
        if key not in self._frames:
            self._frames[key] = self._read(self.folder(*key))
        return self._frames[key]

    def rows(self, dataset: str, method: str, seed: int, split: str, setting: str) -> pd.DataFrame:
        frame = self.frame(dataset, method, seed)
        rows = frame[(frame["split"] == split) & (frame["setting"] == setting)]
        if rows.empty:
            raise DataError(self.folder(dataset, method, seed) / SAMPLES_FILE,
                            f"no rows for split {split!r}, setting {setting!r}")
        return rows.reset_index(drop=True)

    def _read(self, folder: Path) -> pd.DataFrame:
        path = folder / SAMPLES_FILE
        if not path.is_file():
            raise DataError(path, "samples.csv not found; intervals need the per-expression "
                                  "records every run writes (rerun the run)")
        try:
            frame = pd.read_csv(path, dtype={"sample_id": str, "ref_id": str, "swap_ref_id": str,
                                             "image_id": str})
        except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
            raise DataError(path, f"not a readable samples.csv ({exc})") from exc
        needed = ("split", "setting", "sample_id", "ref_id", "I", "U", "pointing", "I_swap", "U_swap")
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise DataError(path, f"lacks the columns {', '.join(missing)}")
        if "image_id" not in frame.columns:
            frame["image_id"] = self._looked_up_images(folder, frame)
        return frame

    def _looked_up_images(self, folder: Path, frame: pd.DataFrame) -> pd.Series:
        """Each row's image from the dataset the run names (stores written before image_id)."""
        config, metrics = read_config(folder) or {}, read_metrics(folder) or {}
        dataset = metrics.get("dataset") or config.get("dataset")
        images = pd.Series(index=frame.index, dtype=object)
        for split in frame["split"].unique():
            image_of = _image_of(dataset, split, config.get("data_root"), config.get("split_by"))
            at = frame["split"] == split
            images[at] = frame.loc[at, "sample_id"].map(image_of)
        if images.isna().any():
            raise DataError(folder / SAMPLES_FILE, "holds expressions the dataset "
                            f"{dataset!r} does not (e.g. sample {frame['sample_id'][images.isna()].iloc[0]})")
        return images.astype(str)
