"""harness/eval/postprocess.py: DenseCRF sharpens a blurred score map onto a coloured object; the pool."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from harness.errors import ConfigError
from harness.eval.metrics import iou_counts
from harness.eval.postprocess import CRFConfig, CRFPool, dense_crf


def blur(array: np.ndarray, radius: int) -> np.ndarray:
    """Box blur (twice, ~Gaussian) with a (2·radius+1)² window, same size."""
    x = torch.from_numpy(array.astype(np.float64))[None, None]  # [1, 1, H, W]
    for _ in range(2):
        x = F.avg_pool2d(F.pad(x, [radius] * 4, mode="replicate"), 2 * radius + 1, stride=1)
    return x[0, 0].numpy()


def scene(seed: int, size=(48, 56)):
    """A red disc on a noisy green background, and a blurred, shifted, noisy score map of it."""
    rng = np.random.default_rng(seed)
    height, width = size
    yy, xx = np.mgrid[:height, :width]
    cy, cx, r = height // 2 + rng.integers(-4, 5), width // 2 + rng.integers(-4, 5), 11
    gt = (yy - cy) ** 2 + (xx - cx) ** 2 < r ** 2
    image = np.where(gt[..., None], [210, 40, 40], [50, 110, 60]).astype(np.int64)
    image = np.clip(image + rng.integers(-12, 13, image.shape), 0, 255).astype(np.uint8)
    score = np.roll(blur(gt.astype(np.float64), 5), 3, axis=1)   # blurred and off by 3 px
    score = np.clip(score + rng.normal(0, 0.15, score.shape), 0, 1)
    return image, score, gt


def iou(pred, gt) -> float:
    i, u = iou_counts(pred, gt)
    return i / u


def test_crf_snaps_a_blurred_map_to_the_object():
    for seed in range(3):
        image, score, gt = scene(seed)
        refined = dense_crf(image, score)
        assert refined.shape == gt.shape and refined.dtype == np.float32
        assert 0.0 <= refined.min() and refined.max() <= 1.0
        raw_iou, crf_iou = iou(score >= 0.5, gt), iou(refined >= 0.5, gt)
        assert raw_iou < 0.8, raw_iou                     # the raw map really is poor
        assert crf_iou > 0.95 and crf_iou > raw_iou + 0.15, (raw_iou, crf_iou)


def test_without_the_image_term_the_crf_cannot_find_the_edges():
    # The gain comes from the bilateral (colour) term: switch it off and the shift stays.
    image, score, gt = scene(0)
    smoothed = dense_crf(image, score, bilateral_compat=0.0)
    assert iou(smoothed >= 0.5, gt) < iou(dense_crf(image, score) >= 0.5, gt) - 0.1


def test_parameters_are_config_keys_and_validated():
    assert CRFConfig() == CRFConfig.from_dict({})
    assert CRFConfig.from_dict({"iterations": 3}).iterations == 3
    with pytest.raises(ConfigError, match="bilateral_sigma"):
        CRFConfig.from_dict({"bilateral_sigma": 3})
    with pytest.raises(ConfigError, match="iterations"):
        CRFConfig.from_dict({"iterations": 0})
    image, score, _ = scene(0)
    assert not np.allclose(dense_crf(image, score, iterations=1), dense_crf(image, score))


def test_bad_inputs_are_refused():
    image, score, _ = scene(0)
    with pytest.raises(ValueError, match="uint8"):
        dense_crf(image.astype(np.float32), score)
    with pytest.raises(ValueError, match="does not match"):
        dense_crf(image, score[:-1])
    # a non-contiguous view (e.g. BGR→RGB flip) is handled, not read as garbage
    flipped = image[..., ::-1]
    assert np.allclose(dense_crf(flipped, score), dense_crf(np.ascontiguousarray(flipped), score))
    read_only = image.copy()
    read_only.flags.writeable = False                      # as np.asarray(PIL image) gives
    assert np.array_equal(dense_crf(read_only, score), dense_crf(image, score))
    with pytest.raises(ConfigError, match="workers"):
        CRFPool(workers=0)


def test_pool_with_two_workers_equals_inline():
    scenes = [scene(seed, size=(32 + 4 * seed, 40)) for seed in range(5)]
    images, probs = [s[0] for s in scenes], [s[1] for s in scenes]
    inline = CRFPool(workers=1).map(images, probs)
    with CRFPool(workers=2, config={"iterations": 10}) as pool:
        parallel = pool.map(images, probs)
        again = pool.map(images[:2], probs[:2])           # the pool is reused across batches
    assert len(parallel) == 5
    for a, b in zip(inline, parallel):
        assert a.shape == b.shape and np.array_equal(a, b)
    assert np.array_equal(again[1], inline[1])
