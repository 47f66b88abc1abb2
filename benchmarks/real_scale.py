"""What bench_real_scale.py and gpu_check.py share: the real-data configs (configs/*_refcoco.py)
at their real size with random weights in the layouts users download (tests/official_checkpoints.py,
tests/official_groupvit.py), official-format RefCOCO files with COCO-size JPEGs
(tests/official_data.py `write_refer_at_scale`), and one method's training steps and evaluation
pass measured as `harness run` runs them (the method's own `fit` through harness/run/fit_loop.py,
`evaluate_split` of harness/run/eval_pass.py).

`tiny=True` swaps the backbones for the small ones of tests/test_real_data_runs.py (same layouts,
64 px ViT): the CPU rehearsal of the GPU check (`gpu_check.sh --device cpu --dry-run`).
"""

from __future__ import annotations

import contextlib
import json
import math
import resource
import time
from pathlib import Path
from typing import Optional

import torch

METHODS = ("sag", "tseg", "maskclip", "groupvit")
# RefCOCO (unc) as released: expressions per split and train images.
REFCOCO = dict(train=120_624, train_images=16_994, val=10_834, testA=5_657, testB=5_095)
EVAL_EXPRESSIONS = REFCOCO["val"] + REFCOCO["testA"] + REFCOCO["testB"]
TINY_BERT = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
GB = 1024 ** 3


# ------------------------------------------------------------------------------- checkpoints

def write_checkpoints(folder: Path, methods, tiny: bool = False) -> dict:
    """Checkpoint files for `methods`, written once into `folder` (kept for reruns): {kind: path}."""
    from tests import official_checkpoints as official

    folder = Path(folder) / ("tiny" if tiny else "real")
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    if {"sag", "tseg"} & set(methods):
        paths["vit"] = _once(folder / "vit.safetensors", lambda p: official.write_timm_safetensors(p, _vit(tiny)))
        paths["bert"] = _once(folder / "bert-base-uncased", lambda p: _write_bert(p, tiny))
    if "maskclip" in methods:
        paths["clip"] = _once(folder / "open_clip_model.safetensors", lambda p: official.write_open_clip_safetensors(
            p, name="ViT-S-32" if tiny else "ViT-B-16"))
    if "groupvit" in methods:
        from tests import official_groupvit

        paths["groupvit"] = _once(folder / "group_vit_gcc_yfcc_30e.pth", lambda p: official_groupvit.write_nvlabs_groupvit(
            p, official_groupvit.random_nvlabs_state()))
    return paths


def _once(path: Path, write) -> Path:
    if not path.exists():
        write(path)
    return path


def _vit(tiny: bool):
    from tests.official_checkpoints import random_vit_small_384, randomise_
    import timm

    if not tiny:
        return random_vit_small_384()
    torch.manual_seed(4)
    return randomise_(timm.create_model("vit_tiny_patch16_224", pretrained=False), 4)


def _write_bert(folder: Path, tiny: bool) -> None:
    from transformers import BertConfig, BertForPreTraining

    from tests.official_checkpoints import BERT_BASE_UNCASED, random_bert_for_pretraining, randomise_, write_bert_hub_folder

    if not tiny:
        write_bert_hub_folder(folder, random_bert_for_pretraining(), legacy_names=False)
        return
    config = {**BERT_BASE_UNCASED, **TINY_BERT}
    torch.manual_seed(3)
    write_bert_hub_folder(folder, randomise_(BertForPreTraining(BertConfig(**config)), 3), legacy_names=False)
    (folder / "config.json").write_text(json.dumps(config, indent=2))


def method_overrides(method: str, ckpt: dict, tiny: bool = False) -> list[str]:
    """The `--set` keys that point the real config at the checkpoint files."""
    vit = [f"method.vit.checkpoint={ckpt.get('vit')}", f"method.bert.checkpoint={ckpt.get('bert')}"]
    if tiny:
        vit += ["method.vit.arch=vit_tiny_patch16_224", "method.vit.img_size=64", "method.input_size=64"]
    return {"sag": vit, "tseg": vit,
            "maskclip": [f"method.clip.checkpoint={ckpt.get('clip')}"] + (["method.clip.name=ViT-S-32"] if tiny else []),
            "groupvit": [f"method.backbone.checkpoint={ckpt.get('groupvit')}"]}[method]


