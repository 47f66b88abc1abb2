"""baselines/maskclip.py (+ clip_tower.py, contrastive.py): the dense value path, text ensembling,
the masked contrastive loss, and fit/predict on a tiny stand-in CLIP without masks."""

import math

import pytest
import torch
import torch.nn.functional as F

from baselines.clip_tower import global_image_embedding, tokens_before_last_block
from baselines.contrastive import clip_contrastive_loss, false_negative_mask
from baselines.maskclip import MaskCLIP, dense_patch_embeddings
from harness.backbones.clip import CLIP_STANDIN, standin_clip_model
from harness.backbones.standin_training import merged
from harness.data.types import MaskAccessError
from harness.errors import ConfigError
from harness.run.fit_loop import FitContext
from tests.baseline_data import batch_images, small_synthref_root, smoke_run, write_tiny_dataset  # noqa: F401 (fixture synthref_root)

TINY_CLIP = dict(embed_dim=16, vision_cfg=dict(image_size=32, patch_size=8, width=32, layers=2, head_width=16),
                 text_cfg=dict(context_length=16, width=32, heads=2, layers=1),
                 steps=3, batch_size=4, lr=1e-3, warmup=1)


def tiny_visual(layers: int, seed: int = 0):
    torch.manual_seed(seed)
    cfg = merged(CLIP_STANDIN, merged(TINY_CLIP, {"vision_cfg": {"layers": layers}}))
    return standin_clip_model(cfg).eval().visual


def test_dense_feature_equals_hand_computed_official_and_value_only_paths():
    visual = tiny_visual(layers=2)
    pixels = torch.randn(2, 3, 32, 32)
    entering = {}
    last = visual.transformer.resblocks[-1]
    hook = last.register_forward_pre_hook(lambda mod, args: entering.setdefault("x", args[0]))
    visual(pixels)  # open_clip's own forward, to capture what enters the last block
    hook.remove()
    x = entering["x"][:, 1:]  # [B, N, W] patch tokens, class token dropped
    width = last.attn.embed_dim
    normed = F.layer_norm(x, (width,), last.ln_1.weight, last.ln_1.bias, last.ln_1.eps)
    v = normed @ last.attn.in_proj_weight[2 * width:].t() + last.attn.in_proj_bias[2 * width:]
    out = v @ last.attn.out_proj.weight.t() + last.attn.out_proj.bias
    value_only = visual.ln_post(out) @ visual.proj  # [B, N, D]
    # The official MaskCLIP block keeps the residual and the MLP around the value path.
    res = x + out
    normed2 = F.layer_norm(res, (width,), last.ln_2.weight, last.ln_2.bias, last.ln_2.eps)
    hidden = F.gelu(normed2 @ last.mlp.c_fc.weight.t() + last.mlp.c_fc.bias)
    official = visual.ln_post(res + hidden @ last.mlp.c_proj.weight.t() + last.mlp.c_proj.bias) @ visual.proj
    got = dense_patch_embeddings(visual, pixels)
    assert got.shape == (2, 16, 16)
    assert torch.allclose(got, official, atol=1e-5)
    assert torch.allclose(dense_patch_embeddings(visual, pixels, "value_only"), value_only, atol=1e-5)
    assert not torch.allclose(official, value_only, atol=1e-2)
    assert torch.allclose(tokens_before_last_block(visual, pixels), entering["x"], atol=1e-6)
    assert torch.allclose(global_image_embedding(visual, pixels), visual(pixels), atol=1e-5)


def test_last_block_has_no_query_key_attention():
    # One block only: the tokens entering it depend on their own patch alone, so a patch's
    # dense feature must not move when another patch changes — as it would through attention.
    visual = tiny_visual(layers=1)
    pixels = torch.randn(1, 3, 32, 32)
    changed = pixels.clone()
    changed[:, :, 24:, 24:] += 3.0  # the last patch (row 3, column 3 of the 4×4 grid)
    dense, dense_changed = dense_patch_embeddings(visual, pixels), dense_patch_embeddings(visual, changed)
    assert torch.allclose(dense[:, :15], dense_changed[:, :15], atol=1e-6)
    assert not torch.allclose(dense[:, 15], dense_changed[:, 15], atol=1e-3)
    block = visual.transformer.resblocks[-1]
    full = block(tokens_before_last_block(visual, pixels))[:, 1:16]
    full_changed = block(tokens_before_last_block(visual, changed))[:, 1:16]
    assert not torch.allclose(full, full_changed, atol=1e-4)  # ordinary attention would mix them


