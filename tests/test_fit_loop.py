"""harness/run/fit_loop.py: schedules by hand, the step loop, the NaN check, the config keys."""

import math

import pytest
import torch

from harness.errors import ConfigError, TrainingDivergedError
from harness.run.fit_loop import (Optimiser, Recipe, Schedule, check_finite, curve_summary, fine_tune_recipe,
                              fit_steps, plan_epochs)


def test_linear_warmup_then_constant_or_cosine():
    constant = Schedule(10, 2)
    assert [constant.lr(1.0, s) for s in range(4)] == [0.5, 1.0, 1.0, 1.0]
    cosine = Schedule(10, 2, decay="cosine")                  # cosine over the 8 steps after the warm-up
    assert cosine.lr(1.0, 0) == 0.5 and cosine.lr(1.0, 2) == 1.0
    assert math.isclose(cosine.lr(1.0, 6), 0.5) and math.isclose(cosine.lr(1.0, 10), 0.0, abs_tol=1e-12)
    assert cosine.lr(2.0, 6) == 2.0 * cosine.lr(1.0, 6)


def test_sag_holds_the_lr_through_its_loss_warmup_then_cosine_over_every_step():
    lr = Schedule(100, 10, warmup="hold", decay="cosine", cosine_over="total", float_order="pi_first").lr
    assert lr(1.0, 5) == 1.0 and lr(1.0, 10) == 1.0
    assert math.isclose(lr(1.0, 60), 0.5)                     # (60 - 10) / 100 of the half period


def test_float_orders_keep_the_last_bit_of_each_former_loop():
    # The CLIP/ViT/BERT stand-ins ramped base * (step + 1) / warmup; the methods base * ((step + 1) / warmup).
    ramp = Schedule(300, 20, decay="cosine", float_order="lr_ramp").lr(1e-3, 2)
    factor = Schedule(300, 20, decay="cosine").lr(1e-3, 2)
    assert ramp == 1e-3 * 3 / 20 and factor == 1e-3 * (3 / 20) and ramp != factor
    # GroupViT's stand-in and SaG took the angle as (pi * elapsed) / period.
    pi_first = Schedule(200, 20, decay="cosine", float_order="pi_first")
    assert pi_first.lr(1.0, 50) == 0.5 * (1.0 + math.cos(math.pi * 30 / 180))
    with pytest.raises(ConfigError, match="train.schedule='linear'"):
        Schedule(10, decay="linear")


def test_fit_steps_descends_and_prints_one_curve_summary(capsys):
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.zeros(3))
    recipe = Recipe([{"params": [w], "lr": 0.1}], 0.0, Schedule(50, 5, decay="cosine"))
    curve = fit_steps("toy", recipe, 50, lambda step: ((w - 3.0) ** 2).sum(), progress=False)
    assert len(curve["losses"]) == 50 and curve["losses"][0] == 27.0
    assert curve["losses"][-1] < 0.1 * curve["losses"][0]
    out = capsys.readouterr().out
    assert out.startswith("toy: loss 27.000 (first) → ") and "over 50 steps" in out
    assert curve_summary("toy", [], 0.0) == "toy: no steps"


def test_a_nan_loss_names_what_and_where():
    with pytest.raises(TrainingDivergedError, match=r"clip stand-in: loss became nan at step 4; last finite loss 0.5"):
        check_finite(torch.tensor(float("nan")), "clip stand-in", 4, 0.5, agreed=False)
    check_finite(torch.tensor(1.0), "ok", 0, None)            # one process: agreed is this process's word
    w = torch.nn.Parameter(torch.ones(1))
    recipe = Recipe([{"params": [w], "lr": 0.1}], 0.0, Schedule(5))
    with pytest.raises(TrainingDivergedError, match=r"at step 2; last finite loss 0\.9"):
        fit_steps("toy", recipe, 5, lambda step: (w * (float("inf") if step == 2 else 1.0)).sum(), progress=False)
    assert w.item() < 1.0 and torch.isfinite(w).all()         # two steps taken, the bad one not


