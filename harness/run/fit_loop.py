"""The one training loop of the harness: every method's fine-tuning and every stand-in pretraining.

A caller hands it a loss and a `Recipe` (AdamW's parameter groups, each with its base lr, the
`Schedule`, clipping, AMP); the loop owns what is the same everywhere: the learning rate of each
step, the NaN/inf check, zero_grad → backward → clip → step, the tqdm bar and the loss curve.

Two ways in:

- `fit_epochs`: epochs of (image, expression) batches from `harness.data.loader.TrainLoader`
  (MaskCLIP, GroupViT, TSEG, SaG). The loss module is DDP-wrapped, the NaN check is agreed across
  ranks, and the state is checkpointed at the end of every epoch (`FitContext.state`,
  harness/run/train_state.py), from which `run --resume` continues a killed fit with the same result
  as an uninterrupted one.
- `fit_steps`: N steps of `step_loss(step)` (the stand-in pretrainings: their own batches, no
  epochs, no resume, one process).

AMP (`train.amp`, absent by default: fp32): "bf16" runs the loss under `torch.autocast` in
bfloat16 on the CPU or a CUDA GPU; "fp16" runs it in float16 on a CUDA GPU with a
`torch.amp.GradScaler` (its state is checkpointed with the fit). Backward, clipping and the
optimiser step stay outside autocast, on the fp32 weights; prediction is not autocast.

The order of random draws, of zero_grad/backward/step, and the float arithmetic of the lr are
those of the four loops this one replaced, so every figure stayed byte-identical.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch
from tqdm import tqdm

from harness import distributed
from harness.data.loader import TrainLoader
from harness.errors import ConfigError, TrainingDivergedError
from harness.run.train_state import TrainState, rng_attributes

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}

# How a schedule's lr is rounded. The loops this one replaced wrote the same curves three ways,
# and the last bit of the lr shows in the figures, so each keeps its own:
#   "factor":   lr = base * f(step); cosine angle pi * (elapsed / period)     (method fine-tuning)
#   "pi_first": lr = base * f(step); cosine angle (pi * elapsed) / period     (SaG, GroupViT stand-in)
#   "lr_ramp":  warm-up lr = base * (step + 1) / warmup; cosine as "factor"  (CLIP/ViT/BERT stand-ins)
FLOAT_ORDERS = ("factor", "pi_first", "lr_ramp")


@dataclass(frozen=True)
class FitContext:
    """What `fit` is handed besides the user's train config: the training state to checkpoint
    into and maybe resume from (harness/run/train_state.py; off by default), the device, the bar,
    and how many DataLoader workers decode the images (0: the main process; not in the hash,
    since the batches are the same)."""

    state: TrainState = field(default_factory=lambda: TrainState(None))
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    progress: bool = True
    workers: int = 0

    @classmethod
    def of(cls, env: "RunEnv", state: Optional[TrainState] = None) -> "FitContext":
        """The run's device, progress setting and loader workers, with `state` (None: no checkpoints)."""
        return cls(state or TrainState(None), env.device, env.progress, env.workers)


@dataclass(frozen=True)
class Schedule:
    """Learning rate of each optimiser step, from each parameter group's base lr."""

    total_steps: int
    warmup_steps: int = 0
    warmup: str = "linear"          # "linear": ramp (step + 1) / warmup; "hold": the base lr
                                    # (SaG warms up its loss instead: `Recipe.loss_scale`)
    decay: str = "constant"         # after the warm-up: "constant" or "cosine" (to 0)
    cosine_over: str = "after_warmup"   # the cosine's period: total - warmup steps, or "total" (SaG)
    float_order: str = "factor"     # see FLOAT_ORDERS

    def __post_init__(self):
        if self.decay not in ("constant", "cosine"):
            raise ConfigError(f"train.schedule={self.decay!r}; expected 'constant' or 'cosine'")
        if self.warmup not in ("linear", "hold") or self.cosine_over not in ("after_warmup", "total") \
                or self.float_order not in FLOAT_ORDERS:
            raise ValueError(f"unknown schedule shape {self}")

    def lr(self, base: float, step: int) -> float:
        warmup = self.warmup_steps
        if step < warmup:
            if self.warmup == "hold":
                return base * 1.0
            if self.float_order == "lr_ramp":
                return base * (step + 1) / warmup
            return base * ((step + 1) / warmup)
        if self.decay == "constant":
            return base * 1.0
        period = max(1, self.total_steps - (warmup if self.cosine_over == "after_warmup" else 0))
        elapsed = min(step - warmup, period)
        angle = math.pi * elapsed / period if self.float_order == "pi_first" else math.pi * (elapsed / period)
        return base * (0.5 * (1.0 + math.cos(angle)))


