"""Evaluating a fitted segmenter on one split: one prediction pass, every setting from it.

Per batch: `predict` (under no_grad) → the protocol (resize to the original size, min-max) →
DenseCRF on the same maps when +crf settings are asked → the evaluator thresholds every τ.
Under torchrun each rank predicts a disjoint slice of the expressions and the per-sample I/U are
gathered, so the figures equal the one-process run.
"""

from __future__ import annotations

import time
from typing import Iterable, Optional

import torch
from tqdm import tqdm

from harness.data.types import RefDataset


def settings_for(taus: Iterable[float], crf: bool) -> list[str]:
    """Setting names evaluated for these τ (raw, and +crf when asked)."""
    from harness.protocol import setting_name

    raw = [setting_name(tau, False) for tau in taus]
    return raw + ([setting_name(tau, True) for tau in taus] if crf else [])


def _rank_indices(n: int) -> Optional[list[int]]:
    from harness import distributed

    if distributed.world_size() == 1:
        return None
    return list(range(distributed.rank(), n, distributed.world_size()))


def evaluate_split(segmenter, dataset: RefDataset, cfg: dict, taus: list[float], crf: bool,
                   crf_workers: Optional[int] = None, timings: Optional[dict] = None,
                   progress: bool = True) -> tuple[dict, list[dict]]:
    """({setting: summary}, samples.csv rows) of `segmenter` on `dataset`.

    `timings` (seconds by stage: data — reading images and masks —, predict, crf, metrics) is
    accumulated in place.
    """
    from harness.data.loader import eval_batches
    from harness.metrics import RISEvaluator
    from harness.postprocess import CRFPool

    timings = timings if timings is not None else {}
    for stage in ("data", "predict", "crf", "metrics"):
        timings.setdefault(stage, 0.0)
    protocol_cfg = cfg.get("protocol", {})
    batch_size = int(cfg.get("runtime", {}).get("eval_batch_size", 64))
    evaluator = RISEvaluator(taus, crf)
    crf_pool = CRFPool(crf_workers, protocol_cfg.get("crf")) if crf else None
    segmenter.prepare_eval(dataset)
    indices = _rank_indices(len(dataset))
    bar = tqdm(total=len(indices) if indices is not None else len(dataset),
               desc=f"{dataset.name}/{dataset.split}", unit="expr", disable=not progress)
    batches = iter(eval_batches(dataset, segmenter.input_size, batch_size, indices=indices))
    try:
        while (batch := _timed_next(batches, timings)) is not None:
            _evaluate_batch(segmenter, dataset, batch, protocol_cfg, evaluator, crf_pool, timings)
            bar.update(len(batch["indices"]))
    finally:
        bar.close()
        if crf_pool is not None:
            crf_pool.close()
    evaluator = _gathered(evaluator, taus, crf)
    return evaluator.evaluate(), _sample_rows(dataset, evaluator)


def _timed_next(batches, timings: dict):
    """The next batch (None at the end), its reading and resizing counted as `data` time."""
    tick = time.perf_counter()
    batch = next(batches, None)
    timings["data"] += time.perf_counter() - tick
    return batch


def _evaluate_batch(segmenter, dataset, batch, protocol_cfg, evaluator, crf_pool, timings):
    from harness.protocol import protocol_maps

    tick = time.perf_counter()
    with torch.no_grad():
        scores = segmenter.predict(batch["images"], batch["texts"], batch["samples"])  # [B, h, w]
    timings["predict"] += time.perf_counter() - tick

    tick = time.perf_counter()
    sizes = [(s.height, s.width) for s in batch["samples"]]
    raw_maps, _ = protocol_maps(scores, sizes, use_minmax=bool(protocol_cfg.get("minmax", True)))
    timings["metrics"] += time.perf_counter() - tick

    tick = time.perf_counter()
    gts = [dataset.mask(i) for i in batch["indices"]]  # bool [H_i, W_i] each
    timings["data"] += time.perf_counter() - tick

    crf_maps = None
    if crf_pool is not None:
        tick = time.perf_counter()
        crf_maps = crf_pool.map([dataset.image(i) for i in batch["indices"]], raw_maps)
        timings["crf"] += time.perf_counter() - tick

    tick = time.perf_counter()
    evaluator.process([s.sample_id for s in batch["samples"]], gts, raw_maps, crf_maps)
    timings["metrics"] += time.perf_counter() - tick


def _gathered(evaluator, taus, crf):
    """Under torchrun: every rank's per-sample I/U merged (each sample exactly once)."""
    from harness import distributed
    from harness.metrics import RISEvaluator

    if distributed.world_size() == 1:
        return evaluator
    rows = [row for part in distributed.all_gather_objects(evaluator.records()) for row in part]
    return RISEvaluator.from_records(rows, taus, crf)


def _sample_rows(dataset: RefDataset, evaluator) -> list[dict]:
    """samples.csv rows in dataset order, then setting order."""
    ref_of = {s.sample_id: s.ref_id for s in dataset.samples}
    order = {s.sample_id: k for k, s in enumerate(dataset.samples)}
    setting_order = {name: k for k, name in enumerate(evaluator.settings)}
    rows = [dict(split=dataset.split, ref_id=ref_of[row["sample_id"]], **row)
            for row in evaluator.records()]
    return sorted(rows, key=lambda r: (order[r["sample_id"]], setting_order[r["setting"]]))
