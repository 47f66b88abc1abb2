"""Psi (fusion), the reconstruction decoder and the losses of SaG: normalisation and stop-gradients."""

import torch
import torch.nn.functional as F

from sag_model import broadcast_mlp
from sag_model.decoder import SpatialBroadcastDecoder
from sag_model.fusion import ModalityFusion
from sag_model.losses import c3_loss, loss_warmup_factor, reconstruction_loss


def test_fusion_attention_sums_to_one_and_output_is_unit_norm():
    torch.manual_seed(0)
    fusion = ModalityFusion(dim=16, heads=2, dim_head=8, dropout=0.0).eval()
    text, slots = torch.randn(3, 16), torch.randn(3, 5, 16)
    fused, attn = fusion(text, slots, all_pairs=True)
    assert fused.shape == (3, 3, 16) and attn.shape == (3, 3, 5)
    torch.testing.assert_close(attn.sum(-1), torch.ones(3, 3))
    torch.testing.assert_close(fused.norm(dim=-1), torch.ones(3, 3))
    # the diagonal-only path equals the matching pairs of the full grid
    fused_d, attn_d = fusion(text, slots, all_pairs=False)
    torch.testing.assert_close(fused_d, fused[torch.arange(3), torch.arange(3)])
    torch.testing.assert_close(attn_d, attn[torch.arange(3), torch.arange(3)])
    # pair (i, t) depends on image i only: changing image 2 leaves images 0 and 1 unchanged
    slots2 = slots.clone()
    slots2[2] += 1.0
    torch.testing.assert_close(fusion(text, slots2)[0][:2], fused[:2])


def test_c3_is_cross_entropy_over_images_with_a_detached_text_target():
    text = torch.randn(4, 8, requires_grad=True)
    fused = F.normalize(torch.randn(4, 4, 8), dim=-1).requires_grad_()
    loss = c3_loss(text, fused)
    logits = torch.einsum("td,itd->ti", text.detach(), fused.detach())
    expect = -torch.log_softmax(logits, dim=1).diagonal().mean()
    torch.testing.assert_close(loss.detach(), expect)
    loss.backward()
    assert text.grad is None                              # the target receives no gradient
    assert fused.grad.abs().sum() > 0
    # perfectly matched pairs with a long text vector: loss near zero (temperature 1 via ||e_t||)
    e = torch.eye(4) * 20
    c = F.normalize(torch.eye(4)[None].expand(4, 4, 4).clone(), dim=-1)
    assert c3_loss(e, c.transpose(0, 1)).item() < 1e-6 and c3_loss(e, c).item() > 1.0


def test_reconstruction_target_receives_no_gradient():
    features = torch.randn(2, 6, 4, requires_grad=True)
    recon = torch.randn(2, 6, 4, requires_grad=True)
    reconstruction_loss(recon, features).backward()
    assert features.grad is None and recon.grad.abs().sum() > 0


def test_decoder_alpha_sums_to_one_over_slots_and_learns_to_reconstruct():
    torch.manual_seed(0)
    decoder = SpatialBroadcastDecoder(slot_dim=16, out_dim=4, hidden=32)
    slots = torch.randn(2, 3, 16)
    target = torch.randn(2, 4 * 4, 4)                                      # [B, N, C], toy features
    recon, alpha = decoder(slots, (4, 4))
    assert recon.shape == (2, 16, 4)
    torch.testing.assert_close(alpha.sum(dim=1), torch.ones(2, 16))
    first = reconstruction_loss(recon, target).item()
    opt = torch.optim.Adam(decoder.parameters(), lr=3e-3)
    for _ in range(300):
        loss = reconstruction_loss(decoder(slots, (4, 4))[0], target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert first > 0.8 and loss.item() < 0.02 * first


def test_decoder_output_and_every_gradient_equal_the_plain_autograd_mlp():
    """The hand-written backward (sag_model/broadcast_mlp.py) against autograd on the same layers,
    in float64, with a batch that leaves a partial last chunk."""
    torch.manual_seed(0)
    decoder = SpatialBroadcastDecoder(slot_dim=8, out_dim=5, hidden=16).double()
    batch = broadcast_mlp.CHUNK_IMAGES + 2
    slots = torch.randn(batch, 3, 8, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(batch, 12, 5, dtype=torch.float64)          # a loss that weights every output

    def plain(slots):
        rows = slots[:, :, None] + decoder.position(3, 4)            # [B, K, N, D]: MLP(slot + pos)
        out = decoder.mlp(rows)
        alpha = out[..., -1].softmax(dim=1)
        return torch.einsum("bkn,bknc->bnc", alpha, out[..., :-1]), alpha

    grads = []
    for forward in (plain, lambda s: decoder(s, (3, 4))):
        decoder.zero_grad()
        slots.grad = None
        recon, alpha = forward(slots)
        (recon * weight).sum().backward()
        grads.append((recon.detach(), alpha, slots.grad.clone(),
                      {k: p.grad.clone() for k, p in decoder.named_parameters()}))
    (recon_a, alpha_a, slots_a, params_a), (recon_b, alpha_b, slots_b, params_b) = grads
    torch.testing.assert_close(recon_b, recon_a)
    torch.testing.assert_close(alpha_b, alpha_a)
    torch.testing.assert_close(slots_b, slots_a)
    assert params_a.keys() == params_b.keys() and len(params_a) == 10   # 4 layers + 2 position tables
    for name in params_a:
        torch.testing.assert_close(params_b[name], params_a[name], msg=name)
    assert not alpha_b.requires_grad                                    # alpha carries no gradient


def test_loss_warmup():
    assert loss_warmup_factor(0, 10) == 0.1 and loss_warmup_factor(9, 10) == 1.0
    assert loss_warmup_factor(100, 0) == 1.0
