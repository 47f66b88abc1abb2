"""Stand-in pretraining of CLIP, ViT and BERT on a tiny captioned folder: loss falls, cache reused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import harness.backbones.bert as bert_module
import harness.backbones.clip as clip_module
import harness.backbones.vit as vit_module
from harness.backbones import build_bert, build_clip, build_vit
from harness.backbones.standin_bert import mask_tokens
from harness.backbones.standin_clip import encode_text_trimmed, multi_positive_loss, pooled_phrase_logits
from harness.backbones.standin_vit import label_vocabulary, multi_hot_targets, pool_patches
from harness.errors import CheckpointError, ConfigError
from harness.segmenter import RunEnv

pytestmark = pytest.mark.usefixtures("one_thread")

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

# Small enough to pretrain in a second or two; same code paths as the defaults.
TINY_CLIP = dict(embed_dim=32, vision_cfg=dict(image_size=32, patch_size=8, width=32, layers=1, head_width=16),
                 text_cfg=dict(context_length=40, width=32, heads=2, layers=1),
                 steps=40, batch_size=16, lr=3e-3, warmup=4)
TINY_VIT = dict(img_size=32, patch_size=8, embed_dim=32, depth=1, num_heads=2, steps=40, batch_size=16,
                lr=3e-3, warmup=4)
TINY_BERT = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                 max_position_embeddings=48, steps=40, batch_size=32, lr=3e-3, warmup=4)



@pytest.fixture(scope="module")
def caption_root(synthref_root) -> Path:
    """The small synthref's folder: captions.json (24 train scenes, 3 captions each) and vocab.txt."""
    return synthref_root / "synthref"


def env_for(data_root: Path, cache_dir: Path) -> RunEnv:
    return RunEnv(dataset="tiny", data_root=data_root, cache_dir=cache_dir, progress=False)


def curve_of(cache_dir: Path, kind: str) -> list[float]:
    (folder,) = (cache_dir / "pretrain").glob(f"{kind}-*")
    return json.loads((folder / "curve.json").read_text())["losses"]


def assert_loss_fell(losses: list[float], factor: float) -> None:
    first, last = np.mean(losses[:5]), np.mean(losses[-5:])
    assert last < factor * first, f"loss {first:.3f} → {last:.3f}"


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def forbid_training(*args, **kwargs):
    raise AssertionError("stand-in pretraining ran although its cache was filled")


def test_clip_standin_learns_and_is_cached(caption_root, tmp_path, monkeypatch):
    env = env_for(caption_root, tmp_path)
    model, tokenizer = build_clip({"standin": TINY_CLIP}, env)
    # CLIP's InfoNCE over 16 pairs plus the phrase-to-patch loss: both start near chance, and
    # matching scenes to captions and phrases to places more than halves their sum.
    losses = curve_of(tmp_path, "clip")
    assert len(losses) == 40
    assert_loss_fell(losses, 0.6)
    assert tokenizer(["a red circle"]).shape == (1, 40)
    assert model.visual.preprocess_cfg["size"] == 32
    monkeypatch.setattr(clip_module, "train_clip_standin", forbid_training)
    again, _ = build_clip({"standin": TINY_CLIP}, env)
    assert same_weights(model, again)


def test_vit_standin_learns_and_is_cached(caption_root, tmp_path, monkeypatch):
    env = env_for(caption_root, tmp_path)
    encoder = build_vit({"standin": TINY_VIT}, env)
    tokens = encoder(torch.rand(2, 3, 32, 32))
    assert tokens.shape == (2, 16, 32) and encoder.grid == (4, 4) and encoder.embed_dim == 32
    assert_loss_fell(curve_of(tmp_path, "vit"), 0.8)
    monkeypatch.setattr(vit_module, "train_vit_standin", forbid_training)
    assert same_weights(encoder, build_vit({"standin": TINY_VIT}, env))


def test_vit_standin_is_deterministic_and_keeps_the_run_seed(caption_root, tmp_path):
    torch.manual_seed(123)
    first = build_vit({"standin": TINY_VIT}, env_for(caption_root, tmp_path / "a"))
    after_first = torch.rand(3)
    torch.manual_seed(123)
    second = build_vit({"standin": TINY_VIT}, env_for(caption_root, tmp_path / "b"))
    assert same_weights(first, second)
    assert torch.equal(after_first, torch.rand(3))


