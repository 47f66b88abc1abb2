"""The fine-tuning loop the baselines share: batches of (image, expression) pairs, never masks.

A method hands in a loss module — an `nn.Module` whose `forward(images, texts, image_ids)` returns
the batch loss — and its optimiser's parameter groups. The loop owns what is the same for every
method: deterministic batches from `harness.data.loader.train_batches`, the learning-rate
schedule, DDP wrapping, the tqdm bar, the NaN/inf check and the training log.
"""

from __future__ import annotations

import math
import time

import torch
from tqdm import tqdm

from harness import distributed
from harness.data.loader import train_batches
from harness.data.types import RefDataset
from harness.errors import ConfigError, TrainingDivergedError


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


def _check_finite(loss: torch.Tensor, method: str, seed: int, step: int, last_finite) -> None:
    if not torch.isfinite(loss):
        raise TrainingDivergedError(
            f"{method}: loss became {loss.item()} at step {step} (seed {seed}); "
            f"last finite loss {last_finite}; lower train.lr or check the inputs")


def run_training(method: str, loss_module: torch.nn.Module, param_groups: list[dict],
                 train: RefDataset, train_cfg: dict, seed: int, input_size: int,
                 progress: bool = True) -> dict:
    """Train `loss_module` on `train`; returns {"loss_per_epoch", "steps", "seconds", ...}.

    train_cfg keys: epochs, batch_size (global), weight_decay, schedule ('constant'|'cosine'),
    warmup_steps, max_steps (optional cap, for smoke profiles), grad_clip (optional).
    """
    epochs = int(train_cfg.get("epochs", 1))
    global_batch = int(train_cfg.get("batch_size", 32))
    batch = distributed.local_batch_size(global_batch)
    per_epoch = steps_per_epoch(len(train), global_batch)
    max_steps = train_cfg.get("max_steps")
    total = min(epochs * per_epoch, int(max_steps)) if max_steps else epochs * per_epoch
    optimizer = torch.optim.AdamW(param_groups, weight_decay=float(train_cfg.get("weight_decay", 0.0)))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(
        str(train_cfg.get("schedule", "constant")), total, int(train_cfg.get("warmup_steps", 0))))
    torch.manual_seed(seed)  # dropout / drop-path draws then depend on the run seed alone
    model = distributed.wrap_ddp(loss_module)
    params = [p for g in param_groups for p in g["params"]]
    grad_clip = train_cfg.get("grad_clip")

    start, step, last_finite, losses = time.perf_counter(), 0, None, []
    bar = tqdm(total=total, desc=f"fit {method} seed {seed}", disable=not progress or not distributed.is_main())
    model.train()
    for epoch in range(epochs):
        if step >= total:
            break
        epoch_losses = []
        for b in train_batches(train, input_size, batch, seed, epoch=epoch, drop_last=False,
                               rank=distributed.rank(), world_size=distributed.world_size()):
            loss = model(b["images"], b["texts"], b["image_ids"])
            _check_finite(loss, method, seed, step, last_finite)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip:
                torch.nn.utils.clip_grad_norm_(params, float(grad_clip))
            optimizer.step()
            scheduler.step()
            last_finite = loss.item()
            epoch_losses.append(last_finite)
            step += 1
            bar.update(1)
            bar.set_postfix(epoch=epoch, loss=f"{last_finite:.4f}")
            if step >= total:
                break
        losses.append(sum(epoch_losses) / max(1, len(epoch_losses)))
    bar.close()
    model.eval()
    return {"loss_per_epoch": losses, "first_loss": losses[0] if losses else None,
            "last_loss": losses[-1] if losses else None, "steps": step,
            "seconds": round(time.perf_counter() - start, 3)}
