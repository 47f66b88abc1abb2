"""The HTML report's gallery data: per stored dataset, the first N expressions of one split in
dataset order, each with its image, the ground truth's outline, every method's stored map and its
IoU in every stored setting (html_report.py writes it into the page as JSON).

Images, outlines and maps are embedded as data URIs, downscaled to `DISPLAY_SIDE` at most
(synthref's 64 × 64 images stay as they are): the image as a JPEG (a quarter of its PNG's size;
only the eye sees it), the outline and the maps as PNG, exact. The maps are the 8-bit PNGs that
`run --save-predictions` stored (harness/store/predictions.py), so the page's script can draw
the heatmap and threshold the mask at any stored τ itself: one map per method and expression
serves every setting. The IoU shown is the run's own (samples.csv, computed at the original
size), not one recomputed from the downscaled map. Per method the run of its lowest seed is
shown (seed 0 in the usual store).
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
from PIL import Image

from harness.data.datasets import open_split, parse_dataset_key
from harness.eval.protocol import Setting
from harness.report.sample_attributes import BREAKDOWNS, sample_attributes
from harness.store import SAMPLES_FILE, Store, read_config, stored_dataset
from harness.store.predictions import split_dir

GALLERY_N = 200
DISPLAY_SIDE = 160
JPEG_QUALITY = 90
DEFAULT_SETTING = Setting(0.5).name


@dataclass
class GalleryRun:
    """The run that stands for one method of one dataset in the gallery."""

    spec: str
    seed: int
    folder: Path
    metrics: dict
    config: dict


def gallery_runs(results_dir) -> dict[str, list[GalleryRun]]:
    """Stored dataset -> the lowest seed's run of each method spec, in store order."""
    found: dict[str, dict[str, GalleryRun]] = {}
    for folder, metrics in Store(results_dir).runs():
        by_spec = found.setdefault(stored_dataset(metrics), {})
        spec, seed = metrics["method"], int(metrics["seed"])
        if spec not in by_spec or seed < by_spec[spec].seed:
            by_spec[spec] = GalleryRun(spec, seed, folder, metrics, read_config(folder) or {})
    return {dataset: list(by_spec.values()) for dataset, by_spec in found.items()}


def choose_split(runs: list[GalleryRun], preferred: str) -> Optional[str]:
    """`preferred` when some run evaluated it, else the first split (by name) any run has."""
    splits = sorted({split for run in runs for split in run.metrics.get("splits", {})})
    return preferred if preferred in splits else (splits[0] if splits else None)


