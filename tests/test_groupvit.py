"""harness/backbones/groupvit.py (+ groupvit_loss.py, groupvit_pretrain.py) and baselines/groupvit.py: checkpoint
loading both ways, the dummy-query decision, fit without masks, and a smoke run through the runner."""

import copy
import dataclasses
import json
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from baselines.groupvit import GroupViTSegmenter, referring_scores
from harness.backbones.groupvit import (build_groupvit, groupvit_config, hf_to_original,
                                        load_groupvit_checkpoint, original_to_hf,
                                        special_token_ids, vocab_tokenizer)
from harness.backbones.groupvit_loss import encode_images, multi_label_prompts, normalise_pixels
from harness.backbones.phrases import phrases_of
from harness.errors import CheckpointError, ConfigError
from harness.eval.protocol import to_original_size
from harness.segmenter import RunEnv
from harness.run.fit_loop import FitContext

TINY_ARCH = dict(image_size=32, patch_size=8, hidden_size=32, intermediate_size=64, num_attention_heads=2,
                 depths=[1, 1, 1], num_group_tokens=[8, 4, 0], num_output_groups=[8, 4, 4],
                 text_hidden_size=32, text_intermediate_size=64, text_layers=1, text_heads=2, context_length=48,
                 projection_dim=16, projection_intermediate_dim=32)
TINY_BACKBONE = dict(checkpoint=None, arch=TINY_ARCH,
                     standin=dict(steps=3, batch_size=8, lr=1e-3, weight_decay=0.05, warmup=1, phrases=2, seed=0))


def random_model(arch=TINY_ARCH, seed=0):
    from transformers import GroupViTModel

    torch.manual_seed(seed)
    return GroupViTModel(groupvit_config(arch)).eval()


@pytest.fixture(scope="module")
def env(synthref_root, tmp_path_factory):
    return RunEnv(dataset="synthref", data_root=Path(synthref_root) / "synthref",
                  cache_dir=tmp_path_factory.mktemp("gv-cache"), progress=False)


@pytest.fixture(scope="module")
def segmenter(env):
    cfg = dict(type="groupvit", input_size=32, finetune=True, backbone=copy.deepcopy(TINY_BACKBONE))
    return GroupViTSegmenter(cfg, env)


def test_original_naming_round_trip_is_exact_and_uses_nvlabs_layout():
    hf = random_model().state_dict()
    original = hf_to_original(hf)
    c = TINY_ARCH["hidden_size"]
    assert original["img_encoder.layers.0.blocks.0.attn.qkv.weight"].shape == (3 * c, c)
    assert original["text_encoder.transformer.resblocks.0.attn.in_proj_weight"].shape == (3 * 32, 32)
    assert original["img_projector.linear_out.weight"].dim() == 3          # Conv1d [O, I, 1]
    assert "img_encoder.layers.0.downsample.pre_assign_attn.attn.proj.weight" in original
    back, unused = original_to_hf({**original, "multi_label_logit_scale": torch.tensor(1.0)})
    assert unused == ["multi_label_logit_scale"]
    assert set(back) == set(hf)
    assert all(torch.equal(back[k], hf[k]) for k in hf)


def test_nvlabs_pth_loads_to_the_same_model_and_wrong_arch_names_missing_keys(tmp_path):
    source = random_model(seed=1)
    path = tmp_path / "group_vit_tiny.pth"
    torch.save({"model": {"module." + k: v for k, v in hf_to_original(source.state_dict()).items()}}, path)
    model, tokenizer = load_groupvit_checkpoint(path, TINY_ARCH)
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(encode_images(model, pixels), encode_images(source, pixels), atol=1e-6)
    assert tokenizer(["a photo of a nothing"])["input_ids"][0, 0].item() == 49406   # CLIP BPE <sot>
    deeper = dict(TINY_ARCH, depths=[2, 1, 1])
    with pytest.raises(CheckpointError, match=r"missing.*stages\.0\.layers\.1"):
        load_groupvit_checkpoint(path, deeper)
    with pytest.raises(CheckpointError, match="not found"):
        load_groupvit_checkpoint(tmp_path / "absent.pth", TINY_ARCH)


def test_transformers_folder_round_trip(tmp_path, synthref_root):
    from transformers import GroupViTModel

    tokenizer = vocab_tokenizer(Path(synthref_root) / "synthref" / "vocab.txt", 48)
    torch.manual_seed(2)
    source = GroupViTModel(groupvit_config(TINY_ARCH, special_token_ids(tokenizer))).eval()
    source.save_pretrained(str(tmp_path / "gv"))
    tokenizer.save(tmp_path / "gv")
    model, loaded_tok = build_groupvit(dict(checkpoint=str(tmp_path / "gv")), env=None)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in source.state_dict().items())
    texts = ["the big red circle", "a photo of a nothing"]
    assert torch.equal(loaded_tok(texts)["input_ids"], tokenizer(texts)["input_ids"])


