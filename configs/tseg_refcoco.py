# TSEG on the real datasets — a RECONSTRUCTION (no public TSEG code; shared/specs/tseg.md).
# Hyperparameters are the spec's suggested starting point (TSEG's own are unknown):
# ViT-S/16 at 384 (ImageNet-21k), BERT-base, AdamW 1e-5 (backbone 1e-6), batch 32, 50 epochs, cosine.
# Checkpoints (local paths; nothing is downloaded):
#   --set method.vit.checkpoint=PATH   timm ViT-S/16 at 384, AugReg IN21k->IN1k
#                                      (vit_small_patch16_384.augreg_in21k_ft_in1k: .npz or .pth/.safetensors)
#   --set method.bert.checkpoint=DIR   a transformers folder of bert-base-uncased
_base_ = ['_base_/real.py']

method = dict(
    type="tseg",
    input_size=384,
    finetune=True,
    vit=dict(checkpoint=None, arch="vit_small_patch16_384", img_size=384, drop_path_rate=0.1,
             mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
    bert=dict(checkpoint=None),
    joint_dim=512,
    temperature=0.07,
    text_pool="cls",
    inference="similarity",
)

train = dict(
    batch_size=32,
    lr=1e-5,
    backbone_lr_scale=0.1,     # ViT and BERT at 1e-6
    weight_decay=0.01,
    schedule="cosine",
    warmup_steps=0,
    epochs=50,
)

protocol = dict(minmax=True)

profiles = dict(
    smoke=dict(train=dict(max_steps=5)),
    ci=dict(train=dict(epochs=1)),
    full=dict(),
)

variants = dict(
    assignment=dict(method=dict(inference="assignment")),
    mean_text=dict(method=dict(text_pool="mean")),
)