@dataclass
class Recipe:
    """How the parameters move: AdamW over `groups` (each dict with "params" and its base "lr")."""

    groups: list[dict]
    weight_decay: float
    schedule: Schedule
    grad_clip: float = 0.0          # max global gradient norm; 0: no clipping
    clip_params: Optional[list] = None   # what the clipped norm spans (None: the groups' params)
    loss_scale: Optional[Callable[[int], float]] = None   # backward on loss × loss_scale(step)
    amp: Optional[str] = None       # None (fp32) | "bf16" (CPU or CUDA) | "fp16" (CUDA, GradScaler)


def check_finite(loss: torch.Tensor, what: str, step: int, last_finite, agreed: bool = True) -> None:
    """TrainingDivergedError when the loss is NaN/inf. `agreed`: on every rank when any rank's
    loss is (one all-reduce, so that none hangs in DDP); else this process alone decides."""
    finite = bool(torch.isfinite(loss.detach()).all())
    if (distributed.all_true(finite) if agreed else finite):
        return
    value = f"{loss.item()}" if not finite else "non-finite on another process"
    raise TrainingDivergedError(f"{what}: loss became {value} at step {step}; last finite loss "
                                f"{last_finite}; lower the learning rate or check the inputs")


def curve_summary(what: str, losses: list[float], seconds: float) -> str:
    """The one-line loss-curve summary every training prints (first, middle and last step)."""
    if not losses:
        return f"{what}: no steps"
    first, mid, last = losses[0], losses[len(losses) // 2], losses[-1]
    return (f"{what}: loss {first:.3f} (first) → {mid:.3f} (mid) → {last:.3f} (last) "
            f"over {len(losses)} steps in {seconds:.1f} s")


def amp_dtype(amp: Optional[str], device_type: str) -> Optional[torch.dtype]:
    """The autocast dtype `train.amp` asks for on a device of `device_type` (None: fp32), or
    ConfigError for a mode that device cannot run."""
    if amp is None:
        return None
    if amp not in AMP_DTYPES:
        raise ConfigError(f"train.amp={amp!r}; expected one of {', '.join(AMP_DTYPES)} or None")
    if device_type not in ("cpu", "cuda"):
        raise ConfigError(f"train.amp={amp!r}: autocast is wired for cpu and cuda, not {device_type}")
    if amp == "fp16" and device_type == "cpu":
        raise ConfigError("train.amp='fp16' needs a CUDA GPU (float16 autocast with a GradScaler); "
                          "on the CPU use train.amp=bf16")
    if amp == "bf16" and device_type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"train.amp='bf16': {torch.cuda.get_device_name()} has no bfloat16; "
                          "use train.amp=fp16")
    return AMP_DTYPES[amp]


