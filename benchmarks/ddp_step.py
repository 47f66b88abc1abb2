"""One DDP training step of SaG at its real-data config under torchrun, in a process group of
any size — one GPU included (`harness.distributed.wrap_ddp(always=True)`): NCCL on CUDA, gloo
on the CPU. Writes its figures as JSON; asserts nothing.

    torchrun --nproc_per_node 1 benchmarks/ddp_step.py --json OUT.json [--tiny] [--work DIR]

Each rank takes its share of one batch (32) from the loader (harness/data/loader.py), runs the
step through DistributedDataParallel, then again without DDP from the same weights and seed. With
one process DDP's gradient all-reduce is the identity, so the two gradients must agree bit for bit
(`max_grad_difference` 0); with several, DDP's are the ranks' mean. Checkpoints and data are
those benchmarks/bench_real_scale.py writes (`--work`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402

from benchmarks import real_scale  # noqa: E402
from harness import distributed  # noqa: E402


def step_grads(objective, batch: dict, device) -> tuple[float, dict]:
    """(loss, {name: gradient}) of one forward/backward of `objective` at seed 0."""
    torch.manual_seed(0)
    objective.zero_grad(set_to_none=True)
    losses = objective(batch["images"].to(device), batch["texts"], batch["image_ids"])
    losses["total"].backward()
    named = distributed.unwrap(objective).named_parameters()
    return float(losses["total"].detach()), {n: p.grad.detach().clone() for n, p in named if p.grad is not None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", required=True)
    parser.add_argument("--work", default=None)
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--batch", type=int, default=32, help="the global batch (the config's: 32)")
    args = parser.parse_args()
    from harness.data.loader import TrainLoader
    from harness.paths import cache_dir
    from sag_model.training import SaGObjective

    backend = "nccl" if torch.cuda.is_available() else "gloo"
    started = time.perf_counter()
    dist.init_process_group(backend)
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    device, world = distributed.device(), dist.get_world_size()
    work = Path(args.work) if args.work else cache_dir() / "real-scale"
    if dist.get_rank() == 0:   # one rank writes the files, the others wait for them
        real_scale.write_data(work / "data", 16, 1)
        real_scale.write_checkpoints(work / "checkpoints", ["sag"], args.tiny)
    dist.barrier()
    ckpt = real_scale.write_checkpoints(work / "checkpoints", ["sag"], args.tiny)
    segmenter, resolved, train = real_scale.build("sag", real_scale.method_overrides("sag", ckpt, args.tiny),
                                                  real_scale.write_data(work / "data", 16, 1), device)
    objective = SaGObjective(segmenter.net, resolved.cfg["train"]).train()
    with TrainLoader(train, segmenter.input_size, args.batch // world, seed=0, rank=dist.get_rank(),
                     world_size=world) as loader:
        batch = next(iter(loader.epoch(0)))
    model = distributed.wrap_ddp(objective, always=True)
    tick = time.perf_counter()
    ddp_loss, ddp_grads = step_grads(model, batch, device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    ddp_seconds = time.perf_counter() - tick
    plain_loss, plain_grads = step_grads(objective, batch, device)
    difference = max((ddp_grads[n] - plain_grads[n]).abs().max().item() for n in plain_grads)
    probe = torch.ones(1, device=device) * (dist.get_rank() + 1)
    dist.all_reduce(probe)                                   # the collective itself: Σ (rank + 1)
    record = {"backend": backend, "world_size": world, "device": str(device),
              "ddp_wrapped": isinstance(model, torch.nn.parallel.DistributedDataParallel),
              "per_rank_batch": len(batch["texts"]), "ddp_step_s": ddp_seconds,
              "loss": ddp_loss, "loss_without_ddp": plain_loss, "max_grad_difference": difference,
              "grads_compared": len(plain_grads), "all_reduce_ok": probe.item() == world * (world + 1) / 2,
              "seconds": time.perf_counter() - started}
    if dist.get_rank() == 0:
        Path(args.json).write_text(json.dumps(record, indent=2))
        print(json.dumps(record))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
