"""Real-checkpoint loaders: a randomly initialised model saved to a temp path loads back equal."""

from __future__ import annotations

import json

import open_clip
import pytest
import timm
import torch
from safetensors.torch import save_file
from transformers import BertConfig, BertModel

from harness.backbones import build_bert, build_clip, build_vit
from harness.errors import CheckpointError, UnknownNameError
from harness.segmenter import RunEnv

pytestmark = pytest.mark.usefixtures("one_thread")



@pytest.fixture
def env(tmp_path) -> RunEnv:
    """A real-data env: no captions.json, so a missing checkpoint can never turn into a stand-in."""
    return RunEnv(dataset="refcoco", data_root=tmp_path / "refcoco", cache_dir=tmp_path / "cache", progress=False)


@pytest.fixture(scope="module")
def vit_small_file(tmp_path_factory):
    """(random vit_small_patch16_384 with its 1000-way head, its .pth path, its .safetensors path)."""
    torch.manual_seed(0)
    # timm's full init: weight_init="skip" leaves some parameters as torch.empty (uninitialised
    # memory, at times NaN), which made the round trip flaky.
    model = timm.create_model("vit_small_patch16_384", pretrained=False, dynamic_img_size=True).eval()
    folder = tmp_path_factory.mktemp("vit")
    torch.save(model.state_dict(), folder / "vit.pth")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "vit.safetensors"))
    return model, folder / "vit.pth", folder / "vit.safetensors"


def test_clip_vit_b16_round_trip(tmp_path, env):
    torch.manual_seed(0)
    original = open_clip.create_model("ViT-B-16").eval()
    path = tmp_path / "ViT-B-16.pth"
    torch.save(original.state_dict(), path)
    model, tokenizer = build_clip({"name": "ViT-B-16", "checkpoint": str(path)}, env)
    images, texts = torch.rand(1, 3, 224, 224), tokenizer(["a photo of a red circle"])  # [1, 77]
    assert texts.shape == (1, 77) and texts[0, 0].item() == 49406  # <start_of_text>: the offline BPE vocab
    with torch.no_grad():
        assert torch.equal(model.encode_image(images), original.encode_image(images))
        assert torch.equal(model.encode_text(texts), original.encode_text(texts))
    assert model.visual.preprocess_cfg["mean"] == open_clip.OPENAI_DATASET_MEAN


def test_clip_wrong_architecture_names_missing_keys(vit_small_file, env):
    _, pth, _ = vit_small_file
    with pytest.raises(CheckpointError, match=r"vit\.pth.*missing keys \d+: .*visual") as err:
        build_clip({"name": "ViT-S-32", "checkpoint": str(pth)}, env)
    assert "more)" in str(err.value)  # first few keys, then how many more


def test_clip_shape_mismatch_is_reported(tmp_path, env):
    small = open_clip.CLIP(embed_dim=32, vision_cfg=dict(image_size=32, patch_size=8, width=32, layers=12, head_width=16),
                           text_cfg=dict(width=32, heads=2, layers=12))
    path = tmp_path / "small.pth"
    torch.save(small.state_dict(), path)
    with pytest.raises(CheckpointError, match="size mismatch"):
        build_clip({"name": "ViT-S-32", "checkpoint": str(path)}, env)


