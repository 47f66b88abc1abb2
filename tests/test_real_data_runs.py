"""Every method trains two steps and predicts on each real dataset family, from the official files
(issue 12): `python -m harness run` with the real configs (configs/<method>_refcoco.py) on the
format-faithful REFER and VGPhraseCut fixtures (tests/official_data.py) and checkpoint files in
the layouts users download (tests/official_checkpoints.py, tests/official_groupvit.py).

Real-size weights would take minutes on 2 cores, so each file holds a smaller architecture of the
same layout, and the run names it through --set, as a user with another size would:
    CLIP       open_clip safetensors of ViT-S-32            method.clip.name=ViT-S-32
    ViT        timm safetensors of vit_tiny_patch16_224     method.vit.arch / img_size, input 64
    BERT       hub bert-base-uncased folder (legacy pytorch_model.bin, BertForPreTraining heads,
               the 30,522-token vocabulary) at 1 layer × 32 wide
    GroupViT   NVlabs .pth (OmegaConf config pickled beside "model") at 1+1+1 layers × 64 wide
"""

import functools
import json
import shutil
from pathlib import Path

import pytest
import torch

from harness.cli import main
from tests import official_groupvit
from tests.official_checkpoints import (BERT_BASE_UNCASED, randomise_, write_bert_hub_folder,
                                        write_open_clip_safetensors, write_timm_safetensors)
from tests.official_data import write_phrasecut, write_refer

SMALL_BERT = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
SMALL_NVLABS = dict(c=64, depths=(1, 1, 1), groups=(8, 4, 0), outputs=(8, 4), patch=16, image=64, width=64,
                    layers=1, out_dim=32, inner=64)
SMALL_GROUPVIT_ARCH = dict(image_size=64, patch_size=16, hidden_size=64, intermediate_size=256,
                           num_attention_heads=2, depths=[1, 1, 1], num_group_tokens=[8, 4, 0],
                           num_output_groups=[8, 4, 4], text_hidden_size=64, text_intermediate_size=256,
                           text_layers=1, text_heads=2, context_length=77, projection_dim=32,
                           projection_intermediate_dim=64)
TRAIN_TWO_STEPS = ["train.batch_size=1"]      # each fixture's train split holds 2 expressions


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("real-data")
    write_refer(root, "refcoco")
    write_phrasecut(root / "phrasecut")
    # VGPhraseCut's train list has the val list's format; the fixture writes val only.
    shutil.copy(root / "phrasecut" / "refer_val.json", root / "phrasecut" / "refer_train.json")
    return root


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict:
    import timm
    from transformers import BertConfig, BertForPreTraining

    folder = tmp_path_factory.mktemp("real-checkpoints")
    _, clip = write_open_clip_safetensors(folder / "open_clip_model.safetensors", name="ViT-S-32")
    torch.manual_seed(4)
    vit = randomise_(timm.create_model("vit_tiny_patch16_224", pretrained=False), 4)
    torch.manual_seed(3)
    bert_model = randomise_(BertForPreTraining(BertConfig(**{**BERT_BASE_UNCASED, **SMALL_BERT})), 3)
    bert = write_bert_hub_folder(folder / "bert-base-uncased", bert_model, legacy_names=True)
    (bert / "config.json").write_text(json.dumps({**BERT_BASE_UNCASED, **SMALL_BERT}, indent=2))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(official_groupvit, "nvlabs_groupvit_shapes",
                   functools.partial(official_groupvit.nvlabs_groupvit_shapes, **SMALL_NVLABS))
        state = official_groupvit.random_nvlabs_state()
    groupvit = official_groupvit.write_nvlabs_groupvit(folder / "group_vit_small.pth", state)
    return {"clip": clip, "vit": write_timm_safetensors(folder / "model.safetensors", vit), "bert": bert,
            "groupvit": groupvit}


def method_overrides(method: str, ckpt: dict) -> list[str]:
    vit = [f"method.vit.checkpoint={ckpt['vit']}", "method.vit.arch=vit_tiny_patch16_224",
           "method.vit.img_size=64", "method.input_size=64", f"method.bert.checkpoint={ckpt['bert']}"]
    return {
        "sag": vit + ["train.max_steps=2", "train.warmup_steps=1"],
        "tseg": vit + ["train.max_steps=2"],
        "maskclip": [f"method.clip.checkpoint={ckpt['clip']}", "method.clip.name=ViT-S-32", "train.max_steps=2"],
        "groupvit": [f"method.backbone.checkpoint={ckpt['groupvit']}", "method.input_size=64",
                     f"method.backbone.arch={SMALL_GROUPVIT_ARCH!r}", "train.max_steps=2"],
    }[method]


@pytest.mark.parametrize("dataset,split", [("refcoco", "val"), ("phrasecut", "val")])
@pytest.mark.parametrize("method", ["sag", "tseg", "maskclip", "groupvit"])
def test_method_trains_two_steps_and_predicts_on_real_files(method, dataset, split, data_root, checkpoints,
                                                            tmp_path):
    root = data_root / "phrasecut" if dataset == "phrasecut" else data_root
    out = tmp_path / "runs"
    args = ["run", "--methods", method, "--dataset", dataset, "--data-root", str(root), "--splits", split,
            "--seeds", "0", "--limit", "4", "--profile", "smoke", "--out", str(out), "--no-progress",
            "--set", *TRAIN_TWO_STEPS, *method_overrides(method, checkpoints)]
    assert main(args) == 0
    run_dir = out / dataset / method / "seed0"
    record = json.loads((run_dir / "config.json").read_text())
    assert record["train_log"]["steps"] == 2                      # two optimiser steps on the train split
    metrics = json.loads((run_dir / "metrics.json").read_text())
    row = metrics["splits"][split]["tau=0.50"]
    assert row["n"] == min(4, {"refcoco": 3, "phrasecut": 2}[dataset])
    assert 0.0 <= row["mIoU"] <= 100.0
