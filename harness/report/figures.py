"""The entity figure (supplementary Fig. A1 / A3): what a trained segmenter's `explain` says.

Method-agnostic: the segmenter is rebuilt through the registry from the run's stored config and
`model.pt`, and only the dict returned by `explain(image, text)` is drawn — `score` [h, w] and
`entities` [dict(map [h, w], relevance, slot, gaussian)] sorted by relevance. Rendering only:
nothing is trained here (a run with `runtime.save_checkpoint=True` must exist).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from harness import store
from harness.data.datasets import open_split
from harness.data.loader import eval_batches
from harness.errors import DataError
from harness.paths import cache_dir
from harness.registry import segmenter_class
from harness.segmenter import RunEnv

TOP_ENTITIES = 3
SLOT_TYPE_SPECS = (("entity", ""), ("random", "@random_slots"), ("query", "@query_slots"))


def load_trained(results_dir, method: str, dataset: str, seed: Optional[int] = None, data_root=None):
    """(segmenter, val RefDataset, input size) for a stored run of `method` (a spec, may hold @variant)."""
    found = store.Store(results_dir).trained_runs(dataset, "*" if seed is None else seed, [method])
    folder, record = (found[0][0], store.read_config(found[0][0])) if found else (None, None)
    if record is None:
        raise DataError(results_dir, f"no complete run of {dataset}/{method} kept its config.json and "
                        f"model.pt; train one with --set runtime.save_checkpoint=True (python -m "
                        f"harness run --methods {method} --dataset {dataset})")
    data_root = data_root or record.get("data_root")
    val = open_split(dataset, "val", data_root=data_root)
    method_cfg = record["config"]["method"]
    env = RunEnv(dataset=dataset, data_root=val.root, cache_dir=cache_dir(), progress=False)
    segmenter = segmenter_class(method.partition("@")[0])(method_cfg, env)
    # As the run left it after fit (SaG: test-time sampling seeded by the run seed), so the maps
    # drawn are the ones its metrics were computed from.
    segmenter.restore_fit(store.load_checkpoint(folder), int(record["seed"]))
    return segmenter, val, int(method_cfg.get("input_size", 64))


def _image_tensor(val, index: int, size: int):
    """Sample `index` of `val` as float [3, size, size] in [0, 1] (the loader's squash)."""
    batch = next(iter(eval_batches(val, size, 1, indices=[index])))
    return batch["images"][0]


def _pick(val, n: int) -> list[int]:
    """n expressions spread evenly over the split (deterministic)."""
    return sorted(set(np.linspace(0, len(val) - 1, num=min(n, len(val))).round().astype(int).tolist()))


def entity_figure(results_dir, method: str, dataset: str = "synthref", n: int = 8,
                  out="entities.png", slot_types: bool = False, data_root=None) -> Path:
    """Write the PNG: per row image, ground truth, prediction, then the top-3 entities (A1),
    or with `slot_types` the prediction and top entities of entity/random/query slots (A3)."""
    specs = ([(label, method.partition("@")[0] + suffix) for label, suffix in SLOT_TYPE_SPECS]
             if slot_types else [(None, method)])
    models = [(label, *load_trained(results_dir, spec, dataset, data_root=data_root)) for label, spec in specs]
    val = models[0][2]
    rows = []
    for index in _pick(val, n):
        sample = val.samples[index]
        panels = [("image", val.image(index), None), ("ground truth", val.mask(index), None)]
        for label, segmenter, _, size in models:
            found = segmenter.explain(_image_tensor(val, index, size), sample.text)
            prefix = f"{label}: " if label else ""
            panels.append((f"{prefix}prediction", found["score"], None))
            for rank, entity in enumerate(found["entities"][:TOP_ENTITIES], 1):
                panels.append((f"{prefix}#{rank} slot {entity['slot']} (g{entity['gaussian']})",
                               entity["map"], entity["relevance"]))
        rows.append((sample.text, panels))
    return _draw(rows, Path(out))


def _draw(rows, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = max(len(panels) for _, panels in rows)
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.9 * cols, 2.1 * len(rows)), squeeze=False)
    for r, (text, panels) in enumerate(rows):
        for c in range(cols):
            ax = axes[r][c]
            ax.axis("off")
            if c >= len(panels):
                continue
            title, picture, relevance = panels[c]
            cmap = None if np.asarray(picture).ndim == 3 else ("gray" if c == 1 else "viridis")
            ax.imshow(np.asarray(picture, dtype=float if cmap else np.uint8), cmap=cmap,
                      vmin=0 if cmap else None, vmax=None if cmap != "gray" else 1)
            label = title if relevance is None else f"{title}\nA_fuse {relevance:.2f}"
            ax.set_title(label if c else f'"{text}"\n{title}', fontsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
