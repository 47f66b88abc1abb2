"""torch.distributed helpers: the harness runs under `torchrun` on the standard engine (DDP).

`torchrun --nproc_per_node N -m harness run ...` sets RANK/WORLD_SIZE/LOCAL_RANK; `harness run`
joins with `init_distributed()` and leaves with `shutdown_distributed()`. NCCL on GPUs, gloo on
CPU. Outside torchrun every helper degrades to the single-process behaviour (rank 0 of 1), so
methods call them unconditionally.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from harness.errors import ConfigError


def init_distributed() -> bool:
    """Join the process group torchrun describes; True when running with more than one process."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return True


def shutdown_distributed(finished: bool = True) -> None:
    """Leave the process group this process joined; when this rank `finished` its work, first wait
    at a barrier for the others (after an error a peer may never reach it). Left joined, gloo's
    threads can outlive the interpreter's teardown, which then aborts ("terminate called without
    an active exception") after the work is done."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    if finished:
        dist.barrier()
    dist.destroy_process_group()


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def device() -> torch.device:
    """This rank's device: its GPU under NCCL, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def wrap_ddp(module: torch.nn.Module, always: bool = False) -> torch.nn.Module:
    """DistributedDataParallel around `module` when distributed, else the module itself;
    `always`: also in a process group of one (benchmarks/ddp_step.py: DDP on NCCL with one GPU).

    Gradients are averaged over ranks, so with a per-rank batch of B/world the update equals the
    one-process update with batch B for any loss that is a mean over samples.
    """
    if not (is_distributed() or (always and dist.is_available() and dist.is_initialized())):
        return module
    if any(p.requires_grad for p in module.parameters()):
        dev = next(module.parameters()).device
        ids = [dev.index] if dev.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(module, device_ids=ids,
                                                         find_unused_parameters=True)
    return module


def unwrap(module: torch.nn.Module) -> torch.nn.Module:
    return module.module if isinstance(module, torch.nn.parallel.DistributedDataParallel) else module


def all_gather_objects(obj) -> list:
    """Every rank's `obj`, in rank order (a list of one outside distributed runs)."""
    if not is_distributed():
        return [obj]
    out = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj, src: int = 0):
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_true(flag: bool) -> bool:
    """True when `flag` holds on every rank (one tiny all-reduce; the flag itself outside DDP)."""
    if not is_distributed():
        return bool(flag)
    box = torch.tensor([1.0 if flag else 0.0], device=device())
    dist.all_reduce(box, op=dist.ReduceOp.MIN)
    return bool(box.item() > 0.5)


def shard_indices(n: int) -> list[int]:
    """This rank's share of n evaluation items: a strided slice, no padding, each item once."""
    return list(range(rank(), n, world_size()))


def local_batch_size(global_batch: int) -> int:
    """Per-rank batch so that the global batch stays what the config says."""
    ws = world_size()
    if global_batch % ws:
        raise ConfigError(f"batch_size {global_batch} is not divisible by the world size {ws}")
    return global_batch // ws


# ---------------------------------------------------------------- in-batch losses across ranks
# An in-batch contrastive loss needs every rank's embeddings as negatives. The recipe (open_clip's
# `gather_features` with gather_with_grad, NVlabs GroupViT's `dist_collect`):
#   1. `gather_with_grad` the embeddings: all ranks' rows in rank order; the backward sums the
#      incoming gradient over ranks and hands each rank its own rows, so a rank's embeddings get
#      the gradient of every rank's loss terms that used them;
#   2. each rank computes only the terms of its own anchors (its rows of the global logit matrix)
#      and returns `rank_share(terms, n_global)` = world_size × Σ terms / n_global.
# DDP averages gradients over ranks, so the update is ∂/∂θ of mean_r rank_share_r = Σ_all terms
# / n_global: the one-process loss at the global batch, and each rank's loss value averages to it.
class _GatherRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        sizes = [int(n) for n in all_gather_objects(int(tensor.shape[0]))]
        padded = tensor.new_zeros((max(sizes), *tensor.shape[1:]))    # all_gather needs equal shapes
        padded[: tensor.shape[0]] = tensor
        parts = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(parts, padded.contiguous())
        ctx.rows = local_rows_from(sizes)
        return torch.cat([part[:n] for part, n in zip(parts, sizes)])  # [Σ n_r, ...]

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)                    # every rank's terms' gradient
        return grad[ctx.rows]


def local_rows_from(sizes: list[int]) -> slice:
    start = sum(sizes[: rank()])
    return slice(start, start + sizes[rank()])


def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Every rank's `tensor` concatenated along dim 0 in rank order (sizes may differ), with
    gradients back to each rank's own rows; the tensor itself outside distributed runs."""
    if not is_distributed():
        return tensor
    return _GatherRows.apply(tensor)


def gather_list(items) -> tuple[list, slice]:
    """(every rank's items concatenated in rank order, where this rank's items sit in it)."""
    items = list(items)
    parts = all_gather_objects(items)
    return [x for part in parts for x in part], local_rows_from([len(p) for p in parts])


def local_rows(n_local: int) -> slice:
    """Where this rank's n_local rows sit in a `gather_with_grad` result."""
    if not is_distributed():
        return slice(0, n_local)
    return local_rows_from([int(n) for n in all_gather_objects(int(n_local))])


def rank_share(terms: torch.Tensor, n_global: int) -> torch.Tensor:
    """This rank's share of a mean over n_global terms, of which it computed `terms`: after DDP's
    gradient average (and averaging the values over ranks) it is the one-process mean."""
    return terms.sum() * (world_size() / n_global)