def test_loss_scale_and_clipping_shape_the_update():
    w = torch.nn.Parameter(torch.ones(2))
    frozen = Optimiser(Recipe([{"params": [w], "lr": 0.1}], 0.0, Schedule(1), loss_scale=lambda step: 0.0))
    frozen.step(0, lambda: (w * 5).sum(), "toy", None)
    assert torch.equal(w.detach(), torch.ones(2))             # a zero loss scale moves nothing
    clipped = Optimiser(Recipe([{"params": [w], "lr": 0.1}], 0.0, Schedule(1), grad_clip=1.0))
    clipped.step(0, lambda: (w * 5).sum(), "toy", None)
    assert torch.allclose(w.grad, torch.full((2,), 0.5 ** 0.5))   # norm 5·√2 clipped to 1


def test_bf16_autocast_runs_on_the_cpu_and_fp16_or_unknown_modes_are_refused():
    seen, runs = [], []
    for amp in (None, "bf16"):
        torch.manual_seed(0)
        layer = torch.nn.Linear(4, 1)
        recipe = Recipe([{"params": list(layer.parameters()), "lr": 0.01}], 0.0, Schedule(3), amp=amp)
        x = torch.randn(8, 4)
        opt = Optimiser(recipe, torch.device("cpu"))
        assert opt.amp_dtype is (None if amp is None else torch.bfloat16) and not opt.scaler.is_enabled()

        def loss():
            out = layer(x)
            seen.append(out.dtype)                                # what the forward computed in
            return out.float().pow(2).mean()

        runs.append([opt.step(s, loss, "toy", None)[0] for s in range(3)])
        assert layer.weight.dtype == torch.float32                # the weights stay fp32
    assert seen == [torch.float32] * 3 + [torch.bfloat16] * 3
    assert runs[0] != runs[1] and runs[0] == pytest.approx(runs[1], rel=2e-2)   # bf16 rounding, same descent
    one = [torch.nn.Parameter(torch.ones(1))]
    with pytest.raises(ConfigError, match="train.amp='fp8'"):
        Optimiser(Recipe([{"params": one, "lr": 0.1}], 0.0, Schedule(1), amp="fp8"))
    with pytest.raises(ConfigError, match=r"train.amp='fp16' needs a CUDA GPU .* use train.amp=bf16"):
        Optimiser(Recipe([{"params": one, "lr": 0.1}], 0.0, Schedule(1), amp="fp16"), torch.device("cpu"))


def test_plan_and_recipe_read_the_config_and_name_a_missing_key():
    plan = plan_epochs(dict(epochs=3, batch_size=32, max_steps=5), 100)
    assert (plan.epochs, plan.local_batch, plan.total_steps) == (3, 32, 5)
    assert plan_epochs(dict(epochs=3, batch_size=32, max_steps=None), 100).total_steps == 12
    with pytest.raises(ConfigError, match="train.epochs: missing"):
        plan_epochs(dict(batch_size=32), 100)
    with pytest.raises(ConfigError, match="train.steps: renamed train.max_steps"):
        plan_epochs(dict(epochs=1, batch_size=32, steps=3), 100)
    with pytest.raises(ConfigError, match=r"train.batch_size=0: expected a positive integer"):
        plan_epochs(dict(epochs=1, batch_size=0), 100)
    with pytest.raises(ConfigError, match="train.weight_decay: missing"):
        fine_tune_recipe(dict(schedule="constant", warmup_steps=0), [], 10)
    recipe = fine_tune_recipe(dict(schedule="cosine", warmup_steps=2, weight_decay=0.1), [], 10)
    assert (recipe.weight_decay, recipe.grad_clip, recipe.schedule) == (0.1, 0.0, Schedule(10, 2, decay="cosine"))
