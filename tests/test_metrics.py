"""harness/eval/metrics.py: I/U, the summary figures at their boundaries, and the evaluator."""

import math

import numpy as np
import pytest

from harness.errors import ConfigError
from harness.eval.metrics import RISEvaluator, iou_counts, summarise


def strip(n_on: int, length: int = 10) -> np.ndarray:
    """A 1×length bool mask whose first n_on pixels are on."""
    mask = np.zeros((1, length), dtype=bool)
    mask[0, :n_on] = True
    return mask


def test_iou_counts_hand_computed_cases():
    gt = np.zeros((4, 5), dtype=bool)
    gt[1:3, 1:4] = True                                    # 6 pixels
    assert iou_counts(np.zeros_like(gt), gt) == (0, 6)    # empty prediction
    assert iou_counts(np.ones_like(gt), gt) == (6, 20)    # full prediction
    pred = np.zeros_like(gt)
    pred[2:4, 2:5] = True                                  # 6 pixels, 2 shared with gt
    assert iou_counts(pred, gt) == (2, 10)
    with pytest.raises(ValueError):
        iou_counts(pred[:3], gt)


def test_accuracy_thresholds_are_inclusive():
    # IoU exactly 0.3, 0.5, 0.7 counts; one pixel fewer of intersection does not.
    gt = strip(10)
    exact = [iou_counts(strip(n), gt) for n in (3, 5, 7)]           # IoU 0.3, 0.5, 0.7
    below = [iou_counts(strip(n, 10) & ~strip(1), gt) for n in (3, 5, 7)]  # IoU 0.2, 0.4, 0.6
    s_exact = summarise(*zip(*exact))
    assert s_exact["A@0.3"] == 100.0
    assert s_exact["A@0.5"] == pytest.approx(200 / 3)
    assert s_exact["A@0.7"] == pytest.approx(100 / 3)
    s_below = summarise(*zip(*below))
    assert s_below["A@0.3"] == pytest.approx(200 / 3)   # 0.4, 0.6 pass; 0.2 fails
    assert s_below["A@0.5"] == pytest.approx(100 / 3)
    assert s_below["A@0.7"] == 0.0
    # Just below in a large mask: 299/1000 is not counted at 0.3.
    assert summarise([299, 300], [1000, 1000])["A@0.3"] == 50.0


def test_ciou_and_miou_differ_as_defined():
    # A small object perfectly found and a large one half found.
    intersections, unions = [10, 500], [10, 1000]
    summary = summarise(intersections, unions)
    assert summary["mIoU"] == pytest.approx(100 * (1.0 + 0.5) / 2)           # 75
    assert summary["cIoU"] == pytest.approx(100 * 510 / 1010)                # ~50.5
    assert summary["n"] == 2
    assert set(summary) == {"A@0.3", "A@0.5", "A@0.7", "cIoU", "mIoU", "n"}


def test_empty_ground_truth_with_empty_prediction_is_a_match():
    assert summarise([0], [0])["mIoU"] == 100.0
    assert summarise([0, 0], [0, 4])["mIoU"] == 50.0
    assert math.isnan(summarise([], [])["mIoU"]) and summarise([], [])["n"] == 0


def random_batch(seed: int, n: int = 6, size=(12, 15)):
    rng = np.random.default_rng(seed)
    gts = [rng.random(size) < 0.3 for _ in range(n)]
    scores = [np.clip(gt * 0.6 + rng.random(size) * 0.6, 0, 1) for gt in gts]
    crf_scores = [np.clip(s + rng.normal(0, 0.2, size), 0, 1) for s in scores]
    return [f"s{seed}-{k}" for k in range(n)], gts, scores, crf_scores


