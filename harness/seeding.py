"""Seed everything the harness draws from, and pin the intra-op thread count, so one config and
seed give one set of metrics on CPU.

Why threads: PyTorch splits a CPU reduction (a matmul, a sum) into one chunk per intra-op
thread, so a float result depends on how many threads computed it: a stand-in pretrained on 1
and on 2 threads ends with different weights (measured 2026-11-25). The thread count is
therefore a config key (`runtime.torch_threads`, part of the hash) and a stand-in key (`threads`).
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
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen


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
