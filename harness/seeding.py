"""Seed everything the harness draws from, and pin the intra-op thread count, so one config and
seed give one set of metrics on CPU.

Why threads: PyTorch splits a CPU reduction (a matmul, a sum) into one chunk per intra-op
thread, so a float result depends on how many threads computed it: a stand-in pretrained on 1
and on 2 threads ends with different weights (measured 2026-11-25). The thread count is
therefore a config key (`runtime.torch_threads`, part of the hash) and a stand-in key (`threads`).

Why attention kernels: on CUDA, `scaled_dot_product_attention` (timm's ViT, BERT, CLIP towers)
picks the flash or memory-efficient kernel, whose backward accumulates in a nondeterministic order
("Memory Efficient attention defaults to a non-deterministic algorithm", seen on an H200,
2026-12-04), so the same seed gave another model. Only the math kernel is deterministic; the
harness keeps to it where torch sees a GPU. Not on a CPU-only machine: the flags steer the CPU's
dispatch too (flash off sends it to the math kernel, 3.6e-7 apart), and the CPU's flash kernel is
deterministic already, so the CPU figures and the gate's reference stay as they were.
"""

import contextlib
import random
from typing import Optional

import numpy as np
import torch
from harness.errors import ConfigError


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    if torch.cuda.is_available():
        deterministic_attention()
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen


def deterministic_attention() -> None:
    """Leave only the math kernel of scaled_dot_product_attention enabled (see the module notes)."""
    torch.backends.cuda.enable_flash_sdp(False)
    torch.backends.cuda.enable_mem_efficient_sdp(False)
    if hasattr(torch.backends.cuda, "enable_cudnn_sdp"):
        torch.backends.cuda.enable_cudnn_sdp(False)
    torch.backends.cuda.enable_math_sdp(True)


def check_threads(value, key: str) -> Optional[int]:
    """`value` as a thread count (None: leave PyTorch's own); ConfigError naming `key` otherwise."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{key}={value!r}: expected a positive integer (intra-op threads) or None")
    return value


@contextlib.contextmanager
def torch_threads(threads: Optional[int]):
    """Run the block with `threads` intra-op threads (None: unchanged); the old count comes back."""
    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
