"""Evaluating a fitted segmenter on one split: one prediction pass, every setting from it.

Per batch: `predict` (under no_grad) → the protocol (resize to the original size, min-max) →
DenseCRF on the same maps when +crf settings are asked → the evaluator thresholds every τ, and
also scores each map against the mask of another object of its image (the grounding gap; the
partner mask is read from the dataset, no extra prediction) and checks where its peak lies
(pointing).
Under torchrun each rank predicts a disjoint slice of the expressions and the per-sample I/U are
gathered, so the figures equal the one-process run.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import torch
from tqdm import tqdm

from harness import distributed
from harness.data.loader import eval_batches
from harness.data.types import RefDataset
from harness.eval.grounding import swap_partners
from harness.eval.metrics import RISEvaluator, SwapTarget
from harness.eval.postprocess import CRFPool
from harness.eval.protocol import protocol_maps
from harness.store.predictions import PredictionWriter


def _rank_indices(n: int) -> Optional[list[int]]:
    if distributed.world_size() == 1:
        return None
    return list(range(distributed.rank(), n, distributed.world_size()))


def evaluate_split(segmenter, dataset: RefDataset, cfg: dict, taus: list[float], crf: bool,
                   crf_workers: Optional[int] = None, timings: Optional[dict] = None,
                   progress: bool = True, save_to: Optional[Path] = None,
                   workers: int = 0) -> tuple[dict, list[dict]]:
    """({setting: summary}, samples.csv rows) of `segmenter` on `dataset`; `workers` DataLoader
    processes decode the images (harness/data/loader.py; pinned when the segmenter is on a GPU).

    `timings` (seconds by stage: data — reading images and masks —, predict, crf, metrics) is
    accumulated in place. With `save_to` (a run folder) every map is also written as the PNG
    `score` reads (harness/store/predictions.py).
    """

    timings = timings if timings is not None else {}
    for stage in ("data", "predict", "crf", "metrics"):
        timings.setdefault(stage, 0.0)
    protocol_cfg = cfg.get("protocol", {})
    batch_size = int(cfg.get("runtime", {}).get("eval_batch_size", 64))
    evaluator = RISEvaluator(taus, crf)
    crf_pool = CRFPool(crf_workers, protocol_cfg.get("crf")) if crf else None
    segmenter.prepare_eval(dataset)
    split_pass = _SplitPass(segmenter, dataset, protocol_cfg, evaluator, crf_pool, timings,
                            _writer(save_to, dataset.split, taus))
    indices = _rank_indices(len(dataset))
    bar = tqdm(total=len(indices) if indices is not None else len(dataset),
               desc=f"{dataset.name}/{dataset.split}", unit="expr", disable=not progress)
    on_gpu = getattr(getattr(segmenter, "env", None), "device", torch.device("cpu")).type == "cuda"
    batches = iter(eval_batches(dataset, segmenter.input_size, batch_size, indices=indices,
                                workers=workers, pin_memory=on_gpu))
    try:
        while (batch := _timed_next(batches, timings)) is not None:
            split_pass.evaluate_batch(batch)
            bar.update(len(batch["indices"]))
    finally:
        bar.close()
        if crf_pool is not None:
            crf_pool.close()
    evaluator = _gathered(evaluator, taus, crf)
    return evaluator.evaluate(), _sample_rows(dataset, evaluator)


def _writer(save_to: Optional[Path], split: str, taus: list[float]):
    if save_to is None:
        return None
    distributed.barrier()  # rank 0 has cleared the run folder's old predictions (begin_run)
    return PredictionWriter(save_to, split, taus)


def _timed_next(batches, timings: dict):
    """The next batch (None at the end), its reading and resizing counted as `data` time."""
    tick = time.perf_counter()
    batch = next(batches, None)
    timings["data"] += time.perf_counter() - tick
    return batch


class _SplitPass:
    """One split's prediction pass: predict → protocol → (CRF) → evaluator (and PNGs)."""

    def __init__(self, segmenter, dataset, protocol_cfg, evaluator, crf_pool, timings, writer):
        self.segmenter, self.dataset, self.evaluator = segmenter, dataset, evaluator
        self.use_minmax = bool(protocol_cfg.get("minmax", True))
        self.crf_pool, self.timings, self.writer = crf_pool, timings, writer
        self.partners = swap_partners(dataset.samples)  # (σ(ref), a sample of it) or None

    def _tick(self, stage: str, started: float) -> float:
        now = time.perf_counter()
        self.timings[stage] += now - started
        return now

    def evaluate_batch(self, batch: dict) -> None:
        tick = time.perf_counter()
        with torch.no_grad():
            scores = self.segmenter.predict(batch["images"], batch["texts"], batch["samples"])  # [B, h, w]
        tick = self._tick("predict", tick)
        sizes = [(s.height, s.width) for s in batch["samples"]]
        raw_maps, _ = protocol_maps(scores, sizes, use_minmax=self.use_minmax)
        tick = self._tick("metrics", tick)
        gts = [self.dataset.mask(i) for i in batch["indices"]]  # bool [H_i, W_i] each
        swaps = [self._swap_target(i) for i in batch["indices"]]
        tick = self._tick("data", tick)
        crf_maps = None
        if self.crf_pool is not None:
            crf_maps = self.crf_pool.map([self.dataset.image(i) for i in batch["indices"]], raw_maps)
            tick = self._tick("crf", tick)
        sample_ids = [s.sample_id for s in batch["samples"]]
        self.evaluator.process(sample_ids, gts, raw_maps, crf_maps, swaps)
        if self.writer is not None:
            self.writer.write(sample_ids, raw_maps, crf_maps)
        self._tick("metrics", tick)

    def _swap_target(self, index: int):
        """The grounding gap's partner of sample `index`: its mask read from the dataset."""
        if self.partners[index] is None:
            return None
        partner_ref, partner_index = self.partners[index]
        return SwapTarget(self.dataset.samples[index].ref_id, partner_ref,
                          self.dataset.mask(partner_index))


def _gathered(evaluator, taus, crf):
    """Under torchrun: every rank's per-sample I/U merged (each sample exactly once)."""
    if distributed.world_size() == 1:
        return evaluator
    rows = [row for part in distributed.all_gather_objects(evaluator.records()) for row in part]
    return RISEvaluator.from_records(rows, taus, crf)


def _sample_rows(dataset: RefDataset, evaluator) -> list[dict]:
    """samples.csv rows in dataset order, then setting order."""
    ref_of = {s.sample_id: s.ref_id for s in dataset.samples}
    # image_id: the cluster the intervals resample (harness/report/intervals.py)
    image_of = {s.sample_id: s.image_id for s in dataset.samples}
    order = {s.sample_id: k for k, s in enumerate(dataset.samples)}
    setting_order = {name: k for k, name in enumerate(evaluator.settings)}
    rows = [{**row, "split": dataset.split, "ref_id": ref_of[row["sample_id"]],
             "image_id": image_of[row["sample_id"]]}
            for row in evaluator.records()]
    return sorted(rows, key=lambda r: (order[r["sample_id"]], setting_order[r["setting"]]))
