"""Per-image sums of a run's samples.csv: every figure of a setting as a ratio of sums over images.

mIoU, cIoU, A@k, pointing and the grounding gap (harness/eval/metrics.py, whose definitions are
the only ones) are each a ratio of two sums over expressions — or, for the gap, over paired refs,
and a ref's expressions all belong to one image. So per image these sums say everything:

    n        expressions              iou      Σ IoU             hit@k    Σ [IoU ≥ k]
    I, U     Σ intersection, union    n_point  expressions with a pointing record
    point    Σ pointing hits          n_ref    paired refs       right, swap  Σ over paired refs
                                                                  of their mean IoU / IoU_swap

and a figure over any multiset of images — the whole split, a bootstrap replicate, a breakdown
bin — is `figures(weighted sums)`. On the whole split it equals metrics.json (tested).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.eval.metrics import ACCURACY_THRESHOLDS

FIELDS = ("n", "iou", *(f"hit@{k}" for k in ACCURACY_THRESHOLDS), "I", "U", "n_point", "point",
          "n_ref", "right", "swap")
F = {name: k for k, name in enumerate(FIELDS)}
# The figures `figures` gives, in percent; the metric names of metrics.json.
FIGURES = ("mIoU", "cIoU", *(f"A@{k}" for k in ACCURACY_THRESHOLDS), "pointing", "gap",
           "mIoU_right", "mIoU_swap")


def _iou(inter: np.ndarray, union: np.ndarray) -> np.ndarray:
    """I / U with 1 where U = 0 (an empty prediction of an empty mask), as `iou_of`."""
    inter, union = inter.astype(np.float64), union.astype(np.float64)
    out = np.ones_like(inter)
    np.divide(inter, union, out=out, where=union != 0)
    return out


def image_sums(rows: pd.DataFrame, images: pd.Index) -> np.ndarray:
    """[G, len(FIELDS)] sums of one run's rows for one split and setting, per image of `images`
    (rows need columns image_id, ref_id, I, U, pointing, I_swap, U_swap)."""
    where = images.get_indexer(rows["image_id"])
    if (where < 0).any():
        missing = rows["image_id"][where < 0].iloc[0]
        raise ValueError(f"image {missing!r} of the rows is not in the image index")
    G = len(images)
    sums = np.zeros((G, len(FIELDS)))
    iou = _iou(rows["I"].to_numpy(), rows["U"].to_numpy())

    def add(field: str, values, at=where) -> None:
        sums[:, F[field]] += np.bincount(at, weights=np.asarray(values, dtype=np.float64), minlength=G)

    add("n", np.ones(len(rows)))
    add("iou", iou)
    for k in ACCURACY_THRESHOLDS:
        add(f"hit@{k}", iou >= k)
    add("I", rows["I"].to_numpy())
    add("U", rows["U"].to_numpy())
    pointing = pd.to_numeric(rows["pointing"], errors="coerce")
    known = pointing.notna().to_numpy()
    add("n_point", known)
    add("point", np.where(known, pointing.fillna(0).to_numpy(), 0.0))
    i_swap = pd.to_numeric(rows["I_swap"], errors="coerce")
    mask = i_swap.notna().to_numpy()          # expressions with a partner ref (the gap's)
    if mask.any():
        per_ref = pd.DataFrame({
            "ref": rows["ref_id"].to_numpy()[mask], "image": where[mask],
            "right": iou[mask],
            "swap": _iou(i_swap.to_numpy()[mask],
                         pd.to_numeric(rows["U_swap"]).to_numpy()[mask])}).groupby("ref").agg(
            image=("image", "first"), right=("right", "mean"), swap=("swap", "mean"))
        at = per_ref["image"].to_numpy()
        add("n_ref", np.ones(len(per_ref)), at)
        add("right", per_ref["right"].to_numpy(), at)
        add("swap", per_ref["swap"].to_numpy(), at)
    return sums


def _ratio(num: np.ndarray, den: np.ndarray, empty: float = np.nan) -> np.ndarray:
    """100 · num / den, `empty` where den = 0."""
    num, den = np.broadcast_arrays(np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64))
    out = np.full(num.shape, empty)
    np.divide(100.0 * num, den, out=out, where=den != 0)
    return out


def figures(sums: np.ndarray) -> dict:
    """{figure: array [...]} in percent from sums [..., len(FIELDS)] (NaN where a figure has no
    expression — a gap with no paired ref; cIoU is 100 when ΣU = 0, as in metrics.py)."""
    s = {name: sums[..., k] for name, k in F.items()}
    out = {"mIoU": _ratio(s["iou"], s["n"]),
           "cIoU": _ratio(s["I"], s["U"], empty=100.0)}
    for k in ACCURACY_THRESHOLDS:
        out[f"A@{k}"] = _ratio(s[f"hit@{k}"], s["n"])
    out["pointing"] = _ratio(s["point"], s["n_point"])
    out["mIoU_right"] = _ratio(s["right"], s["n_ref"])
    out["mIoU_swap"] = _ratio(s["swap"], s["n_ref"])
    out["gap"] = out["mIoU_right"] - out["mIoU_swap"]
    return out


def figure(sums: np.ndarray, metric: str) -> np.ndarray:
    if metric not in FIGURES:
        raise KeyError(f"no interval for metric {metric!r}; intervals exist for {', '.join(FIGURES)}")
    return figures(sums)[metric]
