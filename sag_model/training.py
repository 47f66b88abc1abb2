"""SaG's training recipe (spec A.8) for the harness's fit loop (harness/run/fit_loop.py): AdamW with a
lower backbone lr, global-norm clipping over every parameter of the network, the release's loss
warm-up, then a cosine schedule stepped per iteration (the lr constant during the warm-up, then
the release's CosineAnnealingLR with T_max = all iterations)."""

from __future__ import annotations

import torch

from harness.run.fit_loop import Recipe, Schedule, base_lr, fit_epochs, plan_epochs, train_value
from sag_model.losses import loss_warmup_factor


def param_groups(net, train_cfg: dict) -> list[dict]:
    """The ViT at lr x train.vit_lr_scale, BERT at lr x train.bert_lr_scale, the rest at lr; the
    slot Gaussians (mu, logvar) get a group of their own at lr x train.slot_lr_scale when the
    config sets one (the release trains them at lr).

    Weight decay on every parameter (biases, norms and the slot Gaussians included), as released.
    A scale of 0 freezes that backbone (no gradient; `SaGObjective` keeps it in eval mode).
    """
    lr = base_lr(train_cfg)
    scales = {name: train_value(train_cfg, f"{name}_lr_scale") for name in ("vit", "bert")}
    net.vit.requires_grad_(scales["vit"] > 0)
    net.bert.requires_grad_(scales["bert"] > 0)
    vit_ids = {id(p) for p in net.vit.parameters()}
    bert_ids = {id(p) for p in net.bert.parameters()}
    slot_scale = train_cfg.get("slot_lr_scale")       # optional: None keeps the slots in the last group
    slot_ids = {id(p) for p in net.discovery.slots.parameters()} if slot_scale is not None else set()
    params = [p for p in net.parameters() if p.requires_grad]
    groups = [
        dict(params=[p for p in params if id(p) in vit_ids], lr=lr * scales["vit"]),
        dict(params=[p for p in params if id(p) in bert_ids], lr=lr * scales["bert"]),
        dict(params=[p for p in params if id(p) in slot_ids], lr=lr * (slot_scale or 0)),
        dict(params=[p for p in params if id(p) not in vit_ids | bert_ids | slot_ids], lr=lr),
    ]
    return [g for g in groups if g["params"]]


class SaGObjective(torch.nn.Module):
    """SaGNet's losses as the fit loop calls them: {"total", "c3", "rec"} of a batch."""

    def __init__(self, net, train_cfg: dict):
        super().__init__()
        self.net = net
        self._frozen = [m for m, key in ((net.vit, "vit_lr_scale"), (net.bert, "bert_lr_scale"))
                        if not train_cfg[key]]

    def forward(self, images: torch.Tensor, texts: list[str], image_ids=None) -> dict:
        return self.net(images, texts)     # C3's positives are the batch's own pairs: ids unused

    def train(self, mode: bool = True):
        super().train(mode)
        for backbone in self._frozen:      # a frozen backbone draws no drop-path noise
            backbone.eval()
        return self


def fit_sag(net, train, train_cfg: dict, seed: int, input_size: int, ctx) -> dict:
    """Train `net` (a SaGNet) on the image–text pairs of `train`; returns the training log."""
    plan = plan_epochs(train_cfg, len(train))
    groups = param_groups(net, train_cfg)
    warmup = int(train_value(train_cfg, "warmup_steps"))
    schedule = Schedule(plan.total_steps, warmup, warmup="hold", decay="cosine", cosine_over="total",
                        float_order="pi_first")
    recipe = Recipe(groups, train_value(train_cfg, "weight_decay"), schedule,
                    grad_clip=float(train_value(train_cfg, "grad_clip")), clip_params=list(net.parameters()),
                    loss_scale=lambda step: loss_warmup_factor(step, warmup), amp=train_cfg.get("amp"))
    return fit_epochs("sag", SaGObjective(net, train_cfg), recipe, train, plan, seed, input_size, ctx)
