"""Phi (sag_model/entity_discovery.py) and its attention: normalisations, slot layout, grouping."""

import math

import pytest
import torch

from sag_model.attention import attention_weights
from sag_model.entity_discovery import EntityDiscovery, EntitySlots, InteractionBlock
from sag_model.position import sine_position_encoding


def small_phi(**kw):
    args = dict(in_dim=24, dim=32, groups=3, samples=2, iterations=2, cross_heads=2, cross_dim_head=8,
                self_heads=2, self_dim_head=8, dropout=0.0)
    args.update(kw)
    return EntityDiscovery(**args).eval()


def test_slot_competition_columns_sum_to_one_over_slots_and_rows_over_patches():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 6, 20) * 3                                       # [B, h, K, N]
    probs, weights = attention_weights(logits, "queries")
    torch.testing.assert_close(probs.sum(dim=2), torch.ones(2, 4, 20))          # over slots, per patch
    torch.testing.assert_close(weights.sum(dim=3), torch.ones(2, 4, 6))         # l1 over patches, per slot
    # l1 normalisation rescales each slot's row: the ratios between patches are those of probs
    torch.testing.assert_close(weights[0, 0, 1] / weights[0, 0, 1, 0], probs[0, 0, 1] / probs[0, 0, 1, 0])
    probs_t, _ = attention_weights(logits, "keys")
    torch.testing.assert_close(probs_t.sum(dim=3), torch.ones(2, 4, 6))         # transformer: over patches


def test_a_slot_of_the_module_sums_to_one_over_slots_per_patch():
    torch.manual_seed(0)
    phi = small_phi()
    out = phi(torch.randn(2, 16, 24), (4, 4))
    assert out.slots.shape == (2, 6, 32) and out.attn_slot.shape == (2, 6, 16)
    torch.testing.assert_close(out.attn_slot.sum(dim=1), torch.ones(2, 16))
    assert out.attn_slot.min() >= 0
    out_t = small_phi(aggregation="transformer")(torch.randn(2, 16, 24), (4, 4))
    torch.testing.assert_close(out_t.attn_slot.sum(dim=2), torch.ones(2, 6))


def test_entity_slots_are_gaussian_major_and_init_as_specified():
    torch.manual_seed(0)
    slots = EntitySlots(dim=512, groups=12, samples=3)
    # xavier on [1, 12, 512]: bound sqrt(6 / (12*512 + 512)) = 0.030; logvar offset log(1/512)
    assert slots.mu.abs().max() <= math.sqrt(6 / (12 * 512 + 512)) + 1e-6
    assert abs(slots.logvar.mean().item() - math.log(1 / 512)) < 0.01
    assert abs(torch.exp(0.5 * slots.logvar).norm(dim=-1).mean().item() - 1.0) < 0.05
    drawn = slots(batch=4000)                                                    # [B, K, D]
    means = slots.means()[0]
    # sample g*K_s + r comes from Gaussian g: its empirical mean is mu_g
    assert (drawn.mean(0) - means).abs().max() < 0.01
    torch.testing.assert_close(means[3], slots.mu[0, 1])
    torch.testing.assert_close(means[5], slots.mu[0, 1])
    assert slots.gaussian_of(5) == 1 and slots.gaussian_of(6) == 2
    # resampled on every call, differentiable in mu and logvar (reparameterisation)
    assert not torch.equal(slots(2), slots(2))
    slots(2).sum().backward()
    assert slots.mu.grad is not None and slots.logvar.grad.abs().sum() > 0


def test_var_scaling_sets_the_initial_sigma_norm():
    # the release's --agg_var_scaling s: logvar offset log(1/(D*s)), so ||sigma|| ~ 1/sqrt(s)
    torch.manual_seed(0)
    for scaling, norm in ((1.0, 1.0), (0.01, 10.0), (4.0, 0.5)):
        slots = EntitySlots(dim=256, groups=4, samples=2, var_scaling=scaling)
        assert abs(torch.exp(0.5 * slots.logvar).norm(dim=-1).mean().item() - norm) < 0.05 * norm
        spread = (slots(batch=2000) - slots.means()).pow(2).sum(-1).mean().sqrt().item()
        assert abs(spread - norm) < 0.05 * norm


def test_random_and_query_slot_types():
    torch.manual_seed(0)
    random = EntitySlots(16, groups=3, samples=2, slot_type="random")
    assert random.mu.shape == (1, 1, 16) and random.group_size == 6
    assert torch.equal(random.means()[0, 0], random.means()[0, 5])
    query = EntitySlots(16, groups=3, samples=2, slot_type="query")
    assert query.mu.shape == (1, 6, 16) and torch.equal(query(2), query(2))     # fixed, no sampling
    with pytest.raises(ValueError):
        EntitySlots(16, 3, 2, slot_type="gaussian")


