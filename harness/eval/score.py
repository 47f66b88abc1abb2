"""`harness score`: metrics of prediction masks made by any tool, with the harness's definitions.

A prediction is `<predictions_dir>/<sample_id>.png`, 8-bit grayscale at the image's size; its
foreground is where value / 255 ≥ τ (no min-max: the file is taken as a probability). With
`crf`, value / 255 first goes through DenseCRF with the image. Every file is checked before any
is scored: missing, wrongly sized or non-grayscale files and PNGs matching no sample of the split
are reported together in one DataError (count and first ids of each problem).
"""

from __future__ import annotations

from collections import Counter
from contextlib import nullcontext
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image
from tabulate import tabulate

from harness.data.datasets import open_split
from harness.data.identity import data_identity
from harness.errors import DataError
from harness.eval.grounding import swap_partners
from harness.eval.metrics import METRIC_KEYS, RISEvaluator, SwapTarget
from harness.eval.postprocess import CRFPool
from harness.eval.protocol import Setting, check_tau

SHOWN_IDS = 5          # ids listed per problem in an error message
GRAYSCALE_MODES = ("L", "1")
CRF_BATCH = 32         # samples handed to the CRF pool at a time
# Beside the mask metrics, from the same files: pointing (the map's peak in the target; on an 8-bit
# PNG ties go to the first pixel in raster order) and the grounding gap (harness/eval/metrics.py).
GROUNDING_KEYS = ("pointing", "gap", "n_gap")


def score_predictions(dataset: str, data_root, split: str, predictions_dir, tau: float = 0.5,
                      crf: bool = False, image_root=None, split_by: Optional[str] = None,
                      limit: Optional[int] = None, crf_workers: Optional[int] = None,
                      phrasecut_list: Optional[str] = None) -> dict:
    """Score `<sample_id>.png` masks against a split's ground truth.

    Returns {"dataset", "split", "n", "tau", "crf", "metrics": {"A@0.3", "A@0.5", "A@0.7",
    "cIoU", "mIoU", "pointing", "gap", "n_gap"}} with metrics in percent (gap only where some image
    has two refs), plus "split_by" (REFER) or "phrasecut_list"
    (PhraseCut) and the data fingerprint: which expressions were scored. `limit` scores the first `limit` samples only
    (predictions for the rest of the split are then not "extra").
    """

    tau = check_tau(tau)
    predictions_dir = Path(predictions_dir)
    if not predictions_dir.is_dir():
        raise DataError(predictions_dir, "predictions folder not found (expected <sample_id>.png files)")

    full = open_split(dataset, split, data_root=data_root, image_root=image_root, split_by=split_by,
                      phrasecut_list=phrasecut_list)
    identity = data_identity(dataset, data_root, split_by, [split], phrasecut_list)
    scored = full.subset(int(limit)) if limit is not None else full
    _check_prediction_files(predictions_dir, full, scored)

    evaluator = RISEvaluator([tau], crf=crf)
    partners = swap_partners(scored.samples)   # the grounding gap's pairs, as a run makes them
    with CRFPool(crf_workers) if crf else nullcontext() as pool:
        for start in range(0, len(scored), CRF_BATCH):
            indices = range(start, min(start + CRF_BATCH, len(scored)))
            _score_batch(scored, indices, predictions_dir, evaluator, pool, partners)
    summary = evaluator.evaluate()[Setting(tau, crf).name]
    read = {k: identity[k] for k in ("split_by", "phrasecut_list") if k in identity}
    read["data_fingerprint"] = identity["fingerprint"]
    return {"dataset": dataset, "split": split, "n": summary["n"], "tau": tau, "crf": bool(crf),
            "metrics": {key: summary[key] for key in (*METRIC_KEYS, *GROUNDING_KEYS) if key in summary},
            **read}


