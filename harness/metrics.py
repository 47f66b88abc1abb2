"""The one definition of the referring-segmentation metrics (DESIGN §5) and the evaluator.

Per expression, at the original image size: I = |P ∩ G|, U = |P ∪ G|, IoU = I / U.
- mIoU = 100 · mean(IoU); cIoU (overall IoU) = 100 · ΣI / ΣU;
- A@k = 100 · fraction of expressions with IoU ≥ k (inclusive), k ∈ {0.3, 0.5, 0.7}.

An empty prediction against an empty ground truth (U = 0) counts as IoU = 1: the prediction is
exactly right. REFER ground truths are never empty, so this never arises on the paper's data
(LAVT-style scripts use 0 there instead). For the same reason cIoU = 100 when ΣU = 0.
IoU is the double nearest I / U, so I / U exactly equal to k (e.g. 3 / 10) is counted at A@k.
Means use `math.fsum`, so summaries do not depend on the order samples arrive in (DDP merges
give the same figures as one process).
"""

from __future__ import annotations

import math
from typing import Iterable, Optional, Sequence

import numpy as np
import torch

from harness.errors import ConfigError
from harness.protocol import binarise, check_tau, setting_name

ACCURACY_THRESHOLDS = (0.3, 0.5, 0.7)
METRIC_KEYS = ("A@0.3", "A@0.5", "A@0.7", "cIoU", "mIoU")


def iou_counts(pred: np.ndarray, gt: np.ndarray) -> tuple[int, int]:
    """(I, U) of two bool masks of one shape: |pred ∩ gt|, |pred ∪ gt|."""
    pred, gt = np.asarray(pred, dtype=bool), np.asarray(gt, dtype=bool)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in size")
    return int(np.count_nonzero(pred & gt)), int(np.count_nonzero(pred | gt))


def iou_of(intersection: int, union: int) -> float:
    """I / U, with 1.0 for an empty prediction against an empty ground truth."""
    return 1.0 if union == 0 else intersection / union


def summarise(intersections: Sequence[int], unions: Sequence[int]) -> dict:
    """{"A@0.3", "A@0.5", "A@0.7", "cIoU", "mIoU"} in percent (full floats) and "n".

    With no expressions every figure is NaN and n = 0.
    """
    if len(intersections) != len(unions):
        raise ValueError(f"{len(intersections)} intersections for {len(unions)} unions")
    n = len(intersections)
    if n == 0:
        return {**{key: float("nan") for key in METRIC_KEYS}, "n": 0}
    ious = [iou_of(int(i), int(u)) for i, u in zip(intersections, unions)]
    total_i, total_u = sum(int(i) for i in intersections), sum(int(u) for u in unions)
    summary = {f"A@{k}": 100.0 * sum(iou >= k for iou in ious) / n for k in ACCURACY_THRESHOLDS}
    summary["cIoU"] = 100.0 * iou_of(total_i, total_u)
    summary["mIoU"] = 100.0 * math.fsum(ious) / n
    summary["n"] = n
    return summary


def _as_numpy(array) -> np.ndarray:
    if torch.is_tensor(array):
        return array.detach().cpu().numpy()
    return np.asarray(array)


