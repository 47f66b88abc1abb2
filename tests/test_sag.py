"""The registered segmenter `sag` (sag_model/model.py) end to end on tiny backbones."""

import numpy as np
import pytest
import torch
from torch import nn
from transformers import BertConfig, BertModel

from harness.backbones.vit import PatchEncoder, standin_vit
from harness.errors import ConfigError
from harness.segmenter import RunEnv
from harness.run.fit_loop import FitContext
from sag_model.model import SaG, combine_attention

TINY = dict(type="sag", input_size=32, dim=32, slots=dict(type="entity", groups=3, samples=2), T=2,
            cross_heads=2, cross_dim_head=16, self_heads=2, self_dim_head=16, fusion_heads=2,
            fusion_dim_head=16, ff_mult=2, dropout=0.0, decoder_hidden=32, recon_weight=1.0)


class WordBert(nn.Module):
    """A 1-layer BertModel with a whitespace tokenizer over a fixed word list (the builder's API)."""

    WORDS = "[PAD] [CLS] [SEP] [UNK] red green blue big small circle square triangle left right the".split()

    def __init__(self):
        super().__init__()
        cfg = BertConfig(vocab_size=len(self.WORDS), hidden_size=24, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=48, max_position_embeddings=16)
        self.bert, self.hidden_size = BertModel(cfg), 24

    def tokenize(self, texts):
        ids = [[1] + [self.WORDS.index(w) if w in self.WORDS else 3 for w in t.lower().split()] + [2]
               for t in texts]
        width = max(map(len, ids))
        ids = torch.tensor([row + [0] * (width - len(row)) for row in ids])
        return dict(input_ids=ids, attention_mask=(ids != 0).long())

    def forward(self, input_ids, attention_mask):
        return self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


# SaG's training keys as configs/sag.py sets them (the lr and the budget vary per test).
TRAIN = dict(batch_size=8, lr=1e-5, vit_lr_scale=0.1, bert_lr_scale=1.0, weight_decay=1e-4, grad_clip=0.1,
             warmup_steps=50, epochs=50)
QUIET = FitContext(progress=False)


def tiny_backbones():
    vit = standin_vit(dict(img_size=32, patch_size=8, embed_dim=24, depth=1, num_heads=2))
    return PatchEncoder(vit, (0.5,) * 3, (0.5,) * 3), WordBert()


def tiny_sag(tmp_path, **overrides):
    torch.manual_seed(0)
    env = RunEnv(dataset="synthref", data_root=tmp_path, cache_dir=tmp_path, progress=False)
    return SaG({**TINY, **overrides}, env, backbones=tiny_backbones())


def test_predict_scores_lie_in_unit_interval_on_the_patch_grid(tmp_path):
    sag = tiny_sag(tmp_path)
    images = torch.rand(3, 3, 32, 32)
    scores = sag.predict(images, ["red circle", "blue square", "the left one"])
    assert scores.shape == (3, 4, 4)
    assert scores.min() >= 0 and scores.max() <= 1
    attn_slot, attn_fuse = sag._attention(images, ["a", "b", "c"])
    # both factors are distributions over slots, so the patch scores are convex combinations
    torch.testing.assert_close(attn_fuse.sum(1), torch.ones(3))
    torch.testing.assert_close(attn_slot.sum(1), torch.ones(3, 16))


def test_inference_schemes_pick_the_documented_slots():
    attn_slot = torch.softmax(torch.randn(2, 4, 6), dim=1)
    attn_fuse = torch.tensor([[0.1, 0.6, 0.2, 0.1], [0.5, 0.1, 0.05, 0.35]])
    ours = combine_attention(attn_slot, attn_fuse, "ours")
    torch.testing.assert_close(ours[0], (attn_fuse[0, :, None] * attn_slot[0]).sum(0))
    torch.testing.assert_close(combine_attention(attn_slot, attn_fuse, "max")[1], attn_slot[1, 0])
    torch.testing.assert_close(combine_attention(attn_slot, attn_fuse, "min")[1], attn_slot[1, 2])
    torch.testing.assert_close(combine_attention(attn_slot, attn_fuse, "avg"), attn_slot.mean(1))


def test_eval_slots_mean_is_deterministic_and_sample_follows_the_seed(tmp_path):
    images, texts = torch.rand(2, 3, 32, 32), ["red circle", "blue square"]
    mean = tiny_sag(tmp_path, eval_slots="mean")
    torch.testing.assert_close(mean.predict(images, texts), mean.predict(images, texts))
    sample = tiny_sag(tmp_path)
    first, second = sample.predict(images, texts), sample.predict(images, texts)
    assert not torch.allclose(first, second)                 # slots are resampled at test time
    sample.reseed_eval(0)
    torch.testing.assert_close(sample.predict(images, texts), first)


