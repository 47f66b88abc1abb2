"""Released checkpoints, in the layouts users download (tests/official_checkpoints.py), load
through the harness's backbone loaders and reproduce what the authors' own code computes from them.

Real architectures and configs throughout (CLIP ViT-B/16, GroupViT gcc-yfcc, BERT-base,
ViT-S/16 at 384), random weights. Each file is written once per session into a temp folder.
"""

from __future__ import annotations

import pickle
import sys
import zipfile

import numpy as np
import open_clip
import pytest
import timm
import torch
from transformers import BertModel, GroupViTModel

from harness.backbones import build_bert, build_clip, build_vit
from harness.backbones.groupvit import build_groupvit, clip_bpe_tokenizer
from harness.backbones.groupvit_loss import encode_images, encode_texts
from harness.errors import CheckpointError
from harness.segmenter import RunEnv
from tests import official_checkpoints as official
from tests import official_groupvit

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")]
TEXTS = ["the man in the red shirt on the left", "a big blue circle"]


@pytest.fixture(scope="session")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("official-checkpoints")


@pytest.fixture
def env(tmp_path) -> RunEnv:
    """Real data: no captions.json, so a checkpoint problem can never turn into a stand-in."""
    return RunEnv(dataset="refcoco", data_root=tmp_path / "refcoco", cache_dir=tmp_path / "cache", progress=False)


def assert_same(ours: torch.Tensor, theirs: torch.Tensor, atol: float = 1e-5) -> None:
    """Equal up to float reordering; random weights keep outputs O(1), so 1e-5 is tight."""
    assert ours.shape == theirs.shape
    diff = (ours - theirs).abs().max().item()
    assert diff <= atol, f"max |difference| {diff:.3g} > {atol}"


# ---------------------------------------------------------------- CLIP (issue 12, item 4)
@pytest.fixture(scope="session")
def openai_pt(folder):
    return official.write_openai_clip(folder / "ViT-B-16.pt")


def test_openai_torchscript_is_built_with_quickgelu_and_matches_the_archive(openai_pt, env):
    model, tokenizer = build_clip({"name": "ViT-B-16", "checkpoint": str(openai_pt)}, env)
    archive = torch.jit.load(str(openai_pt), map_location="cpu").float()   # OpenAI's traced graph
    images, texts = torch.randn(1, 3, 224, 224), tokenizer(TEXTS)
    with torch.no_grad():   # with GELU instead of QuickGELU both differ by ~0.03
        assert_same(model.encode_image(images), archive.encode_image(images))
        assert_same(model.encode_text(texts), archive.encode_text(texts))
    assert type(model.visual.transformer.resblocks[0].mlp.gelu).__name__ == "QuickGELU"
    assert model.harness_load_info == dict(path=str(openai_pt), arch="ViT-B-16", source="openai-torchscript",
                                           quick_gelu=True)


def test_openai_state_dict_is_detected_and_matches_open_clip_load_openai_model(openai_pt, tmp_path, env):
    path = tmp_path / "ViT-B-16-state.pt"
    torch.save(torch.jit.load(str(openai_pt), map_location="cpu").state_dict(), path)
    model, tokenizer = build_clip({"name": "ViT-B-16", "checkpoint": str(path)}, env)
    reference = open_clip.load_openai_model(str(path), precision="fp32", device="cpu").eval()
    images, texts = torch.randn(1, 3, 224, 224), tokenizer(TEXTS)
    with torch.no_grad():
        assert_same(model.encode_image(images), reference.encode_image(images))
        assert_same(model.encode_text(texts), reference.encode_text(texts))
    assert model.harness_load_info["source"] == "openai-state-dict" and model.harness_load_info["quick_gelu"]


def test_open_clip_safetensors_of_a_gelu_arch_stays_gelu(folder, env):
    source, path = official.write_open_clip_safetensors(folder / "open_clip_model.safetensors")
    model, tokenizer = build_clip({"name": "ViT-B-16", "checkpoint": str(path)}, env)
    assert model.harness_load_info["source"] == "open_clip" and not model.harness_load_info["quick_gelu"]
    assert type(model.visual.transformer.resblocks[0].mlp.gelu) is torch.nn.GELU
    images, texts = torch.randn(1, 3, 224, 224), tokenizer(TEXTS)
    with torch.no_grad():
        assert_same(model.encode_image(images), source.encode_image(images))
        assert_same(model.encode_text(texts), source.encode_text(texts))


# ---------------------------------------------------------------- BERT (item 3)
@pytest.fixture(scope="session")
def bert_source():
    return official.random_bert_for_pretraining()


@pytest.mark.parametrize("legacy_names", [True, False], ids=["pytorch_model.bin-gamma-beta", "model.safetensors"])
def test_hub_bert_base_uncased_loads_as_transformers_reads_it(bert_source, legacy_names, folder, env):
    hub = official.write_bert_hub_folder(folder / f"bert-base-uncased-{legacy_names}", bert_source, legacy_names)
    encoder = build_bert({"checkpoint": str(hub), "max_length": 16}, env)
    ignored = encoder.bert.harness_load_info["ignored_keys"]
    assert ignored and all(k.startswith("cls.") for k in ignored)      # the pre-training heads only
    tokens = encoder.tokenize(TEXTS)
    assert tokens["input_ids"][0, 0].item() == 101 and 102 in tokens["input_ids"][0].tolist()  # [CLS] … [SEP]
    reference = BertModel.from_pretrained(str(hub), local_files_only=True).eval()
    with torch.no_grad():
        ours = encoder(**tokens)
        assert_same(ours, reference(**tokens).last_hidden_state)
        # and every weight is the file's: the source model's encoder gives the same states
        assert_same(ours, bert_source.bert(**tokens).last_hidden_state)