class Optimiser:
    """AdamW under a Recipe, stepped one loss at a time."""

    def __init__(self, recipe: Recipe, device: Optional[torch.device] = None):
        self.recipe = recipe
        self.optimizer = torch.optim.AdamW(recipe.groups, weight_decay=recipe.weight_decay)
        self.base_lrs = [group["lr"] for group in self.optimizer.param_groups]
        self.clip_params = (list(recipe.clip_params) if recipe.clip_params is not None
                            else [p for group in self.optimizer.param_groups for p in group["params"]])
        self.device_type = torch.device(device).type if device is not None else "cpu"
        self.amp_dtype = amp_dtype(recipe.amp, self.device_type)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype is torch.float16)

    def step(self, step: int, compute: Callable[[], object], what: str, last_finite,
             agreed: bool = True) -> tuple[float, dict]:
        """Set the lr, compute the loss (a tensor, or a dict with "total" and terms to log), check
        it, and take one optimiser step; returns (loss, {term: value})."""
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = self.recipe.schedule.lr(base, step)
        autocast = (torch.autocast(self.device_type, dtype=self.amp_dtype) if self.amp_dtype is not None
                    else contextlib.nullcontext())
        with autocast:
            out = compute()
        loss, terms = (out["total"], {k: v for k, v in out.items() if k != "total"}) \
            if isinstance(out, dict) else (out, {})
        check_finite(loss, what, step, last_finite, agreed)
        self.optimizer.zero_grad(set_to_none=True)
        scale = self.recipe.loss_scale
        self.scaler.scale(loss * scale(step) if scale is not None else loss).backward()
        if self.recipe.grad_clip:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.clip_params, self.recipe.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.item(), {k: float(v.detach()) for k, v in terms.items()}


# ------------------------------------------------------------------------------ config keys

def train_value(train_cfg: dict, key: str):
    """`train_cfg[key]`, or ConfigError naming the key: defaults live in configs, not here."""
    if key not in train_cfg:
        raise ConfigError(f"train.{key}: missing from the config (configs/ carry every training key)")
    return train_cfg[key]


def positive_int(train_cfg: dict, key: str) -> int:
    value = train_value(train_cfg, key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"train.{key}={value!r}: expected a positive integer")
    return value


def base_lr(train_cfg: dict) -> float:
    lr = float(train_value(train_cfg, "lr"))
    if not lr > 0:
        raise ConfigError(f"train.lr={lr!r}: expected a positive learning rate")
    return lr


@dataclass(frozen=True)
class EpochPlan:
    """Epochs, per-rank batch and total optimiser steps of a fit over a train split."""

    epochs: int
    local_batch: int
    total_steps: int


def plan_epochs(train_cfg: dict, n_samples: int) -> EpochPlan:
    """From train.epochs, train.batch_size (global) and the optional cap train.max_steps."""
    if "steps" in train_cfg:
        raise ConfigError("train.steps: renamed train.max_steps (one step cap for every method)")
    epochs, global_batch = positive_int(train_cfg, "epochs"), positive_int(train_cfg, "batch_size")
    total = epochs * max(1, math.ceil(n_samples / global_batch))
    if train_cfg.get("max_steps") is not None:
        total = min(total, positive_int(train_cfg, "max_steps"))
    return EpochPlan(epochs, distributed.local_batch_size(global_batch), total)


def fine_tune_recipe(train_cfg: dict, groups: list[dict], total_steps: int) -> Recipe:
    """The methods' recipe from train.weight_decay, train.schedule, train.warmup_steps and the
    optional train.grad_clip / train.amp: linear warm-up, then constant or cosine."""
    schedule = Schedule(total_steps, int(train_value(train_cfg, "warmup_steps")),
                        decay=str(train_value(train_cfg, "schedule")))
    return Recipe(groups, float(train_value(train_cfg, "weight_decay")), schedule,
                  grad_clip=float(train_cfg.get("grad_clip") or 0.0), amp=train_cfg.get("amp"))


# ------------------------------------------------------------------------------ the loops

