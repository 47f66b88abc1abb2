"""SaG's training losses (spec A.6): C3 InfoNCE, feature reconstruction, and the loss warm-up."""

import torch
import torch.nn.functional as F

from harness import distributed
def c3_loss(text: torch.Tensor, fused: torch.Tensor, temperature: float = 1.0, first_image: int = 0) -> torch.Tensor:
    """Contrastive cycle-consistency: for each text, cross-entropy over the batch's images.

    text e [B_t, D] (raw, detached here: the target receives no gradient), fused c [B_i, B_t, D]
    (unit norm). logit[t, i] = <sg(e_t), c_{i,t}> / temperature; the positive of text t is image
    first_image + t. Under DDP the images are every rank's (B_i the global batch; `fused` from the
    gathered slots, see SaGNet.forward), the texts this rank's, starting at global row
    `first_image`; the result is this rank's share of the mean over all B_i texts
    (harness.distributed's recipe), so DDP's averaged update is the one-process one.
    """
    logits = torch.einsum("td,itd->ti", text.detach(), fused) / temperature         # [B_t, B_i]
    targets = torch.arange(text.shape[0], device=text.device) + first_image
    per_text = F.cross_entropy(logits, targets, reduction="none")                   # [B_t]
    return distributed.rank_share(per_text, fused.shape[0])


def reconstruction_loss(reconstruction: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """MSE to the backbone's patch features, detached (the target receives no gradient)."""
    return F.mse_loss(reconstruction, features.detach())


def total_loss(c3: torch.Tensor, rec: torch.Tensor, recon_weight: float) -> torch.Tensor:
    return c3 + recon_weight * rec if recon_weight else c3


def loss_warmup_factor(step: int, warmup_steps: int) -> float:
    """The release multiplies the whole loss by iter / warm-up for its first iterations.

    Counted from 1 so that the first step is not a zero update.
    """
    if warmup_steps <= 0:
        return 1.0
    return min(1.0, (step + 1) / warmup_steps)
