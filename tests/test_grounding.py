"""The language check (harness/eval/grounding.py, harness/eval/metrics.py): the pairing of each ref with
another object of its image, the grounding gap and pointing by hand, and the floors — which never
read the words — at a gap of 0 on generated synthref data."""

from pathlib import Path

import numpy as np
import pytest

from harness.data.types import RefSample
from harness.eval.grounding import partner_refs, swap_partners
from harness.eval.metrics import RISEvaluator, SwapTarget, grounding_summary


def sample(sample_id, ref_id, image_id) -> RefSample:
    return RefSample(sample_id=sample_id, ref_id=ref_id, image_id=image_id,
                     image_path=Path("unused.png"), text="", height=4, width=4)


def test_each_ref_is_paired_with_the_next_ref_of_its_image_cyclically():
    samples = [sample(1, 30, "a"), sample(2, 10, "a"), sample(3, 20, "a"), sample(4, 10, "a"),
               sample(5, 7, "b"), sample(6, 8, "c"), sample(7, 9, "c")]
    assert partner_refs(samples) == {("a", 10): 20, ("a", 20): 30, ("a", 30): 10,
                                     ("c", 8): 9, ("c", 9): 8}
    # (partner ref, the first sample of it); image b has a single ref: no partner.
    assert swap_partners(samples) == [(10, 1), (20, 2), (30, 0), (20, 2), None, (9, 6), (8, 5)]


def box(rows, cols, size=(4, 4)) -> np.ndarray:
    mask = np.zeros(size, dtype=bool)
    mask[rows[0]:rows[1], cols[0]:cols[1]] = True
    return mask


# One image with two objects: A (top-left 2×2) and B (bottom-right 2×2).
OBJ_A, OBJ_B = box((0, 2), (0, 2)), box((2, 4), (2, 4))


def test_gap_and_pointing_by_hand():
    """A's two expressions: one map exactly on A, one on A's top row; B's expression: a map on
    the whole bottom half. Each is also scored against the other object's mask."""
    on_a = OBJ_A.astype(float)
    top_row_of_a = box((0, 1), (0, 2)).astype(float)
    bottom_half = np.zeros((4, 4))
    bottom_half[2:, :] = 0.8
    bottom_half[3, 3] = 0.9                        # B's peak, inside B
    evaluator = RISEvaluator([0.5])
    evaluator.process(["a1", "a2", "b1"], [OBJ_A, OBJ_A, OBJ_B], [on_a, top_row_of_a, bottom_half],
                      swaps=[SwapTarget("A", "B", OBJ_B), SwapTarget("A", "B", OBJ_B),
                             SwapTarget("B", "A", OBJ_A)])
    result = evaluator.evaluate()["tau=0.50"]
    # IoU with the right object: a1 4/4, a2 2/4, b1 4/8; with the other one: 0, 0, 0 (disjoint).
    right = ((1.0 + 0.5) / 2 + 0.5) / 2            # per ref first, then over the refs A and B
    assert result["mIoU_right"] == pytest.approx(100 * right)
    assert result["mIoU_swap"] == 0.0
    assert result["gap"] == pytest.approx(100 * right) and result["n_gap"] == 2
    assert result["mIoU"] == pytest.approx(100 * (1.0 + 0.5 + 0.5) / 3)   # expression level
    # Peaks: a1 ties over A's 4 pixels → the first in raster order, (0, 0), inside A; a2 ties over
    # the top row → (0, 0), inside A; b1 → (3, 3), inside B.
    assert result["pointing"] == 100.0
    rows = {r["sample_id"]: r for r in evaluator.records()}
    assert (rows["b1"]["ref_id"], rows["b1"]["swap_ref_id"]) == ("B", "A")
    assert (rows["a2"]["I_swap"], rows["a2"]["U_swap"], rows["a2"]["pointing"]) == (0, 6, 1)


