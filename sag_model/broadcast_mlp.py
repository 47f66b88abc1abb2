"""The spatial broadcast decoder's MLP and alpha-composition as one autograd function.

The decoder (sag_model/decoder.py) runs a ReLU MLP on every (slot, position) pair — B·K·N rows,
98k at the synthref config — and composes the rows' features by a softmax over the slots. Through
autograd that is SaG's most expensive part: every layer's [B·K·N, H] activation is written, read
back and masked in passes over memory far larger than the CPU's caches. This function computes
the same thing in chunks of a few images whose rows stay in cache, and writes the backward by
hand (the chain rule of the same layers, checked against autograd in tests/test_sag_losses.py).
It is the same function; only the float summation order differs.

    composed_mlp(slot_first [B, K, H], position_first [N, H], weights, biases)
        -> (reconstruction [B, N, C], alpha [B, K, N])

`slot_first` and `position_first` are the first layer split over the broadcast
(W·slot + b and W·position: the first layer of MLP(slot + position)); `weights`/`biases` are
the remaining layers, each but the last followed by a ReLU; the last has C + 1 outputs, the
features and the alpha logit. alpha carries no gradient (the losses read the reconstruction).
"""

from __future__ import annotations

import torch

CHUNK_IMAGES = 4   # images per chunk: 4 x 12 slots x 256 positions x 128 channels = 6 MB per layer


def _chunks(batch: int):
    return [slice(lo, min(batch, lo + CHUNK_IMAGES)) for lo in range(0, batch, CHUNK_IMAGES)]


class _ComposedMLP(torch.autograd.Function):
    # Every buffer is the result of an op, never torch.empty: under deterministic algorithms
    # (harness/seeding.py) PyTorch fills uninitialised memory, a pass over memory of its own.
    @staticmethod
    def forward(ctx, slot_first, position_first, *layers):
        weights, biases = layers[0::2], layers[1::2]
        channels = weights[-1].shape[0] - 1
        saved, recon, alpha = [], [], []
        for rows in _chunks(slot_first.shape[0]):
            x = torch.add(slot_first[rows, :, None], position_first).relu_()       # [b, K, N, H]
            shape = x.shape[:3]
            x = x.flatten(0, 2)
            saved.append(x)
            for i, (weight, bias) in enumerate(zip(weights, biases)):
                x = torch.addmm(bias, x, weight.t())
                if i < len(weights) - 1:
                    saved.append(x.relu_())
            out = x.view(*shape, channels + 1)                                     # [b, K, N, C + 1]
            a = out[..., channels].softmax(dim=1)                                  # [b, K, N] over slots
            recon.append(torch.einsum("bkn,bknc->bnc", a, out[..., :channels]))
            alpha.append(a)
            saved.append(out)
        alpha = torch.cat(alpha)
        ctx.save_for_backward(*weights, alpha, *saved)
        ctx.layers = len(weights)
        ctx.mark_non_differentiable(alpha)
        return torch.cat(recon), alpha

    @staticmethod
    def backward(ctx, grad_recon, _grad_alpha):
        n = ctx.layers
        weights, alpha, saved = ctx.saved_tensors[:n], ctx.saved_tensors[n], ctx.saved_tensors[n + 1:]
        grad_w = [torch.zeros_like(w) for w in weights]
        grad_b = [w.new_zeros(w.shape[0]) for w in weights]
        grad_slot_first, grad_position_first = [], 0
        for c, rows in enumerate(_chunks(alpha.shape[0])):
            *hidden, out = saved[c * (n + 1):(c + 1) * (n + 1)]
            a, g = alpha[rows], grad_recon[rows]                                    # [b, K, N], [b, N, C]
            d_alpha = torch.einsum("bknc,bnc->bkn", out[..., :-1], g)
            d_logit = a * (d_alpha - (a * d_alpha).sum(dim=1, keepdim=True))        # softmax over K
            d = torch.cat([a[..., None] * g[:, None], d_logit[..., None]], dim=-1)  # [b, K, N, C + 1]
            shape = d.shape[:3]
            d = d.flatten(0, 2)
            for i in reversed(range(n)):
                grad_w[i].addmm_(d.t(), hidden[i])
                grad_b[i] += d.sum(dim=0)
                d = torch.ops.aten.threshold_backward(torch.mm(d, weights[i]), hidden[i], 0)  # the ReLU
            d = d.view(*shape, -1)
            grad_slot_first.append(d.sum(dim=2))
            grad_position_first = grad_position_first + d.sum(dim=(0, 1))
        grads = [g for pair in zip(grad_w, grad_b) for g in pair]
        return (torch.cat(grad_slot_first), grad_position_first, *grads)


def composed_mlp(slot_first: torch.Tensor, position_first: torch.Tensor,
                 weights: list[torch.Tensor], biases: list[torch.Tensor]):
    """(reconstruction [B, N, C], alpha [B, K, N]) in the weights' dtype, outside any autocast
    region (its buffers are written in place, so every operand has the one dtype)."""
    dtype = weights[0].dtype
    layers = [t.to(dtype) for pair in zip(weights, biases) for t in pair]
    with torch.autocast(device_type=slot_first.device.type, enabled=False):
        return _ComposedMLP.apply(slot_first.to(dtype), position_first.to(dtype), *layers)
