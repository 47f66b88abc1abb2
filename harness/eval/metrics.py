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

Whether a method used the words (beside every setting's figures, from the same maps):
- pointing = 100 · fraction of expressions whose highest-scoring pixel of the map (at the
  original size, after the protocol; for +crf the CRF'd map) lies inside the target mask — the
  pointing game. Ties go to the first pixel in raster order (row by row, `np.argmax`). It does
  not depend on τ.
- grounding gap. Within each image the refs (one per annotated object in REFER) are sorted by
  ref_id and each ref r is paired with σ(r), the next one cyclically; images with a single ref
  take no part (harness/eval/grounding.py). Each expression of r is also scored, with no extra
  prediction, against σ(r)'s mask (I_swap, U_swap). At ref level over the paired refs:
  mIoU_right = 100 · mean_r (mean over r's expressions of IoU with r's mask), mIoU_swap = the same
  with σ(r)'s mask, gap = mIoU_right − mIoU_swap, n_gap = the number of paired refs. σ is a
  bijection of each image's refs, so a method that ignores the words (one map M per image) has
  Σ_r IoU(M, G_r) = Σ_r IoU(M, G_σ(r)) and a gap of exactly 0 (up to float rounding), whatever
  its mIoU. When no ref has a partner only n_gap = 0 is given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

import numpy as np
import torch

from harness.errors import ConfigError
from harness.eval.protocol import Setting, binarise, check_tau

ACCURACY_THRESHOLDS = (0.3, 0.5, 0.7)
METRIC_KEYS = ("A@0.3", "A@0.5", "A@0.7", "cIoU", "mIoU")
# Whether the method used the words: pointing and the grounding gap (given when the split allows).
GROUNDING_KEYS = ("pointing", "gap", "mIoU_right", "mIoU_swap", "n_gap")


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


def pointing_hit(score: np.ndarray, gt: np.ndarray) -> bool:
    """Whether the map's highest-scoring pixel lies in `gt` (ties: first in raster order)."""
    return bool(np.asarray(gt, dtype=bool).flat[int(np.argmax(score))])


def grounding_summary(rows: Iterable[tuple]) -> dict:
    """{"gap", "mIoU_right", "mIoU_swap", "n_gap"} from (ref_id, IoU, IoU_swap) per paired
    expression: means per ref first, then over refs (see the module docstring). With no paired
    expression only n_gap = 0 (no figure rather than NaN)."""
    by_ref: dict = {}
    for ref_id, iou, iou_swap in rows:
        by_ref.setdefault(ref_id, []).append((iou, iou_swap))
    if not by_ref:
        return {"n_gap": 0}
    right = math.fsum(math.fsum(r for r, _ in pairs) / len(pairs) for pairs in by_ref.values())
    swap = math.fsum(math.fsum(s for _, s in pairs) / len(pairs) for pairs in by_ref.values())
    right, swap = 100.0 * right / len(by_ref), 100.0 * swap / len(by_ref)
    return {"gap": right - swap, "mIoU_right": right, "mIoU_swap": swap, "n_gap": len(by_ref)}


def pointing_summary(hits: Sequence) -> dict:
    """{"pointing": 100 · share of hits} among the known ones (None: not recorded); {} with none."""
    known = [bool(h) for h in hits if h is not None]
    return {"pointing": 100.0 * sum(known) / len(known)} if known else {}


def _as_numpy(array) -> np.ndarray:
    if torch.is_tensor(array):
        return array.detach().cpu().numpy()
    return np.asarray(array)


@dataclass(frozen=True)
class SwapTarget:
    """The grounding gap's second score of one expression: against the partner ref's mask."""

    ref_id: object           # the expression's own ref
    partner_ref_id: object   # σ(ref): the next ref of the same image (harness/eval/grounding.py)
    mask: np.ndarray         # bool [H, W]: the partner object's ground truth


@dataclass(frozen=True)
class _Counts:
    """One sample under one setting."""

    inter: int
    union: int
    hit: Optional[bool] = None             # pointing; None when not recorded
    inter_swap: Optional[int] = None       # against the partner's mask; None without a partner
    union_swap: Optional[int] = None


class RISEvaluator:
    """Accumulates per-expression I and U for every setting (each τ, raw and, with `crf`, +crf),
    with the pointing hit and, where the expression has a partner ref, the swapped I and U.

    reset / process / evaluate, as detectron2's DatasetEvaluator. One `process` call per batch
    records every setting from one prediction pass: the raw maps are thresholded at each τ, and
    the CRF'd maps (when `crf`) at each τ again.
    """

    def __init__(self, taus: Iterable[float] = (0.5,), crf: bool = False):
        self.taus = [check_tau(tau) for tau in taus]
        if not self.taus:
            raise ConfigError("taus: expected at least one threshold τ in (0, 1)")
        self.crf = bool(crf)
        self.settings = [s.name for s in Setting.grid(self.taus, self.crf)]
        if len(set(self.settings)) != len(self.settings):
            raise ConfigError(f"taus {self.taus}: two thresholds share the name {self.settings} (2 decimals)")
        self.reset()

    def reset(self) -> None:
        """Forget every recorded sample."""
        self._counts: dict = {}  # sample_id -> {setting: _Counts}
        self._pairs: dict = {}   # sample_id -> (ref_id, partner ref_id), paired samples only

    def __len__(self) -> int:
        return len(self._counts)

    def process(self, sample_ids: Sequence, gts: Sequence, scores: Sequence,
                crf_scores: Optional[Sequence] = None,
                swaps: Optional[Sequence[Optional[SwapTarget]]] = None) -> None:
        """Record one batch.

        gts: bool masks [H_i, W_i] at original size; scores: the protocol's maps [H_i, W_i]
        (resized, min-maxed); crf_scores: the same after DenseCRF — required iff `crf`;
        swaps: per sample its `SwapTarget`, or None where it has no partner (no gap).
        """
        if (crf_scores is not None) != self.crf:
            raise ValueError(f"evaluator built with crf={self.crf} but crf_scores "
                             f"{'given' if crf_scores is not None else 'missing'}")
        swaps = list(swaps) if swaps is not None else [None] * len(sample_ids)
        if not len(sample_ids) == len(gts) == len(scores) == len(swaps):
            raise ValueError(f"{len(sample_ids)} ids, {len(gts)} masks, {len(scores)} score maps, "
                             f"{len(swaps)} swap targets")
        for k, sample_id in enumerate(sample_ids):
            maps = [scores[k]] + ([crf_scores[k]] if self.crf else [])
            counts = self._counts_for(sample_id, _as_numpy(gts[k]), maps, swaps[k])
            pair = None if swaps[k] is None else (swaps[k].ref_id, swaps[k].partner_ref_id)
            self._record(sample_id, counts, pair)

    def _counts_for(self, sample_id, gt: np.ndarray, maps: list,
                    swap: Optional[SwapTarget]) -> dict:
        swap_gt = None if swap is None else _as_numpy(swap.mask)
        if swap_gt is not None and swap_gt.shape != gt.shape:
            raise ValueError(f"sample {sample_id}: partner mask {swap_gt.shape} vs mask {gt.shape}")
        counts = {}
        for crf_map, score in zip((False, True), maps):
            score = _as_numpy(score)
            if score.shape != gt.shape:
                raise ValueError(f"sample {sample_id}: score map {score.shape} vs mask {gt.shape}")
            hit = pointing_hit(score, gt)
            for tau in self.taus:
                pred = binarise(score, tau)
                swapped = iou_counts(pred, swap_gt) if swap_gt is not None else (None, None)
                counts[Setting(tau, crf_map).name] = _Counts(*iou_counts(pred, gt), hit, *swapped)
        return counts

    def _record(self, sample_id, counts: dict, pair: Optional[tuple]) -> None:
        if sample_id in self._counts:
            raise ValueError(f"sample {sample_id!r} recorded twice (each expression is evaluated once)")
        self._counts[sample_id] = counts
        if pair is not None:
            self._pairs[sample_id] = pair

    def evaluate(self) -> dict:
        """{setting: summary} over every recorded sample: `summarise`'s figures, then pointing
        and the grounding gap (module docstring)."""
        result = {}
        for setting in self.settings:
            counts = [per_setting[setting] for per_setting in self._counts.values()]
            summary = summarise([c.inter for c in counts], [c.union for c in counts])
            summary.update(pointing_summary([c.hit for c in counts]))
            paired = [(self._pairs[sample_id][0], per_setting[setting])
                      for sample_id, per_setting in self._counts.items() if sample_id in self._pairs]
            summary.update(grounding_summary(
                (ref_id, iou_of(c.inter, c.union), iou_of(c.inter_swap, c.union_swap))
                for ref_id, c in paired))
            result[setting] = summary
        return result

    def records(self) -> list[dict]:
        """One row per sample and setting (for samples.csv): {sample_id, setting, I, U, IoU,
        pointing (1/0), ref_id, swap_ref_id, I_swap, U_swap, IoU_swap} — ref_id and the swap
        fields None where the sample has no partner ref."""
        rows = []
        for sample_id, per_setting in self._counts.items():
            own_ref, partner = self._pairs.get(sample_id, (None, None))
            for setting, c in per_setting.items():
                rows.append(dict(
                    sample_id=sample_id, setting=setting, I=c.inter, U=c.union,
                    IoU=iou_of(c.inter, c.union), pointing=None if c.hit is None else int(c.hit),
                    ref_id=own_ref, swap_ref_id=partner, I_swap=c.inter_swap,
                    U_swap=c.union_swap,
                    IoU_swap=None if c.inter_swap is None else iou_of(c.inter_swap, c.union_swap)))
        return rows

    def add_records(self, rows: Iterable[dict]) -> None:
        """Add rows from `records()` (e.g. gathered from other ranks). Each sample must bring every
        setting of this evaluator exactly once and be new here."""
        incoming, pairs = _parse_records(rows, self.settings)
        duplicates = [sample_id for sample_id in incoming if sample_id in self._counts]
        if duplicates:
            raise ValueError(f"{len(duplicates)} samples recorded twice when merging, "
                             f"e.g. {duplicates[:5]} (each expression must be evaluated on one rank)")
        for sample_id, per_setting in incoming.items():
            if set(per_setting) != set(self.settings):
                raise ValueError(f"sample {sample_id!r}: has settings {sorted(per_setting)}, "
                                 f"expected {self.settings}")
            self._record(sample_id, {s: per_setting[s] for s in self.settings}, pairs.get(sample_id))

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


def _optional_int(value) -> Optional[int]:
    return None if value is None or value == "" else int(value)


def _parse_records(rows: Iterable[dict], settings: list) -> tuple[dict, dict]:
    """({sample_id: {setting: _Counts}}, {sample_id: (ref_id, partner ref_id)}) from rows."""
    incoming: dict = {}
    pairs: dict = {}
    for row in rows:
        if row["setting"] not in settings:
            raise ValueError(f"sample {row['sample_id']!r}: unknown setting {row['setting']!r}; "
                             f"this evaluator has {settings}")
        per_setting = incoming.setdefault(row["sample_id"], {})
        if row["setting"] in per_setting:
            raise ValueError(f"sample {row['sample_id']!r}: setting {row['setting']} given twice")
        hit = _optional_int(row.get("pointing"))
        per_setting[row["setting"]] = _Counts(
            int(row["I"]), int(row["U"]), None if hit is None else bool(hit),
            _optional_int(row.get("I_swap")), _optional_int(row.get("U_swap")))
        if per_setting[row["setting"]].inter_swap is not None:
            pairs[row["sample_id"]] = (row.get("ref_id"), row.get("swap_ref_id"))
    return incoming, pairs