def test_clip_missing_file_and_unknown_name(tmp_path, env):
    with pytest.raises(CheckpointError, match=r"nowhere\.pt: CLIP checkpoint for ViT-B-16 file not found"):
        build_clip({"name": "ViT-B-16", "checkpoint": str(tmp_path / "nowhere.pt")}, env)
    (tmp_path / "x.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UnknownNameError, match="ViT-Q-99"):
        build_clip({"name": "ViT-Q-99", "checkpoint": str(tmp_path / "x.pt")}, env)
    with pytest.raises(CheckpointError, match=r"x\.pt: cannot be read as a torch checkpoint"):
        build_clip({"name": "ViT-S-32", "checkpoint": str(tmp_path / "x.pt")}, env)


@pytest.mark.parametrize("which", ["pth", "safetensors"])
def test_vit_small_round_trip(vit_small_file, which, env):
    original, pth, safetensors = vit_small_file
    path = pth if which == "pth" else safetensors
    encoder = build_vit({"arch": "vit_small_patch16_384", "img_size": 384, "checkpoint": str(path)}, env)
    assert encoder.grid == (24, 24) and encoder.embed_dim == 384
    # A small input keeps the test fast: both models interpolate the same 24×24 position table.
    images = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        expected = original.forward_features((images - 0.5) / 0.5)[:, 1:]  # AugReg mean/std, CLS dropped
        assert torch.equal(encoder(images), expected)


def test_vit_resamples_to_another_size(vit_small_file, env):
    _, pth, _ = vit_small_file
    encoder = build_vit({"arch": "vit_small_patch16_384", "img_size": 128, "checkpoint": str(pth)}, env)
    assert encoder.grid == (8, 8)
    out = encoder(torch.rand(2, 3, 128, 128))
    assert out.shape == (2, 64, 384)
    # The final LayerNorm ran: each token has ~zero mean over channels before its affine (random init: 1, 0).
    assert out.mean(dim=-1).abs().max() < 1e-4


def test_vit_missing_keys_and_shape_mismatch(vit_small_file, tmp_path, env):
    original, _, _ = vit_small_file
    partial = {k: v for k, v in original.state_dict().items() if not k.startswith("blocks.11.")}
    torch.save(partial, tmp_path / "partial.pth")
    with pytest.raises(CheckpointError, match=r"partial\.pth.*missing keys 12: blocks\.11\.") as err:
        build_vit({"checkpoint": str(tmp_path / "partial.pth")}, env)
    assert "(+7 more)" in str(err.value)
    tiny = timm.create_model("vit_tiny_patch16_384", pretrained=False)
    torch.save(tiny.state_dict(), tmp_path / "tiny.pth")
    with pytest.raises(CheckpointError, match=r"tiny\.pth.*size mismatch.*vs model \[1, 1, 384\]"):
        build_vit({"checkpoint": str(tmp_path / "tiny.pth")}, env)
    with pytest.raises(CheckpointError, match="absent.npz: ViT checkpoint .* not found"):
        build_vit({"checkpoint": str(tmp_path / "absent.npz")}, env)


def write_bert_folder(folder, vocab_words):
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab_words), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=32)
    model = BertModel(config).eval()
    model.save_pretrained(folder)
    (folder / "vocab.txt").write_text("\n".join(vocab_words) + "\n")
    return model


def test_bert_round_trip(tmp_path, env):
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "red", "circle", "left", "on"]
    original = write_bert_folder(tmp_path / "bert", words)
    encoder = build_bert({"checkpoint": str(tmp_path / "bert"), "max_length": 6}, env)
    tokens = encoder.tokenize(["the red circle on the left", "red"])
    assert tokens["input_ids"].tolist() == [[2, 5, 6, 7, 9, 3], [2, 6, 3, 0, 0, 0]]  # truncated, padded
    with torch.no_grad():
        expected = original(**tokens).last_hidden_state
        assert torch.equal(encoder(**tokens), expected)
    assert encoder.hidden_size == 32


def test_bert_wrong_weights_and_missing_folder(tmp_path, env):
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "red"]
    original = write_bert_folder(tmp_path / "bert", words)
    partial = {k: v.contiguous() for k, v in original.state_dict().items() if ".layer.1." not in k}
    save_file(partial, str(tmp_path / "bert" / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match=r"bert: does not match BertModel: missing keys 16: encoder\.layer\.1"):
        build_bert({"checkpoint": str(tmp_path / "bert")}, env)
    with pytest.raises(CheckpointError, match="nothing-here: BERT checkpoint folder not found"):
        build_bert({"checkpoint": str(tmp_path / "nothing-here")}, env)


def write_hub_bert(folder, words, drop=(), reshape=()):
    """A hub-layout BERT folder (BertForPreTraining names, legacy LayerNorm.gamma/beta) at a tiny size."""
    from transformers import BertForPreTraining

    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(words), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=32)
    model = BertForPreTraining(config).eval()
    state = {k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
             for k, v in model.state_dict().items() if k not in drop}
    for key in reshape:
        state[key] = torch.zeros(7, 32)
    folder.mkdir()
    torch.save(state, folder / "pytorch_model.bin")
    config.to_json_file(folder / "config.json")
    (folder / "vocab.txt").write_text("\n".join(words) + "\n")
    return model


def test_hub_bert_heads_ignored_but_a_missing_or_misshaped_encoder_weight_is_named(tmp_path, env):
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "red", "circle"]
    source = write_hub_bert(tmp_path / "ok", words)
    encoder = build_bert({"checkpoint": str(tmp_path / "ok")}, env)
    tokens = encoder.tokenize(["red circle"])
    with torch.no_grad():
        assert torch.equal(encoder(**tokens), source.bert(**tokens).last_hidden_state)
    missing = "bert.encoder.layer.1.output.LayerNorm.weight"    # written as ...LayerNorm.gamma
    write_hub_bert(tmp_path / "missing", words, drop=[missing])
    with pytest.raises(CheckpointError, match=r"missing: does not match BertModel: missing keys 1: "
                                              r"encoder\.layer\.1\.output\.LayerNorm\.weight"):
        build_bert({"checkpoint": str(tmp_path / "missing")}, env)
    write_hub_bert(tmp_path / "misshaped", words, reshape=["bert.encoder.layer.0.attention.self.query.weight"])
    with pytest.raises(CheckpointError, match=r"misshaped: .*mis-shaped keys 1: encoder\.layer\.0\.attention\.self\.query\.weight"):
        build_bert({"checkpoint": str(tmp_path / "misshaped")}, env)


