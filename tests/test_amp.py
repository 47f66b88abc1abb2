"""AMP through the one fit loop (harness/run/fit_loop.py) at a real-data config: SaG as
configs/sag_refcoco.py builds it (ViT-S/16 at 384 px, BERT-base, K = 36 slots, D = 512), with
random weights written in the layouts users download (tests/official_checkpoints.py), trains one
step under `train.amp=bf16` on the CPU, on the official-format RefCOCO fixture.

The step must really run in bfloat16 (the ViT's output is bf16), give a finite loss, reach every
part of the network with finite gradients, and move the weights; the fp32 master weights stay fp32.
"""

import pytest
import torch

from harness.config import load_run_config
from harness.data.datasets import open_split
from harness.registry import segmenter_class
from harness.run.fit_loop import FitContext
from harness.segmenter import RunEnv
from tests.official_checkpoints import (random_bert_for_pretraining, random_vit_small_384, write_bert_hub_folder,
                                        write_timm_safetensors)
from tests.official_data import write_refer


@pytest.fixture(scope="module")
def real_sag(tmp_path_factory):
    """(SaG segmenter at configs/sag_refcoco.py, its train config with train.amp=bf16, the RefCOCO
    fixture's train split)."""
    folder = tmp_path_factory.mktemp("amp")
    vit = write_timm_safetensors(folder / "model.safetensors", random_vit_small_384())
    bert = write_bert_hub_folder(folder / "bert-base-uncased", random_bert_for_pretraining(), legacy_names=False)
    write_refer(folder / "data", "refcoco")
    train = open_split("refcoco", "train", data_root=folder / "data")
    resolved = load_run_config("sag", "refcoco", "full", [
        f"method.vit.checkpoint={vit}", f"method.bert.checkpoint={bert}",
        "train.amp=bf16", "train.batch_size=2", "train.max_steps=1", "train.warmup_steps=1"])
    env = RunEnv(dataset="refcoco", data_root=folder / "data", cache_dir=folder / "cache", progress=False)
    return segmenter_class("sag")(resolved.cfg["method"], env), dict(resolved.cfg["train"]), train


def test_a_real_config_sag_step_under_bf16_autocast_is_finite_and_moves_the_weights(real_sag, one_thread):
    segmenter, train_cfg, train = real_sag
    net = segmenter.net
    assert (net.vit.embed_dim, net.bert.hidden_size, net.grid, net.text_proj.out_features) == (384, 768, (24, 24), 512)
    assert net.discovery.slots.num_slots == 36 and len(train) == 2
    before = {name: p.detach().clone() for name, p in net.named_parameters()}
    dtypes, hooks = {}, []

    def record(part):
        def hook(module, args, out):
            dtypes.setdefault(part, out.dtype)
        return hook

    for part in ("vit", "bert", "discovery", "fusion"):   # the first Linear of each part
        linear = next(m for m in getattr(net, part).modules() if isinstance(m, torch.nn.Linear))
        hooks.append(linear.register_forward_hook(record(part)))
    try:
        log = segmenter.fit(train, train_cfg, 0, FitContext(progress=False))
    finally:
        for hook in hooks:
            hook.remove()
    assert set(dtypes.values()) == {torch.bfloat16} and len(dtypes) == 4   # the step ran under bf16 autocast
    assert log["steps"] == 1 and torch.isfinite(torch.tensor(log["loss"])).all()
    assert log["c3"][0] > 0 and log["rec"][0] > 0
    params = dict(net.named_parameters())
    assert all(p.dtype == torch.float32 for p in params.values())
    for part in ("vit.", "bert.", "discovery.", "fusion.", "decoder.", "text_proj."):
        trainable = [p for name, p in params.items() if name.startswith(part) and p.requires_grad]
        grads = [p.grad for p in trainable if p.grad is not None]   # (BERT's unused pooler has none)
        assert len(grads) > 0.9 * len(trainable), part
        assert all(torch.isfinite(g).all() for g in grads) and any(g.abs().sum() > 0 for g in grads), part
        moved = sum(int(not torch.equal(params[n].detach(), before[n])) for n in params if n.startswith(part))
        assert moved > 0.9 * len(trainable), part               # nearly every tensor of every part moved
