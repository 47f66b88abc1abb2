"""torch.distributed helpers: the harness runs under `torchrun` on the standard engine (DDP).

`torchrun --nproc_per_node N -m harness run ...` sets RANK/WORLD_SIZE/LOCAL_RANK; the runner calls
`init_distributed()` once. NCCL on GPUs, gloo on CPU. Outside torchrun every helper degrades to
the single-process behaviour (rank 0 of 1), so methods call them unconditionally.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


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


def wrap_ddp(module: torch.nn.Module) -> torch.nn.Module:
    """DistributedDataParallel around `module` when distributed, else the module itself.

    Gradients are averaged over ranks, so with a per-rank batch of B/world the update equals the
    one-process update with batch B for any loss that is a mean over samples.
    """
    if not is_distributed():
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
        from harness.errors import ConfigError
        raise ConfigError(f"batch_size {global_batch} is not divisible by the world size {ws}")
    return global_batch // ws
