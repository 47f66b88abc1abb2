"""The SaG fit loop (spec A.8): AdamW with a lower backbone LR, global-norm clipping, the loss
warm-up of the release, then a cosine schedule stepped per iteration."""

from __future__ import annotations

import math
import time

import torch
from tqdm import tqdm

from harness import distributed
from harness.errors import ConfigError, TrainingDivergedError
from harness.train_state import TrainState, rng_attributes
from sag_model.losses import loss_warmup_factor

TRAIN_DEFAULTS = dict(batch_size=32, lr=1e-5, vit_lr_scale=0.1, bert_lr_scale=1.0, slot_lr_scale=1.0, weight_decay=1e-4,
                      grad_clip=0.1, warmup_steps=5000, epochs=50, max_steps=None)


def resolve_train_cfg(train_cfg: dict) -> dict:
    cfg = {**TRAIN_DEFAULTS, **dict(train_cfg or {})}
    for key in ("batch_size", "epochs"):
        if not isinstance(cfg[key], int) or cfg[key] < 1:
            raise ConfigError(f"train.{key}={cfg[key]!r}: expected a positive integer")
    if "steps" in cfg:
        raise ConfigError("train.steps: renamed train.max_steps (one step cap for every method)")
    if cfg["max_steps"] is not None and (not isinstance(cfg["max_steps"], int) or cfg["max_steps"] < 1):
        raise ConfigError(f"train.max_steps={cfg['max_steps']!r}: expected a positive integer or None")
    if not cfg["lr"] > 0:
        raise ConfigError(f"train.lr={cfg['lr']!r}: expected a positive learning rate")
    return cfg


def build_optimizer(net, cfg: dict) -> torch.optim.AdamW:
    """Four groups: the ViT at lr x vit_lr_scale, BERT at lr x bert_lr_scale, the slot Gaussians
    (mu, logvar) at lr x slot_lr_scale (1 in the release), the rest at lr.

    Weight decay on every parameter (biases, norms and the slot Gaussians included), as released.
    A scale of 0 freezes that backbone (no gradient, eval mode: no drop-path noise).
    """
    net.vit.requires_grad_(cfg["vit_lr_scale"] > 0)
    net.bert.requires_grad_(cfg["bert_lr_scale"] > 0)
    vit_ids = {id(p) for p in net.vit.parameters()}
    bert_ids = {id(p) for p in net.bert.parameters()}
    slot_ids = {id(p) for p in net.discovery.slots.parameters()}
    params = [p for p in net.parameters() if p.requires_grad]
    groups = [
        dict(params=[p for p in params if id(p) in vit_ids], lr=cfg["lr"] * cfg["vit_lr_scale"]),
        dict(params=[p for p in params if id(p) in bert_ids], lr=cfg["lr"] * cfg["bert_lr_scale"]),
        dict(params=[p for p in params if id(p) in slot_ids], lr=cfg["lr"] * cfg["slot_lr_scale"]),
        dict(params=[p for p in params if id(p) not in vit_ids | bert_ids | slot_ids], lr=cfg["lr"]),
    ]
    return torch.optim.AdamW([g for g in groups if g["params"]], weight_decay=cfg["weight_decay"])


def lr_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    """Constant during the loss warm-up, then cosine over the whole run (the release's
    CosineAnnealingLR with T_max = all iterations, stepped only after the warm-up)."""
    if step < warmup_steps:
        return 1.0
    return 0.5 * (1.0 + math.cos(math.pi * (step - warmup_steps) / max(1, total_steps)))


def fit_sag(net, train, train_cfg: dict, seed: int, input_size: int, device, progress: bool = True,
            method: str = "sag") -> dict:
    """Train `net` (a SaGNet) on the image–text pairs of `train`; returns the training log."""
    from harness.data.loader import train_batches

    cfg = resolve_train_cfg(train_cfg)
    batch = distributed.local_batch_size(cfg["batch_size"])
    per_epoch = math.ceil(len(train) / cfg["batch_size"])
    total = min(per_epoch * cfg["epochs"], cfg["max_steps"] or per_epoch * cfg["epochs"])
    optimizer = build_optimizer(net, cfg)
    model = distributed.wrap_ddp(net.to(device).train())
    for backbone, scale in ((net.vit, cfg["vit_lr_scale"]), (net.bert, cfg["bert_lr_scale"])):
        if not scale:
            backbone.eval()
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    log = dict(steps=0, epochs=0, loss=[], c3=[], rec=[], batch_size=cfg["batch_size"], total_steps=total)
    last_finite, step, epoch, started = None, 0, 0, time.perf_counter()
    state, rngs = TrainState.from_train_cfg(train_cfg, method, seed), rng_attributes(net)
    start = state.maybe_resume({"net": net}, optimizer, private_rngs=rngs)
    step, epoch = start.step, start.epoch
    log.update(start.log)
    last_finite = log["loss"][-1] if log["loss"] else None
    bar = tqdm(total=total, initial=step, desc=f"{method} fit (seed {seed})", disable=not progress or not distributed.is_main())
    while step < total:
        for chunk in train_batches(train, input_size, batch, seed, epoch=epoch,
                                   rank=distributed.rank(), world_size=distributed.world_size()):
            for group, base in zip(optimizer.param_groups, base_lrs):
                group["lr"] = base * lr_factor(step, cfg["warmup_steps"], total)
            losses = model(chunk["images"].to(device), chunk["texts"])
            value = float(losses["total"].detach())
            if not distributed.all_true(math.isfinite(value)):
                raise TrainingDivergedError(f"{method} seed {seed}: loss became {value} at step {step} "
                                            f"(last finite loss {last_finite})")
            optimizer.zero_grad(set_to_none=True)
            (losses["total"] * loss_warmup_factor(step, cfg["warmup_steps"])).backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), cfg["grad_clip"])
            optimizer.step()
            last_finite = value
            for key, name in (("loss", "total"), ("c3", "c3"), ("rec", "rec")):
                log[key].append(round(float(losses[name].detach()), 5))
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{value:.4f}")
            if step >= total:
                break
        epoch += 1
        state.save(epoch, step, {"net": net}, optimizer, log=log, private_rngs=rngs)
    bar.close()
    net.eval()
    log.update(steps=step, epochs=epoch, fit_seconds=round(time.perf_counter() - started, 2),
               first_loss=log["loss"][0] if log["loss"] else None, last_loss=last_finite)
    return log