def _score_batch(ds, indices, predictions_dir: Path, evaluator: RISEvaluator, pool, partners) -> None:
    samples = [ds.samples[i] for i in indices]
    probs = [read_prediction(predictions_dir / f"{s.sample_id}.png") for s in samples]
    gts = [ds.mask(i) for i in indices]
    swaps = [None if partners[i] is None
             else SwapTarget(ds.samples[i].ref_id, partners[i][0], ds.mask(partners[i][1])) for i in indices]
    crf_probs = pool.map([ds.image(i) for i in indices], probs) if pool is not None else None
    evaluator.process([s.sample_id for s in samples], gts, probs, crf_probs, swaps)


def read_prediction(path: Path) -> np.ndarray:
    """A prediction PNG as value / 255, float64 [H, W] in [0, 1]."""
    with Image.open(path) as im:
        values = np.asarray(im.convert("L"), dtype=np.float64)
    return values / 255.0


def _check_prediction_files(predictions_dir: Path, full, scored) -> None:
    """One DataError listing every problem with the folder's files, or nothing."""
    split_ids = {str(s.sample_id) for s in full.samples}
    scored_ids = [str(s.sample_id) for s in scored.samples]
    if len(set(scored_ids)) != len(scored_ids):
        repeated = sorted(i for i, count in Counter(scored_ids).items() if count > 1)
        raise DataError(full.root, f"sample ids are not unique in split {full.split!r}: {_ids(repeated)}")
    present = {p.stem for p in predictions_dir.glob("*.png")}
    problems = []
    missing = [i for i in scored_ids if i not in present]
    extra = sorted(present - split_ids)
    if missing:
        problems.append(f"{len(missing)} missing ({_ids(missing)})")
    if extra:
        problems.append(f"{len(extra)} extra matching no sample of {full.name}/{full.split} ({_ids(extra)})")
    wrong_size, wrong_mode = _check_formats(predictions_dir, scored, present)
    if wrong_size:
        problems.append(f"{len(wrong_size)} of the wrong size ({_ids(wrong_size)})")
    if wrong_mode:
        problems.append(f"{len(wrong_mode)} not 8-bit grayscale ({_ids(wrong_mode)})")
    if problems:
        raise DataError(predictions_dir, "prediction files: " + "; ".join(problems))


def _check_formats(predictions_dir: Path, scored, present: set) -> tuple[list, list]:
    """Ids whose PNG has the wrong size ('id: WxH, expected WxH') or mode (header reads only)."""
    wrong_size, wrong_mode = [], []
    for sample in scored.samples:
        if str(sample.sample_id) not in present:
            continue
        path = predictions_dir / f"{sample.sample_id}.png"
        try:
            with Image.open(path) as im:
                size, mode = im.size, im.mode
        except OSError as exc:
            raise DataError(path, f"cannot be read as a PNG ({exc})") from exc
        if size != (sample.width, sample.height):
            wrong_size.append(f"{sample.sample_id}: {size[0]}x{size[1]}, "
                              f"expected {sample.width}x{sample.height}")
        if mode not in GRAYSCALE_MODES:
            wrong_mode.append(f"{sample.sample_id}: mode {mode}")
    return wrong_size, wrong_mode


def _ids(ids: list) -> str:
    shown = ", ".join(str(i) for i in ids[:SHOWN_IDS])
    return shown + (", …" if len(ids) > SHOWN_IDS else "")


def format_score_table(result: dict) -> str:
    """The `score` result as one markdown row (tabulate), figures in percent to 2 decimals."""
    row = [result["dataset"], result["split"], Setting(result["tau"], result["crf"]).name, result["n"]]
    shown = [*METRIC_KEYS, *(key for key in ("pointing", "gap") if key in result["metrics"])]
    row += [f"{result['metrics'][key]:.2f}" for key in shown]
    headers = ["dataset", "split", "setting", "n", *shown]
    return tabulate([row], headers=headers, tablefmt="github", disable_numparse=True)