class RISEvaluator:
    """Accumulates per-expression I and U for every setting (each τ, raw and, with `crf`, +crf).

    reset / process / evaluate, as detectron2's DatasetEvaluator. One `process` call per batch
    records every setting from one prediction pass: the raw maps are thresholded at each τ, and
    the CRF'd maps (when `crf`) at each τ again.
    """

    def __init__(self, taus: Iterable[float] = (0.5,), crf: bool = False):
        self.taus = [check_tau(tau) for tau in taus]
        if not self.taus:
            raise ConfigError("taus: expected at least one threshold τ in (0, 1)")
        self.crf = bool(crf)
        raw = [setting_name(tau, False) for tau in self.taus]
        self.settings = raw + ([setting_name(tau, True) for tau in self.taus] if self.crf else [])
        if len(set(raw)) != len(raw):
            raise ConfigError(f"taus {self.taus}: two thresholds share the name {raw} (2 decimals)")
        self.reset()

    def reset(self) -> None:
        """Forget every recorded sample."""
        self._counts: dict = {}  # sample_id -> {setting: (I, U)}

    def __len__(self) -> int:
        return len(self._counts)

    def process(self, sample_ids: Sequence, gts: Sequence, scores: Sequence,
                crf_scores: Optional[Sequence] = None) -> None:
        """Record one batch.

        gts: bool masks [H_i, W_i] at original size; scores: the protocol's maps [H_i, W_i]
        (resized, min-maxed); crf_scores: the same after DenseCRF — required iff `crf`.
        """
        if (crf_scores is not None) != self.crf:
            raise ValueError(f"evaluator built with crf={self.crf} but crf_scores "
                             f"{'given' if crf_scores is not None else 'missing'}")
        if not len(sample_ids) == len(gts) == len(scores):
            raise ValueError(f"{len(sample_ids)} ids, {len(gts)} masks, {len(scores)} score maps")
        for k, sample_id in enumerate(sample_ids):
            maps = [scores[k]] + ([crf_scores[k]] if self.crf else [])
            self._record(sample_id, self._counts_for(sample_id, _as_numpy(gts[k]), maps))

    def _counts_for(self, sample_id, gt: np.ndarray, maps: list) -> dict:
        counts = {}
        for crf_map, score in zip((False, True), maps):
            score = _as_numpy(score)
            if score.shape != gt.shape:
                raise ValueError(f"sample {sample_id}: score map {score.shape} vs mask {gt.shape}")
            for tau in self.taus:
                counts[setting_name(tau, crf_map)] = iou_counts(binarise(score, tau), gt)
        return counts

    def _record(self, sample_id, counts: dict) -> None:
        if sample_id in self._counts:
            raise ValueError(f"sample {sample_id!r} recorded twice (each expression is evaluated once)")
        self._counts[sample_id] = counts

    def evaluate(self) -> dict:
        """{setting: summary} over every recorded sample (see `summarise`)."""
        result = {}
        for setting in self.settings:
            pairs = [per_setting[setting] for per_setting in self._counts.values()]
            result[setting] = summarise([i for i, _ in pairs], [u for _, u in pairs])
        return result

    def records(self) -> list[dict]:
        """One row per sample and setting: {sample_id, setting, I, U, IoU} (for samples.csv)."""
        return [dict(sample_id=sample_id, setting=setting, I=i, U=u, IoU=iou_of(i, u))
                for sample_id, per_setting in self._counts.items()
                for setting, (i, u) in per_setting.items()]

    def add_records(self, rows: Iterable[dict]) -> None:
        """Add rows from `records()` (e.g. gathered from other ranks). Each sample must bring every
        setting of this evaluator exactly once and be new here."""
        incoming: dict = {}
        for row in rows:
            if row["setting"] not in self.settings:
                raise ValueError(f"sample {row['sample_id']!r}: unknown setting {row['setting']!r}; "
                                 f"this evaluator has {self.settings}")
            per_setting = incoming.setdefault(row["sample_id"], {})
            if row["setting"] in per_setting:
                raise ValueError(f"sample {row['sample_id']!r}: setting {row['setting']} given twice")
            per_setting[row["setting"]] = (int(row["I"]), int(row["U"]))
        duplicates = [sample_id for sample_id in incoming if sample_id in self._counts]
        if duplicates:
            raise ValueError(f"{len(duplicates)} samples recorded twice when merging, "
                             f"e.g. {duplicates[:5]} (each expression must be evaluated on one rank)")
        for sample_id, per_setting in incoming.items():
            if set(per_setting) != set(self.settings):
                raise ValueError(f"sample {sample_id!r}: has settings {sorted(per_setting)}, "
                                 f"expected {self.settings}")
            self._counts[sample_id] = {s: per_setting[s] for s in self.settings}

    def merge(self, other: "RISEvaluator") -> None:
        """Take in another evaluator's samples (same settings); a sample seen by both raises."""
        if other.settings != self.settings:
            raise ValueError(f"cannot merge evaluators with settings {other.settings} into {self.settings}")
        self.add_records(other.records())

    @classmethod
    def from_records(cls, rows: Iterable[dict], taus: Iterable[float] = (0.5,),
                     crf: bool = False) -> "RISEvaluator":
        """An evaluator holding the given `records()` rows (e.g. all ranks' rows concatenated)."""
        evaluator = cls(taus, crf)
        evaluator.add_records(rows)
        return evaluator