def png_data_uri(pixels: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def jpeg_data_uri(pixels: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def display_size(height: int, width: int, side: int = DISPLAY_SIDE) -> tuple[int, int]:
    """(height, width) scaled so that the longer side is at most `side` (never enlarged)."""
    scale = min(1.0, side / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def resized(pixels: np.ndarray, size: tuple[int, int], resample) -> np.ndarray:
    height, width = size
    if pixels.shape[:2] == (height, width):
        return pixels
    return np.asarray(Image.fromarray(pixels).resize((width, height), resample))


def outline(mask: np.ndarray) -> np.ndarray:
    """bool [H, W]: the mask's pixels with a 4-neighbour outside it (or on the border)."""
    padded = np.pad(mask, 1, constant_values=False)
    inner = (padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:])
    return mask & ~inner


def setting_order(names) -> list[str]:
    """Raw settings by τ, then the +crf ones by τ."""
    parsed = [Setting.parse(name) for name in names]
    return [s.name for s in sorted(set(parsed), key=lambda s: (s.crf, s.tau))]


def _ious(run: GalleryRun, split: str) -> dict[str, dict[str, float]]:
    """setting -> sample_id (as text) -> IoU of the run's split (samples.csv)."""
    path = run.folder / SAMPLES_FILE
    if not path.is_file():
        return {}
    frame = pd.read_csv(path, usecols=["split", "setting", "sample_id", "IoU"], dtype={"sample_id": str})
    frame = frame[frame["split"] == split]
    return {setting: dict(zip(group["sample_id"], group["IoU"].astype(float)))
            for setting, group in frame.groupby("setting")}


def _map_uri(run: GalleryRun, split: str, sample_id: str, crf: bool, size) -> Optional[str]:
    path = split_dir(run.folder, split, crf) / f"{sample_id}.png"
    if not path.is_file():
        return None
    with Image.open(path) as image:
        values = np.asarray(image.convert("L"))
    return png_data_uri(resized(values, size, Image.BILINEAR))


def save_command(run: GalleryRun, dataset: str, split: str, results_dir) -> str:
    """The `run` command that recomputes this run with its maps saved (a stored run is recomputed
    when its maps are missing: harness/run/runner.py)."""
    config, evaluation = run.config, run.config.get("evaluation", {})
    taus = ",".join(f"{t:g}" for t in evaluation.get("taus", [])) or "0.5"
    parts = ["python -m harness run", f"--methods {run.spec}", f"--dataset {run.metrics['dataset']}",
             f"--seeds {run.seed}", f"--profile {config.get('profile', 'full')}",
             f"--splits {','.join(evaluation.get('splits') or [split])}", f"--taus {taus}"]
    parts += ["--crf"] if evaluation.get("crf") else []
    parts += [f"--limit {evaluation['limit']}"] if evaluation.get("limit") else []
    parts += [f"--split-by {run.metrics['split_by']}"] if "@" in dataset else []
    parts += [f"--data-root {config['data_root']}"] if config.get("data_root") else []
    parts += [f"--set {item}" for item in config.get("overrides") or []]
    return " ".join(parts + ["--save-predictions", f"--out {results_dir}"])


def _methods(runs, ious, split, results_dir, dataset) -> list[dict]:
    methods = []
    for run in runs:
        raw = split_dir(run.folder, split).is_dir()
        methods.append(dict(spec=run.spec, seed=run.seed, maps=raw,
                            crf_maps=split_dir(run.folder, split, crf=True).is_dir(),
                            command=None if raw else save_command(run, dataset, split, results_dir),
                            settings=setting_order(ious[run.spec])))
    return methods


def _bins(attributes: pd.DataFrame) -> dict[str, list[str]]:
    """Breakdown column -> its bins present among the gallery's items, in display order."""
    bins = {}
    for column, order in BREAKDOWNS.values():
        present = set(attributes[column].dropna().astype(str))
        if present:
            bins[column] = [b for b in order if b in present] if order else sorted(present)
    return bins


def _item(ds, index: int, attributes_row, runs, split, ious_by_spec, bin_columns) -> dict:
    sample = ds.samples[index]
    sample_id = str(sample.sample_id)
    size = display_size(sample.height, sample.width)
    mask = resized(ds.mask(index).astype(np.uint8) * 255, size, Image.NEAREST) > 127
    maps, crf_maps = {}, {}
    for run in runs:
        settings = ious_by_spec[run.spec]
        if any(not Setting.parse(s).crf for s in settings):
            maps[run.spec] = _map_uri(run, split, sample_id, False, size)
        if any(Setting.parse(s).crf for s in settings):
            crf_maps[run.spec] = _map_uri(run, split, sample_id, True, size)
    return dict(id=sample_id, image_id=str(sample.image_id), text=sample.text,
                height=int(sample.height), width=int(sample.width),
                image=jpeg_data_uri(resized(ds.image(index), size, Image.BILINEAR)),
                outline=png_data_uri(outline(mask).astype(np.uint8) * 255),
                bins={c: (None if pd.isna(attributes_row[c]) else str(attributes_row[c]))
                      for c in bin_columns},
                maps=maps, crf_maps=crf_maps)


def build_gallery(dataset: str, runs: list[GalleryRun], split: str, n: int, results_dir) -> dict:
    """The gallery of one stored dataset: the first `n` expressions of `split` in dataset order
    among those some run evaluated. Raises a HarnessError when the data cannot be read."""

    name, split_by = parse_dataset_key(dataset)
    config = runs[0].config
    roots = dict(data_root=config.get("data_root"), image_root=config.get("image_root"),
                 split_by=split_by)
    ds = open_split(name, split, **roots)
    attributes = sample_attributes(name, split, **roots)
    ious = {run.spec: _ious(run, split) for run in runs}
    evaluated = {sid for by_setting in ious.values() for by_id in by_setting.values() for sid in by_id}
    chosen = [i for i, s in enumerate(ds.samples) if str(s.sample_id) in evaluated][:n]
    rows = attributes.set_index(attributes["sample_id"].astype(str))
    bins = _bins(rows.loc[[str(ds.samples[i].sample_id) for i in chosen]])
    items = [_item(ds, i, rows.loc[str(ds.samples[i].sample_id)], runs, split, ious, list(bins))
             for i in chosen]
    settings = setting_order({s for by_setting in ious.values() for s in by_setting})
    iou = {spec: {setting: [None if pd.isna(v := by_setting.get(setting, {}).get(item["id"], np.nan))
                            else round(float(v), 4) for item in items]
                  for setting in by_setting}
           for spec, by_setting in ious.items()}
    return dict(dataset=dataset, split=split, n_evaluated=len(evaluated), n=len(items),
                settings=settings,
                default_setting=DEFAULT_SETTING if DEFAULT_SETTING in settings else
                (settings or [None])[0],
                methods=_methods(runs, ious, split, results_dir, dataset), bins=bins,
                iou=iou, items=items)