def test_explain_lists_every_slot_sorted_by_relevance(tmp_path):
    sag = tiny_sag(tmp_path)
    out = sag.explain(torch.rand(3, 32, 32), "big red circle")
    assert out["score"].shape == (4, 4)
    ents = out["entities"]
    assert len(ents) == 6 and sorted(e["slot"] for e in ents) == list(range(6))
    rel = [e["relevance"] for e in ents]
    assert rel == sorted(rel, reverse=True) and abs(sum(rel) - 1) < 1e-5
    assert all(e["gaussian"] == e["slot"] // 2 for e in ents)
    # the score is the relevance-weighted sum of the maps (the explanation is the prediction)
    np.testing.assert_allclose(sum(e["relevance"] * e["map"] for e in ents), out["score"], atol=1e-5)


def test_losses_send_no_gradient_to_the_targets(tmp_path):
    """C3's text target and the reconstruction target are stop-gradients: BERT learns only
    through the fusion query, and the ViT only through the slot path."""
    sag = tiny_sag(tmp_path)
    net = sag.net.train()
    images, texts = torch.rand(4, 3, 32, 32), ["red circle", "blue square", "green triangle", "big one"]
    features, found = net.discover(images)
    features.retain_grad()
    text = net.encode_text(texts)
    text.retain_grad()
    from sag_model.losses import c3_loss, reconstruction_loss
    fused, _ = net.fusion(text, found.slots)
    c3_loss(text, fused).backward(retain_graph=True)
    grad_via_query = text.grad.clone()
    text.grad = None
    # the same loss with the query detached gives the text no gradient at all: only the query path
    fused_nq, _ = net.fusion(text.detach(), found.slots)
    c3_loss(text, fused_nq).backward()
    assert text.grad is None and grad_via_query.abs().sum() > 0
    features.grad = None
    recon, _ = net.decoder(found.slots.detach(), net.grid)
    reconstruction_loss(recon, features).backward()
    assert features.grad is None                              # the target is detached


def test_state_dict_round_trip_gives_the_same_predictions(tmp_path):
    a, b = tiny_sag(tmp_path, eval_slots="mean"), tiny_sag(tmp_path, eval_slots="mean")
    with torch.no_grad():
        for p in b.net.parameters():
            p.add_(0.1)
    images, texts = torch.rand(2, 3, 32, 32), ["red", "blue"]
    assert not torch.allclose(a.predict(images, texts), b.predict(images, texts))
    b.load_state_dict(a.state_dict())
    torch.testing.assert_close(a.predict(images, texts), b.predict(images, texts))


@pytest.mark.parametrize("key,value", [("inference", "median"), ("eval_slots", "mode")])
def test_bad_choices_raise_config_errors_naming_the_key(tmp_path, key, value):
    with pytest.raises(ConfigError, match=f"method.{key}"):
        tiny_sag(tmp_path, **{key: value})


def test_bad_slot_type_raises_config_error(tmp_path):
    with pytest.raises(ConfigError, match="method.slots.type"):
        tiny_sag(tmp_path, slots=dict(type="gaussian", groups=3, samples=2))


def test_fit_sees_no_masks_and_a_few_steps_reduce_the_loss(tmp_path, synthref_root):
    from harness.data.refer import load_refer

    train = load_refer(synthref_root, "synthref", "train")
    assert not train.has_masks                                   # the reader exposes none to fit
    sag = tiny_sag(tmp_path, eval_slots="mean")
    train_cfg = dict(TRAIN, lr=5e-3, warmup_steps=1, max_steps=24, epochs=99, grad_clip=1.0)
    log = sag.fit(train, train_cfg, seed=0, ctx=QUIET)
    assert log["steps"] == 24 and len(log["loss"]) == 24
    first, last = np.mean(log["loss"][:4]), np.mean(log["loss"][-4:])
    assert last < first - 0.15, (first, last)            # measured: 3.05 -> 2.76
    assert np.mean(log["rec"][-4:]) < 0.9 * np.mean(log["rec"][:4])
    # same seed, same data: the same training curve (deterministic on CPU)
    again = tiny_sag(tmp_path, eval_slots="mean").fit(train, train_cfg, seed=0, ctx=QUIET)
    assert again["loss"] == log["loss"]


def test_divergence_names_method_seed_and_step(tmp_path, synthref_root):
    from harness.data.refer import load_refer
    from harness.errors import TrainingDivergedError

    sag = tiny_sag(tmp_path)
    with torch.no_grad():
        sag.net.text_proj.weight.fill_(float("nan"))
    train = load_refer(synthref_root, "synthref", "train")
    with pytest.raises(TrainingDivergedError, match=r"sag seed 3: loss became nan at step 0"):
        sag.fit(train, dict(TRAIN, max_steps=2, warmup_steps=1), seed=3, ctx=QUIET)


def test_optimizer_groups_scale_the_backbones_and_the_slot_gaussians(tmp_path):
    from sag_model.training import param_groups

    net = tiny_sag(tmp_path).net
    groups = param_groups(net, dict(lr=1e-3, vit_lr_scale=0.1, bert_lr_scale=0.5, slot_lr_scale=10.0))
    lr_of = {id(p): g["lr"] for g in groups for p in g["params"]}
    assert lr_of[id(net.vit.vit.patch_embed.proj.weight)] == pytest.approx(1e-4)
    assert lr_of[id(net.text_proj.weight)] == pytest.approx(1e-3)
    assert lr_of[id(net.discovery.slots.mu)] == pytest.approx(1e-2)
    assert lr_of[id(net.discovery.slots.logvar)] == pytest.approx(1e-2)
    assert lr_of[id(next(net.bert.parameters()))] == pytest.approx(5e-4)
    assert len(lr_of) == sum(1 for p in net.parameters() if p.requires_grad)


def test_slot_gaussians_share_the_base_lr_without_a_scale_and_missing_keys_are_named(tmp_path):
    from sag_model.training import param_groups

    net = tiny_sag(tmp_path).net
    groups = param_groups(net, dict(lr=1e-3, vit_lr_scale=0.1, bert_lr_scale=0.5))
    assert len(groups) == 3
    last = {id(p) for p in groups[-1]["params"]}
    assert id(net.discovery.slots.mu) in last and groups[-1]["lr"] == 1e-3
    with pytest.raises(ConfigError, match="train.bert_lr_scale"):
        param_groups(net, dict(lr=1e-3, vit_lr_scale=0.1))


def test_fusion_text_residual_one_is_the_release_and_zero_leaves_only_the_slots(tmp_path):
    """issue 24's lever: h = a·e_t + CrossAttn(LN e_t, LN Z). a = 1 gives the release's floats
    bit for bit; a = 0 makes c_{i,t} a function of image i's slots chosen by the text."""
    images, texts = torch.rand(2, 3, 32, 32), ["red circle", "blue square"]
    release, scaled = tiny_sag(tmp_path), tiny_sag(tmp_path, fusion_text_residual=1.0)
    torch.testing.assert_close(release.predict(images, texts), scaled.predict(images, texts), rtol=0, atol=0)
    fusion = tiny_sag(tmp_path, fusion_text_residual=0.0).net.fusion.eval()
    text, slots = torch.randn(2, 32), torch.randn(3, 6, 32)
    c, _ = fusion(text, slots, all_pairs=True)                              # [B_i, B_t, D]
    reference = release.net.fusion.eval()
    reference.load_state_dict(fusion.state_dict())
    c_release, _ = reference(text, slots, all_pairs=True)
    assert not torch.allclose(c, c_release)
    # Without the residual, a text's c for image i is the normalised attention update (+ FF) alone.
    queries = text[None].expand(3, 2, 32)
    update, _ = fusion.attn(fusion.norm_query(queries), fusion.norm_slots(slots))
    expected = torch.nn.functional.normalize(update + fusion.ff(fusion.norm_ff(update)), dim=-1)
    torch.testing.assert_close(c, expected)


@pytest.mark.parametrize("value", [-0.5, "none", True])
def test_bad_fusion_text_residual_names_the_key(tmp_path, value):
    with pytest.raises(ConfigError, match="method.fusion_text_residual"):
        tiny_sag(tmp_path, fusion_text_residual=value)


@pytest.mark.parametrize("dataset", ["synthref", "refcoco"])
def test_sag_at_release_pins_the_release_recipe(dataset):
    """`sag@release` is the release's settings (shared/specs/sag.md), whatever the default becomes;
    while the default is the release it shares the default's fit (no second training)."""
    from harness.config import load_run_config
    from harness.run.runner import fit_hash

    release = load_run_config("sag@release", dataset, "full")
    method, train = release.cfg["method"], release.cfg["train"]
    assert (method["slot_grad"], method["eval_slots"], method["inference"], method["T"]) == ("all", "sample", "ours", 6)
    assert method.get("fusion_text_residual", 1.0) == 1.0 and "slot_lr_scale" not in train
    assert train["grad_clip"] == 0.1 and train["warmup_steps"] == (50 if dataset == "synthref" else 5000)
    default = load_run_config("sag", dataset, "full")
    same_recipe = default.cfg["method"] == method and default.cfg["train"] == train
    same_fit = fit_hash(release.cfg, "sag", dataset, "full") == fit_hash(default.cfg, "sag", dataset, "full")
    assert same_fit == same_recipe
