"""`run --save-predictions` (harness/store/predictions.py): the PNGs `score` reads, threshold-exact, and
`score` on them reproduces the run's figures — raw settings from <split>/, +crf from <split>+crf/.

The method is tests/tiny_segmenter.py's `tiny_probe`: its maps are continuous (sigmoid scores
through bilinear resizing and min-max), so many pixels fall near every τ.
"""

import csv
import json

import numpy as np
import pytest

from harness import registry, store
from harness.cli import main
from harness.errors import ConfigError
from harness.eval.metrics import iou_counts
from harness.store.predictions import first_level, quantise, split_dir
from harness.eval.score import read_prediction, score_predictions
from tests.tiny_segmenter import write_config

TAUS = (0.4, 0.5)
LIMIT = 30


@pytest.fixture(autouse=True)
def tiny_probe_only(monkeypatch):
    import tests.tiny_segmenter  # noqa: F401  (registers tiny_probe)

    monkeypatch.setattr(registry, "METHOD_MODULES", ("harness.reference_segmenters",))
    monkeypatch.setattr(registry, "_loaded", False)


def test_quantise_keeps_every_pixel_on_its_side_of_each_tau():
    # 255 · 0.3995 = 101.87 rounds to 102 = 0.4 · 255: plain rounding would cross τ = 0.4.
    prob = np.array([[0.3985, 0.3995, 0.4, 0.4005], [0.4999, 0.5, 0.5001, 0.9]])
    plain = np.floor(prob * 255 + 0.5).astype(np.uint8)
    assert not np.array_equal(plain / 255.0 >= 0.4, prob >= 0.4)      # the trap is real
    values = quantise(prob, TAUS)
    for tau in TAUS:
        assert np.array_equal(values / 255.0 >= tau, prob >= tau), tau
    assert np.abs(values.astype(int) - plain.astype(int)).max() <= 1  # still the 8-bit map
    assert values[0, 1] == first_level(0.4) - 1 == 101
    float32 = (prob.astype(np.float32) + np.float32(1e-7))            # a CRF map's dtype
    assert np.array_equal(quantise(float32, [0.3, 0.4]) / 255.0 >= 0.3, float32 >= 0.3)


def test_taus_between_the_same_two_levels_are_refused():
    with pytest.raises(ConfigError, match="too close"):
        quantise(np.zeros((2, 2)), [0.5, 0.501])


def run_args(config, data_root, out, *extra):
    return ["run", "--methods", "tiny_probe", "--config", str(config), "--data-root", str(data_root),
            "--seeds", "0", "--splits", "val", "--limit", str(LIMIT), "--profile", "smoke",
            "--taus", ",".join(map(str, TAUS)), "--crf", "--crf-workers", "1",
            "--out", str(out), "--no-progress", *extra]


def samples_of(folder, setting) -> dict:
    with open(folder / "samples.csv") as handle:
        return {row["sample_id"]: row for row in csv.DictReader(handle) if row["setting"] == setting}


def test_saved_predictions_rescore_to_the_runs_metrics(synthref_root, tmp_path, capsys):
    config = write_config(tmp_path / "tiny_probe.py")
    out = tmp_path / "runs"
    folder = store.Store(out).run_dir("synthref", "tiny_probe", 0)
    assert main(run_args(config, synthref_root, out)) == 0
    plain = (folder / "metrics.json").read_text()
    assert not (folder / "predictions").exists()

    # The same finished run asked for predictions: it is computed again (same figures) and saves them.
    capsys.readouterr()
    assert main(run_args(config, synthref_root, out, "--save-predictions")) == 0
    assert "1 run(s) computed" in capsys.readouterr().out
    assert (folder / "metrics.json").read_text() == plain
    metrics = json.loads(plain)["splits"]["val"]
    for crf in (False, True):
        for tau in TAUS:
            setting = f"tau={tau:.2f}" + ("+crf" if crf else "")
            predictions = split_dir(folder, "val", crf)
            assert len(list(predictions.glob("*.png"))) == LIMIT
            scored = score_predictions("synthref", synthref_root, "val", predictions, tau=tau,
                                       limit=LIMIT)
            assert scored["n"] == metrics[setting]["n"] == LIMIT
            for key, value in scored["metrics"].items():
                assert round(value, 4) == metrics[setting][key], (setting, key)
            assert_same_counts(folder, predictions, synthref_root, setting, tau)

    # Now stored with its predictions: skipped.
    capsys.readouterr()
    assert main(run_args(config, synthref_root, out, "--save-predictions")) == 0
    assert "0 run(s) computed" in capsys.readouterr().out


def assert_same_counts(folder, predictions, data_root, setting, tau) -> None:
    """Per expression, the PNG thresholded as `score` does gives samples.csv's exact I and U."""
    from harness.data.datasets import open_split

    rows = samples_of(folder, setting)
    dataset = open_split("synthref", "val", data_root=data_root).subset(LIMIT)
    for index, sample in enumerate(dataset.samples):
        prob = read_prediction(predictions / f"{sample.sample_id}.png")
        inter, union = iou_counts(prob >= tau, dataset.mask(index))
        row = rows[str(sample.sample_id)]
        assert (inter, union) == (int(row["I"]), int(row["U"])), (setting, sample.sample_id)