def test_interaction_never_mixes_slots_of_different_gaussians():
    torch.manual_seed(0)
    block = InteractionBlock(dim=16, heads=2, dim_head=8, ff_mult=2, dropout=0.0).eval()
    slots = torch.randn(2, 6, 16)                                                # 3 Gaussians x 2 samples
    perturbed = slots.clone()
    perturbed[:, 2:4] += torch.randn(2, 2, 16)                                   # Gaussian 1 only
    out, out_p = block(slots, 2), block(perturbed, 2)
    torch.testing.assert_close(out[:, [0, 1, 4, 5]], out_p[:, [0, 1, 4, 5]])
    assert (out[:, 2:4] - out_p[:, 2:4]).abs().max() > 1e-3
    # with one group for all six, the perturbation reaches every slot: the test can tell
    assert (block(slots, 6)[:, 0] - block(perturbed, 6)[:, 0]).abs().max() > 1e-4


def test_use_mean_and_generator_make_phi_deterministic():
    torch.manual_seed(0)
    phi = small_phi()
    feats = torch.randn(1, 16, 24)
    a = phi(feats, (4, 4), generator=torch.Generator().manual_seed(3)).attn_slot
    b = phi(feats, (4, 4), generator=torch.Generator().manual_seed(3)).attn_slot
    c = phi(feats, (4, 4), generator=torch.Generator().manual_seed(4)).attn_slot
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)
    torch.testing.assert_close(phi(feats, (4, 4), use_mean=True).attn_slot,
                               phi(feats, (4, 4), use_mean=True).attn_slot)


def test_sine_position_encoding_matches_detr_formula():
    pe = sine_position_encoding(3, 4, 8)                                         # [12, 8]
    assert pe.shape == (12, 8)
    y, x = 2, 1                                                                   # row 3 of 3, column 2 of 4
    p = pe[y * 4 + x]
    ang_y, ang_x = 3 / 3 * 2 * math.pi, 2 / 4 * 2 * math.pi
    expect = [math.sin(ang_y), math.cos(ang_y), math.sin(ang_y / 100), math.cos(ang_y / 100),
              math.sin(ang_x), math.cos(ang_x), math.sin(ang_x / 100), math.cos(ang_x / 100)]
    torch.testing.assert_close(p, torch.tensor(expect), atol=1e-5, rtol=0)


def test_gradients_through_the_last_iteration_only_keep_values_and_cut_the_earlier_jacobians():
    """slot_grad="last" (issue 24): the same forward values; the backward pass sees only the last
    iteration, and the initial slots (SaG's Gaussians) still get a gradient, straight through."""
    features = torch.randn(2, 16, 24)
    runs = {}
    for mode in ("all", "last"):
        torch.manual_seed(0)
        phi = small_phi(iterations=3, slot_grad=mode)
        torch.manual_seed(1)                                     # the same slot samples
        out = phi(features, (4, 4))
        (out.slots.square().sum() + out.attn_slot.square().sum()).backward()
        runs[mode] = (phi, out)
    (phi_all, out_all), (phi_last, out_last) = runs["all"], runs["last"]
    torch.testing.assert_close(out_last.slots, out_all.slots, rtol=0, atol=0)
    torch.testing.assert_close(out_last.attn_slot, out_all.attn_slot, rtol=0, atol=0)
    assert phi_last.slots.mu.grad.abs().sum() > 0 and phi_last.slots.logvar.grad.abs().sum() > 0
    assert not torch.allclose(phi_last.slots.mu.grad, phi_all.slots.mu.grad)

    # By hand: run T - 1 iterations without a graph, then the last with the slots as a leaf. Under
    # "last" every weight's gradient is that leaf computation's, and mu's is the leaf's own gradient.
    torch.manual_seed(0)
    phi = small_phi(iterations=3, slot_grad="last")
    torch.manual_seed(1)
    context = phi.context(features, (4, 4))
    initial = phi.slots(2)
    kv = phi.aggregate.keys_values(context)
    slots = initial
    with torch.no_grad():
        for _ in range(2):
            slots = phi.interact(phi.aggregate(slots, kv)[0], phi.slots.group_size)
    leaf = slots.clone().requires_grad_(True)
    last, attn = phi.aggregate(leaf, kv)
    last = phi.interact(last, phi.slots.group_size)
    (phi.head_norm(phi.head(last)).square().sum() + attn.mean(dim=1).square().sum()).backward()
    for name in ("to_q", "to_k", "to_v"):
        torch.testing.assert_close(getattr(phi_last.aggregate.attn, name).weight.grad,
                                   getattr(phi.aggregate.attn, name).weight.grad)
    torch.testing.assert_close(phi_last.input_proj.weight.grad, phi.input_proj.weight.grad)
    mu_grad = leaf.grad.reshape(2, 3, 2, 32).sum(dim=(0, 2))[None]          # slots share a Gaussian in pairs
    torch.testing.assert_close(phi_last.slots.mu.grad, mu_grad)
    with pytest.raises(ValueError, match="slot_grad"):
        small_phi(slot_grad="first")