def test_contrastive_loss_masks_same_image_and_same_text():
    mask = false_negative_mask([7, 7, 9], ["a", "b", "b"])
    assert mask.tolist() == [[False, True, False], [True, False, True], [False, True, False]]
    img = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    txt = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    scale = torch.tensor(math.log(2.0))
    loss = clip_contrastive_loss(img, txt, scale, image_ids=[1, 1, 2])
    sim = 2.0 * img @ txt.t()  # rows: images, columns: texts (already unit norm)
    # pairs (0,1) and (1,0) are masked: each CE keeps only the other image's pair.
    rows = [-sim[0, 0] + torch.log(sim[0, 0].exp() + sim[0, 2].exp()),
            -sim[1, 1] + torch.log(sim[1, 1].exp() + sim[1, 2].exp()),
            -sim[2, 2] + torch.logsumexp(sim[2], 0)]
    cols = [-sim[0, 0] + torch.log(sim[0, 0].exp() + sim[2, 0].exp()),
            -sim[1, 1] + torch.log(sim[1, 1].exp() + sim[2, 1].exp()),
            -sim[2, 2] + torch.logsumexp(sim[:, 2], 0)]
    expected = 0.5 * (torch.stack(rows).mean() + torch.stack(cols).mean())
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    unmasked = clip_contrastive_loss(img, txt, scale)
    assert unmasked.item() > loss.item()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny_dataset(tmp_path_factory.mktemp("maskclip"))


def tiny_cfg(**method):
    return dict(dict(type="maskclip", input_size=32, finetune=True, clip=dict(standin=TINY_CLIP)), **method)


def test_templates_are_averaged_after_normalising(tiny):
    env, _ = tiny
    seg = MaskCLIP(tiny_cfg(templates=["a photo of {}.", "{}"]), env)
    with torch.no_grad():
        both = seg.encode_expressions(["the red square"])
        one = [F.normalize(seg.clip.encode_text(seg.tokenizer([p])), dim=-1)
               for p in ("a photo of the red square.", "the red square")]
    assert torch.allclose(both, F.normalize(one[0] + one[1], dim=-1), atol=1e-6)
    with pytest.raises(ConfigError, match="templates"):
        MaskCLIP(tiny_cfg(templates=["no slot"]), env)


def test_fit_without_masks_then_predict_in_unit_range(tiny):
    env, train = tiny
    with pytest.raises(MaskAccessError):
        train.mask(0)
    torch.manual_seed(0)
    seg = MaskCLIP(tiny_cfg(), env)
    before = {k: v.clone() for k, v in seg.clip.state_dict().items()}
    train_cfg = dict(batch_size=8, lr=1e-3, epochs=2, weight_decay=0.0, schedule="constant", warmup_steps=0)
    log = seg.fit(train, train_cfg, seed=0, ctx=FitContext(progress=False))
    assert log["steps"] == 4 and len(log["loss_per_epoch"]) == 2
    assert all(math.isfinite(x) for x in log["loss_per_epoch"]) and log["seconds"] > 0
    assert any(not torch.equal(before[k], v) for k, v in seg.clip.state_dict().items())
    maps = seg.predict(batch_images(train, 3), [s.text for s in train.samples[:3]])
    assert maps.shape == (3, 4, 4)
    assert maps.min() >= 0.0 and maps.max() <= 1.0 and maps.std() > 0
    assert set(seg.state_dict()) == {"clip"}


def test_zero_shot_fit_trains_nothing(tiny):
    env, train = tiny
    seg = MaskCLIP(tiny_cfg(finetune=False), env)
    before = {k: v.clone() for k, v in seg.clip.state_dict().items()}
    assert seg.fit(train, dict(batch_size=8), seed=0, ctx=FitContext(progress=False)) == {"finetune": False}
    assert all(torch.equal(before[k], v) for k, v in seg.clip.state_dict().items())


@pytest.mark.parametrize("spec", ["maskclip", "maskclip@zeroshot"])
def test_smoke_run_through_the_runner_writes_metrics(spec, synthref_root, tmp_path):
    metrics = smoke_run(spec, synthref_root, tmp_path / "runs")
    scores = metrics["splits"]["val"]["tau=0.50"]
    assert metrics["method"] == spec and metrics["dataset"] == "synthref"
    assert scores["n"] > 0 and 0.0 <= scores["mIoU"] <= 100.0
