# SaG on the real datasets (RefCOCO, RefCOCO+, G-Ref, PhraseCut): the authors' release
# (shared/specs/sag.md A.8) with the paper's best slot layout K_g x K_s = 18 x 2 (Table 3).
# The release's scripts use 12 x 3:  --set method.slots.groups=12 method.slots.samples=3
# Checkpoints are local paths (nothing is downloaded):
#   --set method.vit.checkpoint=PATH   timm ViT-S/16 at 384, AugReg IN21k->IN1k
#                                      (vit_small_patch16_384.augreg_in21k_ft_in1k: .npz or .pth/.safetensors)
#   --set method.bert.checkpoint=DIR   a transformers folder of bert-base-uncased
_base_ = ['_base_/real.py', '_base_/sag_variants.py']

method = dict(
    type="sag",
    input_size=384,
    finetune=True,
    vit=dict(checkpoint=None, arch="vit_small_patch16_384", img_size=384, drop_path_rate=0.1,
             mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
    bert=dict(checkpoint=None),
    dim=512,                                   # D: projection, slot and fusion width
    slots=dict(type="entity", groups=18, samples=2),   # K = 36
    T=6,                                       # weight-tied iterations of aggregation + interaction
    slot_grad="all",                           # the release: backward through all T iterations
    fusion_text_residual=1.0,                  # the release: h = e_t + CrossAttn (synthref: 0, issue 24)
    interaction=True,
    aggregation="slot",                        # softmax over slots per patch (vs "transformer")
    cross_heads=4, cross_dim_head=256,
    self_heads=4, self_dim_head=128,
    fusion_heads=4, fusion_dim_head=256,
    ff_mult=4,
    dropout=0.1,
    decoder_hidden=512,
    recon_weight=1.0,                          # lambda_rec
    temperature=1.0,                           # C3 InfoNCE temperature
    eval_slots="sample",                       # the release samples slots at test time too
    inference="ours",                          # sum_s A_fuse * A_slot
)

train = dict(
    batch_size=32,
    lr=1e-5,
    vit_lr_scale=0.1,          # ViT at 1e-6
    bert_lr_scale=1.0,         # BERT + text projection at 1e-5
    weight_decay=1e-4,
    grad_clip=0.1,
    warmup_steps=5000,         # loss x step/5000, then cosine over all iterations
    epochs=50,
    max_steps=None,
)

protocol = dict(minmax=True)
runtime = dict(save_checkpoint=True)

profiles = dict(
    smoke=dict(train=dict(max_steps=5, warmup_steps=1)),
    ci=dict(train=dict(epochs=1, warmup_steps=500)),
    full=dict(),
)

# Table 3 (left): K_g x K_s at K = 36 (variants named by K_s; see _base_/sag_variants.py).
variants = dict(
    Ks1=dict(method=dict(slots=dict(groups=36, samples=1))),
    Ks2=dict(method=dict(slots=dict(groups=18, samples=2))),
    Ks3=dict(method=dict(slots=dict(groups=12, samples=3))),
    Ks4=dict(method=dict(slots=dict(groups=9, samples=4))),
    Ks6=dict(method=dict(slots=dict(groups=6, samples=6))),
)