def fit_epochs(method: str, objective: torch.nn.Module, recipe: Recipe, train, plan: EpochPlan,
               seed: int, input_size: int, ctx) -> dict:
    """Train `objective` — `forward(images, texts, image_ids)` → the batch loss, or a dict with
    "total" and terms logged per step — on `train` (no masks); `ctx` a `FitContext`.

    Returns the training log: loss per epoch and per step (and each term per step), first/last
    loss, steps, epochs, total_steps, resumed_from_epoch, seconds.
    """
    optimiser = Optimiser(recipe, ctx.device)
    torch.manual_seed(seed)  # dropout / drop-path draws then depend on the run seed alone
    modules, rngs = {"objective": objective}, rng_attributes(objective)
    if optimiser.scaler.is_enabled():   # fp16: a resumed fit continues at the scale it reached
        modules["grad_scaler"] = optimiser.scaler
    start = ctx.state.maybe_resume(modules, optimiser.optimizer, private_rngs=rngs)
    model = distributed.wrap_ddp(objective)
    log = {"loss_per_epoch": [], "loss": [], **start.log}
    step, done, started = start.step, start.epoch, time.perf_counter()
    bar = tqdm(total=plan.total_steps, initial=step, desc=f"fit {method} seed {seed}",
               disable=not ctx.progress or not distributed.is_main())
    model.train()
    loader = TrainLoader(train, input_size, plan.local_batch, seed, distributed.rank(), distributed.world_size(),
                         workers=ctx.workers, pin_memory=ctx.device.type == "cuda")
    with loader:
        for epoch in range(start.epoch, plan.epochs):
            if step >= plan.total_steps:
                break
            step = _epoch(model, optimiser, loader.epoch(epoch), plan, (f"{method} seed {seed}", seed, epoch),
                          step, log, bar, ctx.device)
            done = epoch + 1
            ctx.state.save(done, step, modules, optimiser.optimizer, log=log, private_rngs=rngs)
    bar.close()
    model.eval()
    losses = log["loss"]
    return dict(log, first_loss=losses[0] if losses else None, last_loss=losses[-1] if losses else None,
                steps=step, epochs=done, total_steps=plan.total_steps,
                resumed_from_epoch=start.epoch if start.resumed else None,
                seconds=round(time.perf_counter() - started, 3))


def _epoch(model, optimiser: Optimiser, batches, plan: EpochPlan, where, step: int, log: dict, bar,
           device) -> int:
    """One epoch of `batches` (or up to the step cap); appends to `log`; returns the global step."""
    what, _, epoch = where
    epoch_losses = []
    for batch in batches:
        images = batch["images"].to(device, non_blocking=True)   # pinned: copied while the GPU works
        value, terms = optimiser.step(step, lambda: model(images, batch["texts"], batch["image_ids"]),
                                      what, log["loss"][-1] if log["loss"] else None)
        log["loss"].append(value)
        for name, term in terms.items():
            log.setdefault(name, []).append(term)
        epoch_losses.append(value)
        step += 1
        bar.update(1)
        bar.set_postfix(epoch=epoch, loss=f"{value:.4f}")
        if step >= plan.total_steps:
            break
    # Ranks see equal shares, so the mean of their means is the one-process epoch mean.
    rank_means = distributed.all_gather_objects(sum(epoch_losses) / max(1, len(epoch_losses)))
    log["loss_per_epoch"].append(sum(rank_means) / len(rank_means))
    return step


def fit_steps(what: str, recipe: Recipe, steps: int, step_loss: Callable[[int], torch.Tensor],
              progress: bool = True) -> dict:
    """`steps` optimiser steps of `step_loss(step)` in this process; prints the curve summary and
    returns the curve {"losses": per step, "seconds"}."""
    optimiser = Optimiser(recipe)
    losses, started = [], time.perf_counter()
    bar = tqdm(range(steps), desc=what, disable=not progress, leave=False)
    for step in bar:
        value, _ = optimiser.step(step, lambda: step_loss(step), what, losses[-1] if losses else None,
                                  agreed=False)
        losses.append(value)
        bar.set_postfix(loss=f"{value:.3f}")
    curve = {"losses": losses, "seconds": time.perf_counter() - started}
    print(curve_summary(what, losses, curve["seconds"]))
    return curve
