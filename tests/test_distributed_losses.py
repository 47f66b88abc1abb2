"""Multi-GPU equivalence of the in-batch contrastive losses (issue 12, item 9), on 2 gloo processes.

Each method's real loss (CLIP's for MaskCLIP, GroupViT's image–text + multi-label, TSEG's MLPA,
SaG's C3 + reconstruction through SaGNet.forward) gathers every rank's embeddings with gradients:
two processes at global batch 8 (4 each, the loader's split) must give the one-process loss at
batch 8 and, after DDP's gradient average, its gradients (tests/distributed_loss_cases.py).
"""

import os
import subprocess
import sys

import pytest
import torch

from harness import distributed
from tests.distributed_loss_cases import CASES, CaseLoss, global_batch, one_step, rank_share_of
from tests.test_distributed import REPO, free_port


@pytest.fixture(scope="module")
def two_process_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp-losses") / "results.pt"
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               "--master-addr", "127.0.0.1", "--master-port", str(free_port()),
               str(REPO / "tests" / "distributed_loss_cases.py"), str(out)]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return torch.load(out)


@pytest.mark.parametrize("name", CASES)
def test_two_processes_give_the_one_process_loss_and_gradients(name, two_process_results):
    loss_one, grads_one = one_step(name)
    loss_two, grads_two = two_process_results[name]
    assert loss_two == pytest.approx(loss_one, rel=1e-5)
    assert set(grads_two) == set(grads_one) and grads_one
    for key, grad in grads_one.items():
        assert torch.allclose(grads_two[key], grad, rtol=1e-4, atol=1e-6), key
    assert any(float(g.abs().max()) > 1e-4 for g in grads_one.values())    # a real gradient


@pytest.mark.parametrize("name", CASES)
def test_per_rank_negatives_would_differ(name):
    """The check has teeth: each half of the batch alone (per-rank negatives, as before the
    gather) gives another loss than the whole batch."""
    halves = []
    for r in range(2):
        share = rank_share_of(global_batch(), r, 2)
        torch.manual_seed(0)
        with torch.no_grad():
            halves.append(float(CaseLoss(name)(share["images"], share["texts"], share["image_ids"])))
    assert abs(sum(halves) / 2 - one_step(name)[0]) > 1e-3


def test_gather_helpers_are_identities_in_one_process():
    t = torch.randn(3, 2, requires_grad=True)
    assert distributed.gather_with_grad(t) is t
    assert distributed.gather_list(["a", "b"]) == (["a", "b"], slice(0, 2))
    assert distributed.local_rows(3) == slice(0, 3)
    assert distributed.rank_share(torch.tensor([1.0, 2.0, 3.0]), 3).item() == pytest.approx(2.0)
