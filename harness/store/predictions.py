"""`run --save-predictions`: each expression's map as the PNG `harness score` reads.

```
<run>/predictions/<split>/<sample_id>.png        the protocol's map (resize, min-max) — raw settings
<run>/predictions/<split>+crf/<sample_id>.png    the same after DenseCRF — the +crf settings
<run>/predictions/manifest.json                  config hash, splits, settings: the set is complete
```
8-bit grayscale at the image's size; `score` takes value / 255 as the probability and applies no
min-max. Quantising a map p to 8 bits could move a pixel across a threshold (p = 0.399 rounds to
102/255 = 0.4), so the value written is the nearest level **on the same side of every τ of the
run** as p itself: v/255 ≥ τ exactly where the run decided p ≥ τ (checked for each map). Hence
`score --tau τ` on `<split>/` reproduces the run's `tau=τ` setting exactly, and on `<split>+crf/`
(without `--crf`) its `tau=τ+crf` setting; at other τ it is the 8-bit rounding of the map (off by
at most one level). `score --crf` on `<split>/` runs DenseCRF on the 8-bit map, which is close
to but not the run's +crf figure.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from PIL import Image

from harness.errors import ConfigError
from harness.eval.protocol import binarise
from harness.store import predictions_dir, write_bytes_atomic, write_json_atomic

MANIFEST_FILE = "manifest.json"
LEVELS = np.arange(256, dtype=np.float64) / 255.0  # what `score` reads back from each value


def split_dir(run_folder: Path, split: str, crf: bool = False) -> Path:
    return predictions_dir(run_folder) / (f"{split}+crf" if crf else split)


def first_level(tau: float) -> int:
    """The smallest 8-bit value v with v / 255 ≥ τ, as `score` compares it (float64)."""
    return int(np.argmax(LEVELS >= tau))


def quantise(prob: np.ndarray, taus: Sequence[float]) -> np.ndarray:
    """uint8 [H, W]: round(255 · p), moved to the threshold's side wherever rounding crossed a τ.

    Raises ConfigError when two τ of the run fall between the same two 8-bit levels (no value
    could sit between them).
    """
    prob = np.asarray(prob)
    levels = np.clip(np.floor(prob.astype(np.float64) * 255.0 + 0.5), 0, 255)
    ordered = sorted(taus)
    for low, high in zip(ordered, ordered[1:]):
        if first_level(low) == first_level(high):
            raise ConfigError(f"taus {low} and {high}: too close for 8-bit predictions "
                              "(--save-predictions needs them ≥ 1/255 apart)")
    for tau in ordered:
        above, lowest = binarise(prob, tau), first_level(tau)  # the run's own decision at τ
        levels = np.where(above, np.maximum(levels, lowest), np.minimum(levels, lowest - 1))
    values = levels.astype(np.uint8)
    for tau in ordered:
        if not np.array_equal(LEVELS[values] >= tau, binarise(prob, tau)):
            raise ValueError(f"8-bit map disagrees with the run's decision at τ = {tau}")
    return values


def png_bytes(values: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(values).save(buffer, format="PNG")
    return buffer.getvalue()


class PredictionWriter:
    """Writes one split's maps as they are evaluated (each file atomically)."""

    def __init__(self, run_folder: Path, split: str, taus: Sequence[float]):
        self.run_folder, self.split, self.taus = Path(run_folder), split, list(taus)

    def write(self, sample_ids: Sequence, raw_maps: Sequence[np.ndarray],
              crf_maps: Optional[Sequence[np.ndarray]] = None) -> None:
        for crf, maps in ((False, raw_maps), (True, crf_maps)):
            if maps is None:
                continue
            folder = split_dir(self.run_folder, self.split, crf)
            for sample_id, prob in zip(sample_ids, maps):
                write_bytes_atomic(folder / f"{sample_id}.png", png_bytes(quantise(prob, self.taus)))


def write_manifest(run_folder: Path, config_hash: str, splits: Sequence[str],
                   settings: Sequence[str]) -> None:
    """Mark the run's prediction files complete (written after every PNG, before metrics.json)."""
    write_json_atomic(predictions_dir(run_folder) / MANIFEST_FILE,
                      {"config_hash": config_hash, "splits": sorted(splits),
                       "settings": sorted(settings)})


def predictions_complete(run_folder: Path, config_hash: str, splits: Sequence[str],
                         settings: Sequence[str]) -> bool:
    """True when the folder's PNGs were written by a run of this hash for these splits/settings."""
    path = predictions_dir(run_folder) / MANIFEST_FILE
    try:
        manifest = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return False
    return (manifest.get("config_hash") == config_hash
            and set(splits) <= set(manifest.get("splits", []))
            and set(settings) <= set(manifest.get("settings", [])))