# ---------------------------------------------------------------- GroupViT (item 8 and the loader)
@pytest.fixture(scope="session")
def groupvit_files(folder):
    state = official_groupvit.random_nvlabs_state()
    pth = official_groupvit.write_nvlabs_groupvit(folder / "group_vit_gcc_yfcc_30e-879422e0.pth", state)
    hf = official_groupvit.write_transformers_groupvit(folder / "groupvit-gcc-yfcc", state)
    return pth, hf


def test_nvlabs_pth_really_pickles_an_omegaconf_config(groupvit_files):
    pth, _ = groupvit_files
    with zipfile.ZipFile(pth) as archive:
        data = archive.read(next(n for n in archive.namelist() if n.endswith("data.pkl")))
    assert b"omegaconf.dictconfig" in data and b"DictConfig" in data
    with pytest.raises(pickle.UnpicklingError, match="omegaconf"):
        torch.load(pth, weights_only=True)
    with pytest.raises(ModuleNotFoundError, match="omegaconf"):
        torch.load(pth, weights_only=False)


def test_nvlabs_pth_loads_without_omegaconf_and_matches_the_transformers_model(groupvit_files, monkeypatch):
    pth, hf = groupvit_files
    for name in ("omegaconf", "omegaconf.dictconfig", "omegaconf.listconfig", "omegaconf.nodes", "omegaconf.base"):
        monkeypatch.setitem(sys.modules, name, None)      # not importable, even were it installed
    model, tokenizer = build_groupvit({"checkpoint": str(pth)}, env=None)
    assert model.harness_load_info["ignored_keys"] == ["multi_label_logit_scale"]
    reference = GroupViTModel.from_pretrained(str(hf), local_files_only=True).eval()
    folder_model, folder_tokenizer = build_groupvit({"checkpoint": str(hf)}, env=None)
    pixels = torch.randn(1, 3, 224, 224)
    tokens = tokenizer(TEXTS)
    assert torch.equal(tokens["input_ids"], folder_tokenizer(TEXTS)["input_ids"])
    with torch.no_grad():
        expected_image, expected_groups, expected_assign, _ = encode_images(reference, pixels, with_groups=True)
        expected_text = encode_texts(reference, tokens)
        for loaded in (model, folder_model):
            image_x, group_x, assignment, grid = encode_images(loaded, pixels, with_groups=True)
            assert grid == (14, 14) and assignment.shape == (1, 196, 8)
            assert_same(image_x, expected_image)
            assert_same(group_x, expected_groups)
            assert_same(assignment, expected_assign)
            assert_same(encode_texts(loaded, tokens), expected_text)


# ---------------------------------------------------------------- timm ViT-S/16 at 384
@pytest.fixture(scope="session")
def vit_source():
    return official.random_vit_small_384()


@pytest.fixture(scope="session")
def augreg_npz(folder, vit_source):
    return official.write_augreg_npz(folder / "S_16-i21k-300ep-lr_0.001-aug_light1--imagenet2012-res_384.npz",
                                     vit_source)


def test_augreg_npz_matches_timm_and_the_source(augreg_npz, vit_source, env):
    encoder = build_vit({"arch": "vit_small_patch16_384", "img_size": 384, "checkpoint": str(augreg_npz)}, env)
    assert encoder.harness_load_info["source"] == "jax-npz" and encoder.grid == (24, 24)
    reference = timm.create_model("vit_small_patch16_384", pretrained=False).eval()
    reference.load_pretrained(str(augreg_npz))                   # timm's own reading of the file
    images = torch.rand(1, 3, 384, 384)
    with torch.no_grad():
        ours = encoder(images)                                   # [1, 576, 384]
        assert_same(ours, reference.forward_features((images - 0.5) / 0.5)[:, 1:])
        assert_same(ours, vit_source.forward_features((images - 0.5) / 0.5)[:, 1:])


def test_npz_with_another_block_count_is_refused(augreg_npz, tmp_path, env):
    with np.load(augreg_npz) as npz:
        arrays = dict(npz)
    deeper = {**arrays, **{k.replace("encoderblock_11/", "encoderblock_12/"): v
                           for k, v in arrays.items() if "encoderblock_11/" in k}}
    np.savez(tmp_path / "deeper.npz", **deeper)
    with pytest.raises(CheckpointError, match=r"deeper\.npz: .*holds 13 encoder blocks, the model 12"):
        build_vit({"checkpoint": str(tmp_path / "deeper.npz")}, env)
    np.savez(tmp_path / "shallower.npz", **{k: v for k, v in arrays.items() if "encoderblock_11/" not in k})
    with pytest.raises(CheckpointError, match=r"shallower\.npz: .*holds 11 encoder blocks"):
        build_vit({"checkpoint": str(tmp_path / "shallower.npz")}, env)


def test_timm_safetensors_matches_the_source(folder, vit_source, env):
    path = official.write_timm_safetensors(folder / "model.safetensors", vit_source)
    encoder = build_vit({"arch": "vit_small_patch16_384", "img_size": 384, "checkpoint": str(path)}, env)
    images = torch.rand(1, 3, 384, 384)
    with torch.no_grad():
        assert_same(encoder(images), vit_source.forward_features((images - 0.5) / 0.5)[:, 1:])


def test_clip_bpe_tokenizer_is_open_clip_s():
    """The NVlabs path's offline tokenizer gives open_clip's ids (what NVlabs' tokenizer gives)."""
    ids = clip_bpe_tokenizer(77)(TEXTS)["input_ids"]
    expected = open_clip.tokenize(TEXTS)[:, : ids.shape[1]]
    assert torch.equal(ids * (expected != 0), expected)