def test_bert_standin_learns_and_is_cached(caption_root, tmp_path, monkeypatch):
    env = env_for(caption_root, tmp_path)
    encoder = build_bert({"standin": TINY_BERT}, env)
    tokens = encoder.tokenize(["a red circle", "a blue square and a green circle"])
    assert tokens["input_ids"].shape == (2, 9)  # [CLS] + 7 words + [SEP]
    assert tokens["attention_mask"][0].tolist() == [1] * 5 + [0] * 4
    assert encoder(**tokens).shape == (2, 9, 32) and encoder.hidden_size == 32
    # MLM starts near ln |vocab| (synthref's ~70 words: 4.2) and must fall well below it.
    assert_loss_fell(curve_of(tmp_path, "bert"), 0.85)
    monkeypatch.setattr(bert_module, "train_bert_standin", forbid_training)
    assert same_weights(encoder, build_bert({"standin": TINY_BERT}, env))


def colour_accuracy_of_cls(encoder) -> float:
    """Nearest-centroid accuracy of the colour word from [CLS] over held-out colour × shape × size phrases."""
    colours, shapes = ["red", "green", "blue", "yellow", "purple", "orange"], ["circle", "square", "star", "cross"]
    phrases = [(c, f"the {size} {c} {s}") for c in colours for s in shapes for size in ("small", "big")]
    with torch.no_grad():
        cls = encoder(**encoder.tokenize([t for _, t in phrases]))[:, 0]
    cls = torch.nn.functional.normalize(cls - cls.mean(0), dim=-1)   # centred: what differs between phrases
    labels = torch.tensor([colours.index(c) for c, _ in phrases])
    fit = torch.tensor([size == "small" for size in ["small", "big"] * (len(phrases) // 2)])  # centroids from "small"
    centroids = torch.nn.functional.normalize(
        torch.stack([cls[fit & (labels == k)].mean(0) for k in range(len(colours))]), dim=-1)
    return float(((cls[~fit] @ centroids.T).argmax(1) == labels[~fit]).float().mean())


def object_caption_root(caption_root: Path, folder: Path) -> Path:
    """A caption folder whose 36 captions each name one object ("a small red circle"), so the
    words a caption holds are exactly one colour, one shape and one size; synthref's vocabulary."""
    (folder / "images").mkdir(parents=True)
    shutil.copy(caption_root / "vocab.txt", folder / "vocab.txt")
    colours, shapes = ["red", "green", "blue", "yellow", "purple", "orange"], ["circle", "square", "star", "cross"]
    captions = [f"a {size} {c} {s}" for c in colours for s in shapes for size in ("small", "big")]
    entries = []
    for i in range(0, len(captions), 3):
        (folder / "images" / f"{i}.png").write_bytes(bytes([i]))
        entries.append(dict(image_id=i, file_name=f"images/{i}.png", captions=captions[i:i + 3]))
    (folder / "objects").mkdir()
    shutil.copy(folder / "vocab.txt", folder / "objects" / "vocab.txt")
    (folder / "objects" / "captions.json").write_text(json.dumps(entries))
    return folder / "objects"


def test_bert_standin_sentence_objective_puts_the_words_into_cls(caption_root, tmp_path):
    """MLM alone puts no loss on [CLS]; the "words" objective (the stand-in's NSP) makes it carry
    the colour, as a real BERT's [CLS] does: the colour of held-out phrases read off [CLS] by
    nearest centroid."""
    root = object_caption_root(caption_root, tmp_path / "data")
    env = env_for(root, tmp_path / "cache")
    two_layers = dict(TINY_BERT, num_hidden_layers=2, steps=200)   # the stand-in's depth
    mlm_only = colour_accuracy_of_cls(build_bert({"standin": two_layers}, env))
    words = colour_accuracy_of_cls(build_bert({"standin": dict(two_layers, sentence="words")}, env))
    assert words >= 0.9 and words > mlm_only + 0.3, (mlm_only, words)


def test_bert_standin_unknown_sentence_objective_is_named(caption_root, tmp_path):
    with pytest.raises(ConfigError, match="method.bert.standin.sentence="):
        build_bert({"standin": dict(TINY_BERT, sentence="nsp")}, env_for(caption_root, tmp_path))
    with pytest.raises(ConfigError, match="method.bert.standin.sentence_weight='a lot'"):
        build_bert({"standin": dict(TINY_BERT, sentence="words", sentence_weight="a lot")},
                   env_for(caption_root, tmp_path))


@pytest.mark.parametrize("build", [build_clip, build_vit, build_bert])
def test_no_checkpoint_and_no_captions_is_an_error(build, tmp_path):
    empty = tmp_path / "refcoco"
    empty.mkdir()
    (empty / "vocab.txt").write_text("\n".join(SPECIALS) + "\n")
    with pytest.raises(CheckpointError, match="captions.json"):
        build({}, env_for(empty, tmp_path / "cache"))
    assert not (tmp_path / "cache" / "pretrain").exists() or not any((tmp_path / "cache" / "pretrain").iterdir())


def test_bert_standin_without_vocab_names_the_file(caption_root, tmp_path):
    data_root = tmp_path / "synthref"
    data_root.mkdir()
    shutil.copy(caption_root / "captions.json", data_root)
    with pytest.raises(CheckpointError, match="vocab.txt"):
        build_bert({"standin": TINY_BERT}, env_for(data_root, tmp_path / "cache"))


def test_label_vocabulary_holds_the_content_words():
    captions = [["a red circle and a blue square"], ["a big red square on the left"]]
    labels = label_vocabulary(captions)
    assert labels == ["big", "blue", "circle", "red", "square"]
    targets = multi_hot_targets(captions, labels)
    assert targets.tolist() == [[0, 1, 1, 1, 1], [1, 0, 0, 1, 1]]


def test_mask_tokens_statistics(tmp_path):
    from transformers import BertTokenizer

    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(SPECIALS + ["w%d" % i for i in range(50)]) + "\n")
    tokenizer = BertTokenizer(vocab_file=str(vocab))
    ids = torch.randint(5, 55, (400, 20))  # [B, L] word ids only
    maskable = torch.ones_like(ids, dtype=torch.bool)
    maskable[:, 0] = False  # e.g. [CLS]: never chosen
    corrupted, labels = mask_tokens(ids, maskable, tokenizer, 0.15, torch.Generator().manual_seed(0))
    chosen = labels != -100
    assert not chosen[:, 0].any()
    assert abs(chosen.float().mean().item() - 0.15 * 19 / 20) < 0.01
    assert torch.equal(labels[chosen], ids[chosen]) and torch.equal(corrupted[~chosen], ids[~chosen])
    as_mask = (corrupted[chosen] == tokenizer.mask_token_id).float().mean().item()
    assert abs(as_mask - 0.8) < 0.03


def test_standin_pretraining_is_pinned_to_its_thread_count(tmp_path, one_thread):
    """The cache holds the same weights however it was filled: pretraining runs with
    STANDIN_THREADS threads whatever the caller's count, which is part of the key and the record."""
    from harness.backbones import pretrain_cache

    root = tmp_path / "data"
    root.mkdir()
    (root / "captions.json").write_text("[]")
    seen = []
    folder = pretrain_cache.cached_pretrain("probe", {"steps": 1}, root, tmp_path / "cache",
                                            lambda out: seen.append(torch.get_num_threads()))
    assert seen == [pretrain_cache.STANDIN_THREADS] and torch.get_num_threads() == 1
    assert json.loads((folder / "standin.json").read_text())["threads"] == pretrain_cache.STANDIN_THREADS


def test_standin_key_changes_with_the_images_not_only_the_captions(tmp_path):
    """Same captions over other images is other pretraining data: another cache entry."""
    from harness.backbones import pretrain_cache

    root = tmp_path / "data" / "synthref"
    root.mkdir(parents=True)
    (root.parent / "img.png").write_bytes(b"first image")
    (root / "captions.json").write_text(json.dumps([{"file_name": "img.png", "captions": ["a red box"]}]))
    before = pretrain_cache.standin_key("vit", {"steps": 1}, root)
    (root.parent / "img.png").write_bytes(b"other image")
    assert pretrain_cache.standin_key("vit", {"steps": 1}, root) != before
    (root.parent / "img.png").unlink()
    with pytest.raises(CheckpointError, match="img.png: image listed in .*captions.json not found"):
        pretrain_cache.standin_key("vit", {"steps": 1}, root)


def test_multi_positive_loss_equals_hand_computation():
    logits = torch.tensor([[2.0, 0.0, 1.0], [0.5, 1.5, -1.0]])  # image b × text t
    positive = torch.tensor([[True, False, True], [False, True, False]])
    # text→image: −log of the softmax mass of each text's positive images
    text_terms = [-np.log(np.exp(2.0) / (np.exp(2.0) + np.exp(0.5))),
                  -np.log(np.exp(1.5) / (np.exp(0.0) + np.exp(1.5))),
                  -np.log(np.exp(1.0) / (np.exp(1.0) + np.exp(-1.0)))]
    # image→text: each positive pair against the image's negative texts only
    image_terms = [-np.log(np.exp(2.0) / (np.exp(2.0) + np.exp(0.0))),
                   -np.log(np.exp(1.0) / (np.exp(1.0) + np.exp(0.0))),
                   -np.log(np.exp(1.5) / (np.exp(1.5) + np.exp(0.5) + np.exp(-1.0)))]
    expected = (np.mean(text_terms) + np.mean(image_terms)) / 2
    assert multi_positive_loss(logits, positive).item() == pytest.approx(expected, rel=1e-6)


def test_phrase_logits_pool_over_patches_between_mean_and_max():
    patches = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]])  # one image, 3 patches
    phrases = torch.tensor([[1.0, 0.0]])                              # matches patch 0 only
    cold = pooled_phrase_logits(patches, phrases, 0.01, torch.tensor(1.0))
    warm = pooled_phrase_logits(patches, phrases, 100.0, torch.tensor(1.0))
    assert cold.item() == pytest.approx(1.0, abs=1e-3)                # ≈ the best patch
    assert warm.item() == pytest.approx(100 * np.log(np.exp(0.01) + 2), rel=1e-6)  # τ·LSE(s/τ)
    scores = torch.tensor([[[0.0], [2.0], [4.0]]])                    # [B, N, L]
    assert pool_patches(scores, "mean", 1.0).item() == pytest.approx(2.0)
    assert pool_patches(scores, "lse", 1e-3).item() == pytest.approx(4.0 - 1e-3 * np.log(3), abs=1e-4)
    assert pool_patches(scores, "lse", 1e3).item() == pytest.approx(2.0, abs=1e-2)