def test_no_checkpoint_and_no_captions_is_a_checkpoint_error(tmp_path):
    empty = RunEnv(dataset="refcoco", data_root=tmp_path, cache_dir=tmp_path / "cache")
    with pytest.raises(CheckpointError, match="captions.json"):
        build_groupvit(copy.deepcopy(TINY_BACKBONE), empty)
    with pytest.raises(CheckpointError, match="checkpoint"):
        build_groupvit(dict(checkpoint=None), empty)


def test_phrases_and_prompts_come_from_content_words():
    assert phrases_of("the big red circle on the left, next to a small blue square") == \
        ["big red circle", "small blue square"]
    assert phrases_of("a picture with three shapes, two red circles and one blue star") == \
        ["red circles", "blue star"]
    import random
    prompts = multi_label_prompts("the leftmost green star", 3, random.Random(0))
    assert prompts == ["a photo of a green star."] * 3


def test_phrase_group_loss_pools_over_groups_and_rewards_the_image_that_holds_the_phrase():
    from harness.backbones.groupvit_pretrain import PhraseGroupLoss

    loss = PhraseGroupLoss([{"red circle", "blue star"}, {"green square"}], weight=2.0, pool_temperature=0.1)
    assert loss.phrases == ["blue star", "green square", "red circle"]
    assert loss.positive.tolist() == [[True, False, True], [False, True, False]]
    phrase_x = torch.eye(4)[:3]                                   # blue star, green square, red circle
    # Image 0's groups hold its two phrases in different groups, image 1's group its one phrase;
    # the other groups are background. Pooling over groups finds each phrase in its group.
    right = torch.stack([torch.stack([torch.eye(4)[0], torch.eye(4)[2], torch.eye(4)[3]]),
                         torch.stack([torch.eye(4)[1], torch.eye(4)[3], torch.eye(4)[3]])])   # [B=2, G=3, D]
    swapped = right.flip(0)                                       # each image shows the other's objects
    scale = torch.tensor(10.0).log()
    good, bad = loss(right, phrase_x, scale), loss(swapped, phrase_x, scale)
    assert good < 0.1 < bad
    # Mean pooling over the groups (what the image embedding does) would dilute the phrase;
    # the log-sum-exp at T = 0.1 is near the best group's cosine.
    from harness.backbones.standin_clip import pooled_phrase_logits
    logits = pooled_phrase_logits(right, phrase_x, 0.1, torch.tensor(1.0))
    assert logits[0, 0] == pytest.approx(1.0, abs=0.15) and logits[0, 2] == pytest.approx(1.0, abs=0.15)
    # The weight scales the loss.
    assert PhraseGroupLoss([{"red circle", "blue star"}, {"green square"}], 1.0, 0.1)(right, phrase_x, scale) \
        == pytest.approx(float(good) / 2)