class CallsOut:
    """Pickles as a call of os.system: what a hostile or merely foreign pickle can hold."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_foreign_objects_in_a_checkpoint_are_inert(tmp_path):
    from harness.backbones.state_dicts import ForeignObject, read_state_dict, read_torch_pickle

    marker = tmp_path / "ran"
    weights = {"w": torch.arange(3.0)}
    torch.save({"model": weights, "args": CallsOut(marker)}, tmp_path / "ckpt.pth")
    blob = read_torch_pickle(tmp_path / "ckpt.pth")
    assert not marker.exists()                                   # os.system was never called
    assert isinstance(blob["args"], ForeignObject) and blob["args"].foreign_name.endswith(".system")
    assert torch.equal(read_state_dict(tmp_path / "ckpt.pth")["w"], weights["w"])


def test_openai_state_dict_is_told_by_its_extra_entries_and_shape_checked(tmp_path, env):
    """OpenAI's three extra entries mark an OpenAI state dict (built with QuickGELU); its weights
    must still fit the architecture, key by key and shape by shape."""
    torch.manual_seed(0)
    cfg = dict(embed_dim=32, vision_cfg=dict(image_size=32, patch_size=8, width=32, layers=12, head_width=16),
               text_cfg=dict(width=32, heads=2, layers=12))
    state = open_clip.CLIP(**cfg).state_dict()
    torch.save({**state, "input_resolution": torch.tensor(32), "context_length": torch.tensor(77),
                "vocab_size": torch.tensor(49408)}, tmp_path / "openai.pt")
    with pytest.raises(CheckpointError, match=r"openai\.pt: does not match open_clip ViT-S-32: \d+ size mismatches"):
        build_clip({"name": "ViT-S-32", "checkpoint": str(tmp_path / "openai.pt")}, env)
    from harness.backbones.clip import clip_file_source

    torch.save(state, tmp_path / "open_clip.pt")
    assert clip_file_source(tmp_path / "openai.pt") == "openai-state-dict"
    assert clip_file_source(tmp_path / "open_clip.pt") == "open_clip"


def test_nvlabs_groupvit_with_more_blocks_than_the_arch_is_refused(tmp_path):
    from transformers import GroupViTModel

    from harness.backbones.groupvit import groupvit_config, hf_to_original, load_groupvit_checkpoint

    arch = dict(image_size=32, patch_size=8, hidden_size=32, intermediate_size=64, num_attention_heads=2,
                depths=[2, 1, 1], num_group_tokens=[8, 4, 0], num_output_groups=[8, 4, 4], text_hidden_size=32,
                text_intermediate_size=64, text_layers=1, text_heads=2, context_length=16, projection_dim=16,
                projection_intermediate_dim=32)
    source = GroupViTModel(groupvit_config(arch)).eval()
    torch.save({"model": hf_to_original(source.state_dict())}, tmp_path / "deep.pth")
    with pytest.raises(CheckpointError, match=r"deep\.pth: holds weights the configured GroupViT arch lacks"):
        load_groupvit_checkpoint(tmp_path / "deep.pth", dict(arch, depths=[1, 1, 1]))
    model, _ = load_groupvit_checkpoint(tmp_path / "deep.pth", arch)
    assert model.harness_load_info["source"] == "nvlabs"


def test_open_clip_hub_config_beside_the_file_decides_quickgelu(tmp_path, env):
    """The hub's open_clip_config.json says quick_gelu for OpenAI weights in open_clip's layout."""
    torch.manual_seed(0)
    source = open_clip.create_model("ViT-S-32", force_quick_gelu=True).eval()
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(tmp_path / "open_clip_model.safetensors"))
    cfg = {"name": "ViT-S-32", "checkpoint": str(tmp_path / "open_clip_model.safetensors")}
    gelu, tokenizer = build_clip(cfg, env)
    assert gelu.harness_load_info["quick_gelu"] is False
    (tmp_path / "open_clip_config.json").write_text(json.dumps({"model_cfg": {"quick_gelu": True}}))
    model, _ = build_clip(cfg, env)
    assert model.harness_load_info == dict(path=cfg["checkpoint"], arch="ViT-S-32", source="open_clip", quick_gelu=True)
    images = torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(model.encode_image(images), source.encode_image(images))
        assert not torch.allclose(gelu.encode_image(images), source.encode_image(images), atol=1e-4)
    (tmp_path / "open_clip_config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"open_clip_config\.json: not a readable open_clip config"):
        build_clip(cfg, env)
