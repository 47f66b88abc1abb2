"""Psi (fusion), the reconstruction decoder and the losses of SaG: normalisation and stop-gradients."""

import torch
import torch.nn.functional as F

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


def test_loss_warmup():
    assert loss_warmup_factor(0, 10) == 0.1 and loss_warmup_factor(9, 10) == 1.0
    assert loss_warmup_factor(100, 0) == 1.0