def test_standin_pretraining_with_the_group_loss_trains_and_needs_its_temperature(tmp_path, synthref_root):
    from harness.backbones.groupvit_pretrain import pretrain_standin

    backbone = copy.deepcopy(TINY_BACKBONE)
    tokenizer = vocab_tokenizer(Path(synthref_root) / "synthref" / "vocab.txt", 48)
    from transformers import GroupViTModel

    torch.manual_seed(0)
    model = GroupViTModel(groupvit_config(TINY_ARCH, special_token_ids(tokenizer))).train()
    standin = {**backbone["standin"], "dense_weight": 1.0}
    with pytest.raises(ConfigError, match="pool_temperature"):
        pretrain_standin(model, tokenizer, standin, Path(synthref_root) / "synthref", tmp_path, progress=False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    curve = pretrain_standin(model, tokenizer, {**standin, "pool_temperature": 0.1},
                             Path(synthref_root) / "synthref", tmp_path, progress=False)
    assert len(curve["losses"]) == 3 and all(torch.isfinite(torch.tensor(curve["losses"])))
    group_token = "vision_model.encoder.stages.0.group_token"
    assert not torch.equal(model.state_dict()[group_token], before[group_token])
    assert (tmp_path / "config.json").is_file()


def test_group_nearer_the_dummy_is_background():
    query, dummy = torch.tensor([[1.0, 0, 0, 0]]), torch.tensor([[0, 1.0, 0, 0]])
    groups = torch.tensor([[[0.2, 1.0, 0, 0], [1.0, 0.3, 0, 0]]])          # [1, G=2, D]: dummy-ish, query-ish
    assignment = torch.tensor([[[0.9, 0.1], [0.8, 0.2], [0.1, 0.9], [0.0, 1.0]]])  # [1, N=4, G]
    soft = referring_scores(groups, query, dummy, assignment, torch.tensor(10.0))
    assert (soft[0, :2] < 0.5).all() and (soft[0, 2:] > 0.5).all()
    hard = referring_scores(groups, query, dummy, assignment, torch.tensor(10.0), hard=True)
    assert hard.tolist() == [[0.0, 0.0, 1.0, 1.0]]
    # The dummy decides: a dummy equal to the query leaves every pixel undecided (0.5), and a
    # dummy aligned with the query-ish group flips that group to background.
    same = referring_scores(groups, query, query, assignment, torch.tensor(10.0))
    assert torch.allclose(same, torch.full_like(same, 0.5))
    flipped = referring_scores(groups, query, torch.tensor([[1.0, 0.3, 0, 0]]), assignment, torch.tensor(10.0))
    assert (flipped[0, 2:] < 0.5).all()


@contextmanager
def rule(segmenter, mask_rule: str, dummy_query: str = None):
    saved = segmenter.mask_rule, segmenter.dummy_query
    segmenter.mask_rule, segmenter.dummy_query = mask_rule, dummy_query or segmenter.dummy_query
    try:
        yield segmenter
    finally:
        segmenter.mask_rule, segmenter.dummy_query = saved


def val_batch(synthref_root, n=6):
    from harness.data.datasets import open_split
    from harness.data.loader import eval_batches

    return next(eval_batches(open_split("synthref", "val", data_root=synthref_root), 32, n))


def official_by_transformers(segmenter, images, texts, size):
    """NVlabs' encode_decode recomputed from transformers' own segmentation pieces: its
    `get_grouping_from_attentions` (chained soft maps, bilinear to `size`), per-pixel argmax group,
    then per group argmax over classes of softmax(scaled similarity)² with [query, dummy] as classes."""
    from transformers.models.groupvit.modeling_groupvit import get_grouping_from_attentions

    model = segmenter.model
    tokens = segmenter.tokenizer(list(texts) + [segmenter.dummy_query])
    out = model(pixel_values=normalise_pixels(images, segmenter.backbone_cfg), output_segmentation=True,
                return_dict=True, **tokens)
    grouping = get_grouping_from_attentions(out.vision_model_output.attentions, size)      # [B, G, H, W]
    groups = model.visual_projection(out.vision_model_output.last_hidden_state.flatten(0, 1))
    groups = torch.nn.functional.normalize(groups, dim=-1).view(len(texts), grouping.shape[1], -1)
    scale = model.logit_scale.exp().clamp(max=100)
    maps = []
    for b in range(len(texts)):
        classes = out.text_embeds[[b, len(texts)]]                                          # [query, dummy]
        affinity = (groups[b] @ classes.t() * scale).softmax(dim=-1) ** 2                   # [G, 2]
        to_query = affinity.argmax(dim=-1) == 0                                             # [G]
        maps.append(to_query[grouping[b].argmax(dim=0)].float())                            # [H, W]
    return maps


def test_official_rule_equals_nvlabs_encode_decode_recomputed_with_transformers(segmenter, synthref_root):
    batch = val_batch(synthref_root)
    assert segmenter.mask_rule == "official"                    # the default
    with torch.no_grad():
        for side in (32, 48, 71):                               # input size, then larger originals
            samples = [dataclasses.replace(s, height=side, width=side) for s in batch["samples"]]
            ours = segmenter.predict(batch["images"], batch["texts"], samples)
            expected = official_by_transformers(segmenter, batch["images"], batch["texts"], (side, side))
            assert [tuple(m.shape) for m in ours] == [(side, side)] * 6
            assert all(torch.equal(a, b) for a, b in zip(ours, expected))
    assert sum(float(m.mean()) for m in ours) not in (0.0, 6.0)  # neither all background nor all query


def test_official_rule_upsamples_the_square_grid_to_each_original_size_before_the_argmax(segmenter, synthref_root):
    batch = val_batch(synthref_root, n=2)
    sizes = [(40, 90), (75, 33)]
    samples = [dataclasses.replace(s, height=h, width=w) for s, (h, w) in zip(batch["samples"], sizes)]
    ours = segmenter.predict(batch["images"], batch["texts"], samples)
    parts = segmenter.group_similarities(batch["images"], batch["texts"])
    stages = segmenter.model.vision_model(pixel_values=normalise_pixels(batch["images"], segmenter.backbone_cfg),
                                          output_attentions=True).attentions          # each [B, G_i, N_i]
    chained = stages[0]
    for later in stages[1:]:
        chained = torch.einsum("bkn,bgk->bgn", chained, later)                       # [B, G, N]
    by_group = chained.view(2, chained.shape[1], 4, 4)                               # the 4x4 patch grid
    g = torch.nn.functional.normalize(parts["group_x"], dim=-1)
    q = torch.nn.functional.normalize(parts["query_x"], dim=-1)
    d = torch.nn.functional.normalize(parts["dummy_x"], dim=-1)
    for b, (h, w) in enumerate(sizes):
        up = torch.nn.functional.interpolate(by_group[b:b + 1], size=(h, w), mode="bilinear", align_corners=False)
        winner = (g[b] @ q[b] > g[b] @ d[b])[up[0].argmax(dim=0)]
        assert ours[b].shape == (h, w) and torch.equal(ours[b], winner.float())
    # The runner leaves maps at the original size as they are: τ = 0.5 keeps exactly the query pixels.
    assert torch.equal(to_original_size(ours[0], sizes[0]), ours[0])


def test_soft_and_hard_variants_follow_group_similarities(segmenter, synthref_root):
    batch = val_batch(synthref_root)
    with rule(segmenter, "soft"):
        scores = segmenter.predict(batch["images"], batch["texts"])
    assert scores.shape == (6, 4, 4) and scores.min() >= 0 and scores.max() <= 1
    parts = segmenter.group_similarities(batch["images"], batch["texts"])
    q = torch.nn.functional.normalize(parts["query_x"], dim=-1)
    d = torch.nn.functional.normalize(parts["dummy_x"], dim=-1)
    g = torch.nn.functional.normalize(parts["group_x"], dim=-1)
    query_wins = (g @ q.unsqueeze(-1)).squeeze(-1) > (g @ d.unsqueeze(-1)).squeeze(-1)   # [B, G]
    patch_group = parts["assignment"].argmax(dim=-1)                                    # [B, N]
    expected = torch.gather(query_wins, 1, patch_group).float().view(6, 4, 4)
    with rule(segmenter, "hard"):
        hard = segmenter.predict(batch["images"], batch["texts"])
    assert torch.equal(hard, expected)
    assert ((scores > 0.5) == (hard > 0.5)).float().mean() > 0.5   # soft and hard mostly agree
    with rule(segmenter, "soft", dummy_query=batch["texts"][0]):
        undecided = segmenter.predict(batch["images"][:1], batch["texts"][:1])
    assert torch.allclose(undecided, torch.full_like(undecided, 0.5), atol=1e-5)
    with rule(segmenter, "official", dummy_query=batch["texts"][0]):   # a tie goes to the dummy
        assert segmenter.predict(batch["images"][:1], batch["texts"][:1])[0].sum() == 0


def test_mask_rule_is_checked_and_the_variants_select_it(env):
    cfg = dict(type="groupvit", input_size=32, backbone=copy.deepcopy(TINY_BACKBONE), mask_rule="argmax")
    with pytest.raises(ConfigError, match="mask_rule='argmax'"):
        GroupViTSegmenter(cfg, env)
    with pytest.raises(ConfigError, match="hard_assignment is gone"):
        GroupViTSegmenter(dict(cfg, mask_rule="hard", hard_assignment=True), env)
    from harness.config import load_run_config

    for dataset in ("synthref", "refcoco"):
        for spec, expected in (("groupvit", "official"), ("groupvit@soft", "soft"), ("groupvit@hard", "hard")):
            assert load_run_config(spec, dataset, "smoke").cfg["method"]["mask_rule"] == expected


def test_fit_sees_no_masks_updates_weights_and_logs(env, synthref_root):
    from harness.data.datasets import open_split

    train = open_split("synthref", "train", data_root=synthref_root)
    assert not train.has_masks
    cfg = dict(type="groupvit", input_size=32, backbone=copy.deepcopy(TINY_BACKBONE))
    seg = GroupViTSegmenter(cfg, env)
    before = {k: v.clone() for k, v in seg.model.state_dict().items()}
    log = seg.fit(train, dict(batch_size=8, lr=1e-3, epochs=1, max_steps=2, phrases=2, weight_decay=0.0, schedule="constant", warmup_steps=0), seed=0,
                  ctx=FitContext(progress=False))
    assert log["steps"] == 2 and all(torch.isfinite(torch.tensor(log["loss_per_epoch"])))
    changed = [k for k, v in seg.model.state_dict().items() if not torch.equal(v, before[k])]
    assert any("vision_model" in k for k in changed) and any("text_model" in k for k in changed)


def test_smoke_run_through_the_runner_writes_metrics(synthref_root, tmp_path):
    from harness.run.runner import RunOptions, run_one

    opts = RunOptions(dataset="synthref", profile="smoke", splits=["val"], data_root=Path(synthref_root),
                      out=tmp_path / "runs", limit=8, progress=False, crf_workers=1,
                      overrides=[f"method.backbone.arch={TINY_ARCH!r}", "method.input_size=32"])
    outcome = run_one("groupvit", 0, opts)
    metrics = json.loads((outcome.run_dir / "metrics.json").read_text())
    row = metrics["splits"]["val"]["tau=0.50"]
    assert row["n"] == 8 and 0.0 <= row["mIoU"] <= 100.0