def write_data(root: Path, train_images: int, eval_images: int) -> Path:
    """A DATA_ROOT of official-format RefCOCO (unc) at COCO's image size, one per size under
    `root` (kept for reruns): 2 expressions per image; val holds 2 × eval_images."""
    from tests.official_data import write_refer_at_scale

    folder = Path(root) / f"train{train_images}-val{eval_images}"
    if not (folder / "complete").exists():
        write_refer_at_scale(folder, {"train": train_images, "val": eval_images, "testA": 1, "testB": 1})
        (folder / "complete").write_text("")
    return folder


# ------------------------------------------------------------------------------- one method

def build(method: str, overrides: list[str], data_root: Path, device: torch.device, workers: int = 0):
    """(segmenter, resolved config, train split) as the runner builds them, seed 0."""
    from harness.config import load_run_config
    from harness.data.datasets import open_split
    from harness.paths import cache_dir
    from harness.registry import segmenter_class
    from harness.seeding import seed_everything
    from harness.segmenter import RunEnv

    resolved = load_run_config(method, "refcoco", "full", overrides)
    seed_everything(0)
    train = open_split("refcoco", "train", data_root=data_root)
    env = RunEnv(dataset="refcoco", data_root=Path(data_root), cache_dir=cache_dir(), device=device,
                 progress=False, workers=workers)
    return segmenter_class(method)(resolved.cfg["method"], env), resolved, train


def parameters(segmenter) -> dict:
    params = {id(p): p for m in segmenter.modules().values() for p in m.parameters()}
    return {"params": sum(p.numel() for p in params.values()),
            "param_bytes": sum(p.numel() * p.element_size() for p in params.values())}


def fit(segmenter, train, train_cfg: dict, device, workers: int = 0, batch: Optional[int] = None,
        steps: int = 1, amp: Optional[str] = None, count_flops: bool = False, saved_bytes: bool = False) -> dict:
    """`steps` optimiser steps of the method's own fit: {seconds_per_step, loss, flops_per_step?,
    saved_bytes? (the activations kept for backward: unique storages saved by autograd)}."""
    from torch.utils.flop_counter import FlopCounterMode

    from harness.run.fit_loop import FitContext

    cfg = dict(train_cfg, max_steps=steps, **({"batch_size": batch} if batch else {}))
    if amp:
        cfg["amp"] = amp
    counter = FlopCounterMode(display=False) if count_flops else None
    storages: dict = {}

    def pack(tensor):
        storages[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
        return tensor

    hooks = torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t) if saved_bytes else None
    _sync(device)
    with counter or contextlib.nullcontext(), hooks or contextlib.nullcontext():
        log = segmenter.fit(train, cfg, 0, FitContext(device=device, progress=False, workers=workers))
    _sync(device)
    out = {"steps": log["steps"], "seconds_per_step": log["seconds"] / max(1, log["steps"]),
           "loss": log["last_loss"], "finite": all(math.isfinite(v) for v in log["loss"])}
    if counter is not None:
        out["flops_per_step"] = counter.get_total_flops() / max(1, log["steps"])
    if saved_bytes:
        out["saved_bytes"] = sum(storages.values())
    return out


def evaluate(segmenter, resolved, data_root: Path, n: int, workers: int = 0, count_flops: bool = False) -> dict:
    """One evaluation pass over the first `n` val expressions: {expressions_per_s, the seconds per
    expression outside `predict`, flops_per_expression?}."""
    from torch.utils.flop_counter import FlopCounterMode

    from harness.data.datasets import open_split
    from harness.run.eval_pass import evaluate_split

    val = open_split("refcoco", "val", data_root=data_root, limit=n)
    counter = FlopCounterMode(display=False) if count_flops else None
    started, timings = time.perf_counter(), {}
    with counter or contextlib.nullcontext():
        summary, _ = evaluate_split(segmenter, val, resolved.cfg, [0.5], False, timings=timings, progress=False,
                                    workers=workers)
    seconds = time.perf_counter() - started
    out = {"eval_n": len(val), "expressions_per_s": len(val) / seconds, "mIoU": summary["tau=0.50"]["mIoU"],
           # what is not the model: reading images and masks, the protocol at 640×480, the metrics
           "eval_protocol_s_per_expression": (seconds - timings["predict"]) / len(val)}
    if counter is not None:
        out["flops_per_expression"] = counter.get_total_flops() / len(val)
    return out


def peak_memory(device) -> dict:
    """Peak resident memory of this process (GB), and the GPU's peak allocated / reserved."""
    out = {"peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GB}
    if torch.device(device).type == "cuda":
        out["cuda_peak_allocated_gb"] = torch.cuda.max_memory_allocated(device) / GB
        out["cuda_peak_reserved_gb"] = torch.cuda.max_memory_reserved(device) / GB
    return out


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)