def test_many_settings_in_one_pass_equal_separate_passes():
    ids, gts, scores, crf_scores = random_batch(0)
    taus = [0.3, 0.5, 0.7]
    together = RISEvaluator(taus, crf=True)
    together.process(ids[:3], gts[:3], scores[:3], crf_scores[:3])
    together.process(ids[3:], gts[3:], scores[3:], crf_scores[3:])
    result = together.evaluate()
    assert list(result) == ["tau=0.30", "tau=0.50", "tau=0.70",
                            "tau=0.30+crf", "tau=0.50+crf", "tau=0.70+crf"]
    for tau in taus:
        raw_only = RISEvaluator([tau])
        raw_only.process(ids, gts, scores)
        assert result[f"tau={tau:.2f}"] == raw_only.evaluate()[f"tau={tau:.2f}"]
        crf_as_raw = RISEvaluator([tau])
        crf_as_raw.process(ids, gts, crf_scores)
        assert result[f"tau={tau:.2f}+crf"] == crf_as_raw.evaluate()[f"tau={tau:.2f}"]
        # and against numpy directly
        counts = [iou_counts(s >= tau, g) for s, g in zip(scores, gts)]
        assert result[f"tau={tau:.2f}"]["cIoU"] == pytest.approx(
            100 * sum(i for i, _ in counts) / sum(u for _, u in counts))
    # different τ give different figures on this data (the sweep is not a no-op)
    assert result["tau=0.30"]["mIoU"] != result["tau=0.70"]["mIoU"]


def test_records_and_merge_reproduce_the_single_pass():
    ids, gts, scores, _ = random_batch(1, n=8)
    whole = RISEvaluator([0.4, 0.6])
    whole.process(ids, gts, scores)
    rank0, rank1 = RISEvaluator([0.4, 0.6]), RISEvaluator([0.4, 0.6])
    rank0.process(ids[::2], gts[::2], scores[::2])      # interleaved, as a DistributedSampler
    rank1.process(ids[1::2], gts[1::2], scores[1::2])
    rank1.merge(rank0)
    assert rank1.evaluate() == whole.evaluate()         # exact: fsum makes order irrelevant
    rebuilt = RISEvaluator.from_records(rank0.records(), [0.4, 0.6])
    assert len(rebuilt) == 4 and rebuilt.evaluate() == rank0.evaluate()
    row = whole.records()[0]
    assert set(row) == {"sample_id", "setting", "I", "U", "IoU", "pointing", "ref_id",
                        "swap_ref_id", "I_swap", "U_swap", "IoU_swap"}
    assert row["swap_ref_id"] is None and row["I_swap"] is None  # no partner given
    assert row["IoU"] == pytest.approx(row["I"] / row["U"])
    assert len(whole.records()) == 8 * 2


def test_duplicate_samples_are_rejected():
    ids, gts, scores, _ = random_batch(2, n=4)
    first, second = RISEvaluator(), RISEvaluator()
    first.process(ids[:3], gts[:3], scores[:3])
    second.process(ids[2:], gts[2:], scores[2:])        # ids[2] on both "ranks"
    with pytest.raises(ValueError, match=r"1 samples recorded twice.*s2-2"):
        first.merge(second)
    with pytest.raises(ValueError, match="recorded twice"):
        first.process(ids[:1], gts[:1], scores[:1])
    with pytest.raises(ValueError, match="given twice"):
        RISEvaluator.from_records(first.records() + first.records()[:1])


@pytest.mark.parametrize("tau", [0.0, 1.0, -0.2, 1.5, "abc"])
def test_tau_outside_open_unit_interval_is_rejected(tau):
    with pytest.raises(ConfigError, match="τ"):
        RISEvaluator([0.5, tau])


def test_crf_maps_required_exactly_when_crf_is_on():
    ids, gts, scores, crf_scores = random_batch(3, n=2)
    with pytest.raises(ValueError, match="crf"):
        RISEvaluator(crf=True).process(ids, gts, scores)
    with pytest.raises(ValueError, match="crf"):
        RISEvaluator(crf=False).process(ids, gts, scores, crf_scores)
