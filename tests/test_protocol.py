"""harness/eval/protocol.py: resize to the original size, min-max, threshold, setting names, the chain."""

import numpy as np
import pytest
import torch

from harness.errors import ConfigError
from harness.eval.postprocess import CRFPool, dense_crf
from harness.eval.protocol import (Setting, binarise, minmax, probability_map, protocol_maps,
                              to_original_size)


def test_resize_goes_to_original_size_bilinear_half_pixel():
    score = torch.tensor([[0.0, 1.0]])                     # [1, 2]
    resized = to_original_size(score, (3, 4))
    assert resized.shape == (3, 4)
    # align_corners=False: output x=0.5 maps to input x=0 (edge clamp), x=1.5 to 0.25 of the way
    assert torch.allclose(resized[0], torch.tensor([0.0, 0.25, 0.75, 1.0]))
    assert torch.allclose(resized[0], resized[2])
    same = torch.rand(5, 6)
    assert torch.equal(to_original_size(same, (5, 6)), same)


def test_minmax_range_and_formula():
    score = torch.tensor([[2.0, 3.0], [4.0, 6.0]], dtype=torch.float64)
    normed = minmax(score)
    assert normed.min() == 0.0
    assert normed.max() == pytest.approx(1.0, abs=1e-8) and normed.max() < 1.0
    assert normed[0, 1] == pytest.approx(1 / 4)
    array = np.array([0.2, 0.2])                           # constant: documented to become zeros
    assert np.array_equal(minmax(array), np.zeros(2))


def test_binarise_is_inclusive():
    score = np.array([0.49, 0.5, 0.51])
    assert binarise(score, 0.5).tolist() == [False, True, True]


def test_setting_names_round_trip_and_reject_bad_tau():
    assert Setting(0.5).name == "tau=0.50"                # keys of metrics.json: never change
    assert Setting(0.35, crf=True).name == "tau=0.35+crf"
    assert Setting.parse("tau=0.35+crf") == Setting(0.35, True)
    parsed = Setting.parse("tau=0.70")
    assert (parsed.tau, parsed.crf) == (0.7, False)
    for name in ("tau=0.05", "tau=0.50", "tau=0.95+crf"):
        assert Setting.parse(name).name == name
    assert Setting(0.3) == Setting(0.1 + 0.2) and Setting(0.5) != Setting(0.5, crf=True)  # by name
    assert [s.name for s in Setting.grid([0.3, 0.5], crf=True)] == [
        "tau=0.30", "tau=0.50", "tau=0.30+crf", "tau=0.50+crf"]
    for bad in (0, 1, 1.2, -0.1):
        with pytest.raises(ConfigError, match="τ"):
            Setting(bad)
    with pytest.raises(ConfigError, match="setting"):
        Setting.parse("threshold=0.5")


def test_probability_map_resizes_then_normalises():
    score = torch.tensor([[1.0, 3.0], [3.0, 5.0]])         # a 2×2 map for a 4×6 image
    prob = probability_map(score, (4, 6))
    assert prob.shape == (4, 6) and prob.dtype == np.float64
    assert prob.min() == 0.0 and prob.max() == pytest.approx(1.0, abs=1e-8)
    raw = probability_map(score, (4, 6), use_minmax=False)
    assert raw.min() == pytest.approx(1.0) and raw.max() == pytest.approx(5.0)


def test_protocol_maps_for_a_batch_with_and_without_crf():
    rng = np.random.default_rng(0)
    scores = torch.rand(2, 8, 8)                           # [B, h, w]
    sizes = [(16, 20), (12, 12)]
    raw, crf = protocol_maps(scores, sizes)
    assert crf is None and [m.shape for m in raw] == sizes
    images = [rng.integers(0, 256, (*size, 3), dtype=np.uint8) for size in sizes]
    listed = [torch.rand(5, 5), torch.rand(3, 7)]          # a list of per-sample maps is accepted
    raw, crf = protocol_maps(listed, sizes, images=images, crf_pool=CRFPool(workers=1))
    assert [m.shape for m in crf] == sizes
    for image, raw_map, crf_map in zip(images, raw, crf):
        assert np.allclose(crf_map, dense_crf(image, raw_map))
        assert 0.0 <= crf_map.min() and crf_map.max() <= 1.0