def test_swapped_expressions_give_the_negative_gap_and_ties_miss():
    """Each map lies on the OTHER object: the gap is minus the swapped score; a flat map's peak
    is its first pixel, (0, 0), which lies in A but not in B."""
    flat = np.full((4, 4), 0.7)
    evaluator = RISEvaluator([0.5])
    evaluator.process(["a", "b", "c"], [OBJ_A, OBJ_B, OBJ_B],
                      [OBJ_B.astype(float), OBJ_A.astype(float), flat],
                      swaps=[SwapTarget("A", "B", OBJ_B), SwapTarget("B", "A", OBJ_A), None])
    result = evaluator.evaluate()["tau=0.50"]
    assert (result["mIoU_right"], result["mIoU_swap"], result["gap"]) == (0.0, 100.0, -100.0)
    assert result["n_gap"] == 2                    # "c" has no partner: not in the gap
    assert result["pointing"] == pytest.approx(100 * 0 / 3)
    rows = {r["sample_id"]: r for r in evaluator.records()}
    assert rows["c"]["swap_ref_id"] is None and rows["c"]["IoU_swap"] is None


def test_language_blind_maps_have_a_zero_gap_whatever_they_hit():
    """One map per image for all its expressions (refs with 1–3 expressions each): the gap is 0."""
    rng = np.random.default_rng(0)
    evaluator = RISEvaluator([0.3, 0.5], crf=True)
    for image in range(6):
        masks = [rng.random((9, 7)) < 0.3 for _ in range(3)]
        shared, shared_crf = rng.random((9, 7)), rng.random((9, 7))
        for ref in range(3):
            for k in range(ref + 1):
                evaluator.process([f"{image}-{ref}-{k}"], [masks[ref]], [shared], [shared_crf],
                                  swaps=[SwapTarget((image, ref), (image, (ref + 1) % 3),
                                                    masks[(ref + 1) % 3])])
    for setting, summary in evaluator.evaluate().items():
        assert summary["mIoU_right"] > 0 and summary["n_gap"] == 18, setting
        assert abs(summary["gap"]) < 1e-9, setting


def test_gap_survives_a_merge_of_ranks():
    """Records gathered from two ranks give the one-process figures, pairs included."""
    evaluator, rank0, rank1 = RISEvaluator(), RISEvaluator(), RISEvaluator()
    args = (["a", "b"], [OBJ_A, OBJ_B], [OBJ_A.astype(float), OBJ_A.astype(float)])
    swaps = [SwapTarget("A", "B", OBJ_B), SwapTarget("B", "A", OBJ_A)]
    evaluator.process(*args, swaps=swaps)
    rank0.process(*[a[:1] for a in args], swaps=swaps[:1])
    rank1.process(*[a[1:] for a in args], swaps=swaps[1:])
    rank0.merge(rank1)
    assert rank0.evaluate() == evaluator.evaluate()
    # Both expressions got A's map: right (1 + 0) / 2, swapped (0 + 1) / 2 — no grounding.
    summary = evaluator.evaluate()["tau=0.50"]
    assert (summary["mIoU_right"], summary["mIoU_swap"], summary["gap"]) == (50.0, 50.0, 0.0)


def test_grounding_summary_without_pairs_gives_no_figure():
    assert grounding_summary([]) == {"n_gap": 0}


@pytest.mark.parametrize("method", ["whole", "objects"])
def test_floors_have_zero_gap_on_synthref(method, synthref_root, tmp_path):
    """The floors never read the expression: on generated synthref (every split), gap = 0."""
    from harness.run.runner import RunOptions, run_one

    opts = RunOptions(dataset="synthref", profile="smoke", splits=["val", "testA", "testB"],
                      data_root=synthref_root, out=tmp_path, progress=False, crf_workers=1)
    metrics = run_one(method, 0, opts).metrics
    for split, by_setting in metrics["splits"].items():
        summary = by_setting["tau=0.50"]
        assert summary["n_gap"] > 10, split          # most images hold several refs
        assert abs(summary["gap"]) < 1e-9, split
        assert summary["mIoU_right"] > 0, split
    assert metrics["splits"]["val"]["tau=0.50"]["pointing"] >= 0
