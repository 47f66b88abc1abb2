"""baselines/tseg.py + tseg_loss.py: the reconstructed MLPA objective on a hand-made case, the
batch's candidate/positive sets, and fit/predict on tiny stand-in backbones without masks."""

import math

import pytest
import torch

from baselines.tseg import TSEG
from baselines.tseg_loss import batch_candidates, mlpa_bce_loss, mlpa_image_scores, patch_text_scores
from harness.data.types import MaskAccessError
from harness.errors import ConfigError
from harness.run.fit_loop import FitContext
from tests.baseline_data import batch_images, small_synthref_root, smoke_run, write_tiny_dataset  # noqa: F401 (fixture synthref_root)


def softmax(values):
    exps = [math.exp(v) for v in values]
    return [e / sum(exps) for e in exps]


def test_batch_candidates_group_images_and_dedupe_texts():
    rows, texts, positives = batch_candidates([5, 5, 8, 8, 5], ["a", "b", "a", "c", "b"])
    assert rows == [0, 2] and texts == ["a", "b", "c"]
    assert positives.tolist() == [[True, True, False], [True, False, True]]


def test_mlpa_loss_equals_hand_computation():
    # 2 images × 2 patches × 3 candidate expressions; image 0 owns texts 0 and 1, image 1 owns text 2.
    scores = torch.tensor([[[2.0, 1.0, 0.0], [0.0, 3.0, 1.0]],
                           [[1.0, 0.0, 2.0], [0.0, 0.0, 0.0]]])  # [U=2, N=2, T=3]
    positives = torch.tensor([[True, True, False], [False, False, True]])
    a00, a01 = softmax([2, 1, 0]), softmax([0, 3, 1])  # image 0, patches 0 and 1
    a10, a11 = softmax([1, 0, 2]), softmax([0, 0, 0])
    # Image 0: patch 0 is won by text 0 (2 > 1), patch 1 by text 1 (3 > 0) — each positive is
    # credited only where it wins; the negative text 2 keeps every patch.
    y = [[a00[0] / 2, a01[1] / 2, (a00[2] + a01[2]) / 2],
         [(a10[0] + a11[0]) / 2, (a10[1] + a11[1]) / 2, (a10[2] + a11[2]) / 2]]
    got_y = mlpa_image_scores(scores, positives)
    assert torch.allclose(got_y, torch.tensor(y), atol=1e-6)
    labels = [[1, 1, 0], [0, 0, 1]]
    bce = -sum(math.log(y[u][t]) if labels[u][t] else math.log(1 - y[u][t])
               for u in range(2) for t in range(3)) / 6
    assert mlpa_bce_loss(scores, positives).item() == pytest.approx(bce, rel=1e-6)


def test_mlpa_scores_follow_the_winning_patches():
    # Text 0 has the higher similarity everywhere: it wins both patches and text 1 gets nothing.
    scores = torch.tensor([[[3.0, 1.0], [2.0, 0.0]]])
    y = mlpa_image_scores(scores, torch.tensor([[True, True]]))
    assert y[0, 1].item() == 0.0 and y[0, 0].item() == pytest.approx((softmax([3, 1])[0] + softmax([2, 0])[0]) / 2)


def test_patch_text_scores_are_cosines_over_temperature():
    patches = torch.tensor([[[3.0, 4.0], [0.0, 2.0]]])  # [1, 2, 2]
    texts = torch.tensor([[1.0, 0.0]])
    assert torch.allclose(patch_text_scores(patches, texts, 0.5)[0, :, 0], torch.tensor([1.2, 0.0]))


# The loop's keys as configs/tseg.py sets them (no clipping, constant lr for a few steps).
TRAIN = dict(batch_size=8, backbone_lr_scale=0.1, weight_decay=0.0, schedule="constant", warmup_steps=0)
TINY_VIT = dict(img_size=32, patch_size=8, embed_dim=32, depth=1, num_heads=2, steps=3, batch_size=4, warmup=1)
TINY_BERT = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                 max_position_embeddings=32, steps=3, batch_size=4, warmup=1)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny_dataset(tmp_path_factory.mktemp("tseg"))


def tiny_cfg(**method):
    base = dict(type="tseg", input_size=32, joint_dim=16, text_pool="mean",
                vit=dict(standin=TINY_VIT, drop_path_rate=0.0), bert=dict(standin=TINY_BERT))
    return dict(base, **method)


def test_fit_without_masks_then_predict_in_unit_range(tiny):
    env, train = tiny
    with pytest.raises(MaskAccessError):
        train.mask(0)
    seg = TSEG(tiny_cfg(), env)
    head_before = seg.heads["patch"].weight.clone()
    log = seg.fit(train, dict(TRAIN, lr=1e-2, epochs=3), seed=0, ctx=FitContext(progress=False))
    assert log["steps"] == 6 and all(math.isfinite(x) for x in log["loss_per_epoch"])
    assert log["loss_per_epoch"][-1] < log["loss_per_epoch"][0]
    assert not torch.equal(head_before, seg.heads["patch"].weight)
    images, texts = batch_images(train, 4), [s.text for s in train.samples[:4]]
    maps = seg.predict(images, texts)
    assert maps.shape == (4, 4, 4) and maps.min() >= 0.0 and maps.max() <= 1.0
    seg.cfg["inference"] = seg.inference = "assignment"
    seg.prepare_eval(train)
    shares = seg.predict(images, texts, train.samples[:4])
    # samples 0 and 1 are the two expressions of image 0: their shares split every patch.
    assert torch.allclose(shares[0] + shares[1], torch.ones(4, 4), atol=1e-5)
    assert set(seg.state_dict()) == {"vit", "bert", "heads"}


def test_fit_is_deterministic_for_a_seed(tiny):
    env, train = tiny
    logs = [TSEG(tiny_cfg(), env).fit(train, dict(TRAIN, lr=1e-2, epochs=1), seed=3,
                                      ctx=FitContext(progress=False)) for _ in range(2)]
    assert logs[0]["loss_per_epoch"] == logs[1]["loss_per_epoch"]


def test_unknown_inference_is_a_config_error(tiny):
    env, _ = tiny
    with pytest.raises(ConfigError, match="method.inference"):
        TSEG(tiny_cfg(inference="argmax"), env)


@pytest.mark.parametrize("spec", ["tseg"])
def test_smoke_run_through_the_runner_writes_metrics(spec, synthref_root, tmp_path):
    metrics = smoke_run(spec, synthref_root, tmp_path / "runs")
    scores = metrics["splits"]["val"]["tau=0.50"]
    assert metrics["method"] == spec and metrics["dataset"] == "synthref"
    assert scores["n"] > 0 and 0.0 <= scores["mIoU"] <= 100.0
