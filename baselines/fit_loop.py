"""The fine-tuning loop the baselines share: batches of (image, expression) pairs, never masks.

A method hands in a loss module — an `nn.Module` whose `forward(images, texts, image_ids)` returns
the batch loss — and its optimiser's parameter groups. The loop owns what is the same for every
method: deterministic batches from `harness.data.loader.train_batches`, the learning-rate
schedule, DDP wrapping, the tqdm bar, the NaN/inf check, the training log, and a checkpoint at
the end of every epoch (`harness.train_state`) from which `run --resume` continues a killed fit
with the same result as an uninterrupted one.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from tqdm import tqdm

from harness import distributed
from harness.data.loader import train_batches
from harness.data.types import RefDataset
from harness.errors import ConfigError, TrainingDivergedError
from harness.train_state import TrainState, rng_attributes


def steps_per_epoch(n_samples: int, global_batch: int) -> int:
    return max(1, math.ceil(n_samples / global_batch))


def lr_lambda(schedule: str, total_steps: int, warmup_steps: int):
    """Multiplier of the base lr at a step: linear warm-up, then constant or cosine to 0."""
    if schedule not in ("constant", "cosine"):
        raise ConfigError(f"train.schedule={schedule!r}; expected 'constant' or 'cosine'")

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        if schedule == "constant":
            return 1.0
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def check_finite(loss: torch.Tensor, method: str, seed: int, step: int, last_finite) -> None:
    """TrainingDivergedError on every rank when any rank's loss is NaN/inf (so none hangs in DDP)."""
    finite = bool(torch.isfinite(loss.detach()).all())
    if distributed.all_true(finite):
        return
    value = f"{loss.item()}" if not finite else "non-finite on another process"
    raise TrainingDivergedError(
        f"{method} seed {seed}: loss became {value} at step {step}; last finite loss "
        f"{last_finite}; lower train.lr or check the inputs")


@dataclass
class Schedule:
    """What the loop runs: epochs, per-rank batch, total optimiser steps, clipping."""

    epochs: int
    local_batch: int
    total_steps: int
    grad_clip: float


def plan_schedule(train_cfg: dict, n_samples: int) -> Schedule:
    epochs = int(train_cfg.get("epochs", 1))
    global_batch = int(train_cfg.get("batch_size", 32))
    total = epochs * steps_per_epoch(n_samples, global_batch)
    max_steps = train_cfg.get("max_steps")
    return Schedule(epochs=epochs, local_batch=distributed.local_batch_size(global_batch),
                    total_steps=min(total, int(max_steps)) if max_steps else total,
                    grad_clip=float(train_cfg.get("grad_clip") or 0.0))


def run_training(method: str, loss_module: torch.nn.Module, param_groups: list[dict],
                 train: RefDataset, train_cfg: dict, seed: int, input_size: int,
                 progress: bool = True) -> dict:
    """Train `loss_module` on `train`; returns {"loss_per_epoch", "steps", "seconds", ...}.

    train_cfg keys: epochs, batch_size (global), weight_decay, schedule ('constant'|'cosine'),
    warmup_steps, max_steps (optional cap, for smoke profiles), grad_clip (optional); and from
    the runner: state_dir, state_tag, resume (see harness.train_state).
    """
    plan = plan_schedule(train_cfg, len(train))
    optimizer = torch.optim.AdamW(param_groups, weight_decay=float(train_cfg.get("weight_decay", 0.0)))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(
        str(train_cfg.get("schedule", "constant")), plan.total_steps,
        int(train_cfg.get("warmup_steps", 0))))
    torch.manual_seed(seed)  # dropout / drop-path draws then depend on the run seed alone
    state = TrainState.from_train_cfg(train_cfg, method, seed)
    modules, rngs = {"loss_module": loss_module}, rng_attributes(loss_module)
    start = state.maybe_resume(modules, optimizer, scheduler, rngs)
    model = distributed.wrap_ddp(loss_module)
    log = {"loss_per_epoch": list(start.log.get("loss_per_epoch", [])),
           "last_finite": start.log.get("last_finite")}
    step, started = start.step, time.perf_counter()
    bar = tqdm(total=plan.total_steps, initial=step, desc=f"fit {method} seed {seed}",
               disable=not progress or not distributed.is_main())
    model.train()
    for epoch in range(start.epoch, plan.epochs):
        if step >= plan.total_steps:
            break
        epoch_loss, step = _train_epoch(model, optimizer, scheduler, train, plan, input_size,
                                        (method, seed, epoch), step, log, bar)
        log["loss_per_epoch"].append(epoch_loss)
        state.save(epoch + 1, step, modules, optimizer, scheduler, log=log, private_rngs=rngs)
    bar.close()
    model.eval()
    losses = log["loss_per_epoch"]
    return {"loss_per_epoch": losses, "first_loss": losses[0] if losses else None,
            "last_loss": losses[-1] if losses else None, "steps": step,
            "resumed_from_epoch": start.epoch if start.resumed else None,
            "seconds": round(time.perf_counter() - started, 3)}


def _train_epoch(model, optimizer, scheduler, train, plan: Schedule, input_size: int, where,
                 step: int, log: dict, bar) -> tuple[float, int]:
    """One epoch (or up to the step cap); returns (mean loss over every rank, global step)."""
    method, seed, epoch = where
    params = [p for group in optimizer.param_groups for p in group["params"]]
    epoch_losses = []
    for batch in train_batches(train, input_size, plan.local_batch, seed, epoch=epoch,
                               drop_last=False, rank=distributed.rank(),
                               world_size=distributed.world_size()):
        loss = model(batch["images"], batch["texts"], batch["image_ids"])
        check_finite(loss, method, seed, step, log["last_finite"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if plan.grad_clip:
            torch.nn.utils.clip_grad_norm_(params, plan.grad_clip)
        optimizer.step()
        scheduler.step()
        log["last_finite"] = loss.item()
        epoch_losses.append(log["last_finite"])
        step += 1
        bar.update(1)
        bar.set_postfix(epoch=epoch, loss=f"{log['last_finite']:.4f}")
        if step >= plan.total_steps:
            break
    # Ranks see equal shares, so the mean of their means is the one-process epoch mean.
    rank_means = distributed.all_gather_objects(sum(epoch_losses) / max(1, len(epoch_losses)))
    return sum(rank_means) / len(rank_means), step
