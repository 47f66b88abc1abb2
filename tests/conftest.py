"""Shared fixtures: a session cache folder and one small synthref every test can read.

`SAG_HARNESS_CACHE` points at a session temp folder, so no test writes to (or reads from) the
user's cache. `synthref_root` is a DATA_ROOT holding all three variants of a small synthref
(seed 0, sizes SMALL_SYNTHREF_SIZES); pass it as `data_root=` to `open_split`, never mutate it.
"""

import os

import pytest

SMALL_SYNTHREF_SIZES = {"train": 24, "val": 40, "testA": 12, "testB": 12}


@pytest.fixture(scope="session", autouse=True)
def session_cache_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("sag-harness-cache")
    previous = os.environ.get("SAG_HARNESS_CACHE")
    os.environ["SAG_HARNESS_CACHE"] = str(path)
    yield path
    if previous is None:
        os.environ.pop("SAG_HARNESS_CACHE", None)
    else:
        os.environ["SAG_HARNESS_CACHE"] = previous


@pytest.fixture(scope="session")
def synthref_root(tmp_path_factory):
    """DATA_ROOT of a small synthref (all three variants, seed 0)."""
    from harness.data.synthref import VARIANTS, write_variants

    root = tmp_path_factory.mktemp("synthref")
    return write_variants(root, VARIANTS, seed=0, sizes=SMALL_SYNTHREF_SIZES)


@pytest.fixture
def one_thread():
    """One intra-op thread: on a shared 2-core machine, thread hand-offs cost more than they save."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