def test_trimmed_text_encoding_equals_open_clips_full_context():
    from harness.backbones.clip import CLIP_STANDIN, standin_clip_model
    import open_clip

    torch.manual_seed(0)
    model = standin_clip_model(CLIP_STANDIN).eval()
    tokens = open_clip.SimpleTokenizer(context_length=48)(["big red circle", "a small blue star and a green cross"])
    assert torch.allclose(encode_text_trimmed(model, tokens), model.encode_text(tokens), atol=1e-5)


def test_local_attention_keeps_a_patch_blind_to_far_pixels():
    from baselines.maskclip import dense_patch_embeddings
    from harness.backbones.clip import CLIP_STANDIN, standin_clip_model
    from harness.backbones.local_attention import local_attention_mask

    mask = local_attention_mask(1 + 16 * 16, 2)
    assert (mask[0] == 0).all()                         # the class token sees everything
    assert torch.isinf(mask[1:, 0]).all()               # no patch reads the class token
    assert (mask[1 + 5 * 16 + 5] == 0).sum() == 25      # an inner patch: its 5×5 neighbourhood
    assert (mask[1] == 0).sum() == 9                    # a corner patch: 3×3
    torch.manual_seed(0)
    pixels = torch.randn(1, 3, 64, 64)
    moved = pixels.clone()
    moved[..., 48:, 48:] += 1.0                          # the bottom-right 4×4 patches only

    def changed(model) -> tuple[torch.Tensor, torch.Tensor]:
        model.eval()
        with torch.no_grad():
            diff = (dense_patch_embeddings(model.visual, moved) - dense_patch_embeddings(model.visual, pixels))
            pooled = model.encode_image(moved) - model.encode_image(pixels)
        return diff.abs().amax(-1)[0].view(16, 16), pooled.abs().max()

    local, pooled = changed(standin_clip_model(dict(CLIP_STANDIN, local_radius=2)))
    # MaskCLIP reads one attention block, then the value path: patches more than 2 steps from
    # the moved ones are untouched, the ones beside them do change, and the image embedding does
    assert local[:10, :].max() == 0 and local[:, :10].max() == 0
    assert local[10:, 10:].min() > 0 and pooled > 0
    open_clip_default, _ = changed(standin_clip_model(CLIP_STANDIN))
    assert open_clip_default[:10, :10].min() > 0        # global attention: every patch moves
    with pytest.raises(ConfigError, match="local_radius"):
        standin_clip_model(dict(CLIP_STANDIN, local_radius=-1))


def test_vit_standin_local_attention_grows_the_receptive_field_by_radius_per_block():
    from harness.backbones.vit import VIT_STANDIN, standin_vit

    torch.manual_seed(0)
    pixels = torch.randn(1, 3, 64, 64)
    moved = pixels.clone()
    moved[..., 48:, 48:] += 1.0                          # grid rows and columns 12–15 only
    vit = standin_vit(dict(VIT_STANDIN, local_radius=1)).eval()   # 3 blocks
    with torch.no_grad():
        diff = (vit.forward_features(moved) - vit.forward_features(pixels)).abs().amax(-1)[0]
    patches = diff[vit.num_prefix_tokens:].view(16, 16)
    # 3 blocks × 1 grid step: rows and columns 9–15 may change, nothing nearer the origin does
    assert patches[:9].max() == 0 and patches[:, :9].max() == 0
    assert patches[9:, 9:].min() > 0 and diff[0] > 0    # the class token sees everything
    with pytest.raises(ConfigError, match="method.vit.standin.local_radius"):
        standin_vit(dict(VIT_STANDIN, local_radius=1.5))
