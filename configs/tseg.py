# TSEG on the embedded benchmark — a RECONSTRUCTION (no public TSEG code; shared/specs/tseg.md):
# ViT patch tokens + BERT sentence embedding, projected to a joint width, trained with the
# multi-label patch assignment (MLPA) BCE over every expression of the batch (no masks).
# Backbones are the synthref stand-ins shared with SaG (same stand-in configs → same cache):
# a tiny ViT pretrained on the captions' words (the ImageNet stand-in) and a tiny MLM BERT.
_base_ = ['_base_/synthref.py']

method = dict(
    type="tseg",
    input_size=64,
    finetune=True,
    vit=dict(checkpoint=None, drop_path_rate=0.1,
             standin=dict(img_size=64, patch_size=8, embed_dim=128, depth=4, num_heads=4)),   # 8×8 patches
    bert=dict(checkpoint=None, standin=dict(hidden_size=128)),
    joint_dim=128,
    temperature=0.07,
    text_pool="cls",            # BERT's [CLS] as the sentence embedding ("mean": masked token mean)
    inference="similarity",     # the query's patch similarity; "assignment": softmax over the image's expressions
)

# Schedule: see the measurement note at the end of this file.
train = dict(
    batch_size=32,
    lr=1e-5,            # heads (spec: AdamW 1e-5)
    backbone_lr=1e-6,   # ViT and BERT (spec: 1e-6)
    weight_decay=0.01,
    schedule="cosine",
    warmup_steps=0,
    epochs=2,
)

protocol = dict(minmax=True)

profiles = dict(
    smoke=dict(
        method=dict(vit=dict(standin=dict(embed_dim=32, depth=1, num_heads=2, steps=5)),
                    bert=dict(standin=dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                           intermediate_size=64, steps=5)),
                    joint_dim=32),
        train=dict(max_steps=4)),
    ci=dict(train=dict(epochs=1, max_steps=100)),
    full=dict(),
)

variants = dict(
    assignment=dict(method=dict(inference="assignment")),
    mean_text=dict(method=dict(text_pool="mean")),
)

# Measured 2026-11-25 (synthref val, seed 0, full profile, OMP_NUM_THREADS=1; CPU-s = user+sys;
# whole-image floor 2.9 mIoU). The stand-in backbones alone, with freshly initialised heads after a
# single step, already give 5.64. The MLPA loss (epoch means) hardly moves at the spec's rates:
#   heads / backbone lr    epochs   loss per epoch     val mIoU   run CPU-s
#   1e-5 / 1e-6 (spec)       2      0.1471, 0.1467       5.59       ~46
#   1e-5 / 1e-6              1      0.1472               5.62       ~26
#   1e-4 / 1e-5              2      0.1450, 0.1436       5.38       ~46
#   1e-3 / 1e-4              1      0.1425               4.98       ~26
# The higher rates do learn the objective (lower loss) but lose val mIoU, so no synthref-specific
# schedule is justified: the spec's lr 1e-5 / 1e-6 stays, at 2 epochs (within the ~60 s fit budget).
# Seeds 0,1,2 (floor val/testA/testB 2.9/3.3/3.0): val 6.47±1.83, testA 11.10±2.42, testB 5.97±1.80
# (~45 CPU-s a seed); the spread comes from the run seed's initialisation of the heads, which
# training barely moves.
