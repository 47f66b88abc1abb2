# TSEG on the embedded benchmark — a RECONSTRUCTION (no public TSEG code; shared/specs/tseg.md):
# ViT patch tokens + BERT sentence embedding, projected to a joint width, trained with the
# multi-label patch assignment (MLPA) BCE over every expression of the batch (no masks).
# Backbones are the synthref stand-ins shared with SaG (same stand-in configs → same cache):
# a tiny ViT pretrained on the captions' words (the ImageNet stand-in) and a tiny BERT (MLM + [CLS] words).
_base_ = ['_base_/synthref.py', '_base_/vit_standin.py']

method = dict(
    type="tseg",
    input_size=64,
    finetune=True,
    vit=dict(checkpoint=None, drop_path_rate=0.1,
             standin=dict()),   # VIT_STANDIN (harness/backbones/vit.py): 16×16 patches of 4 px
    # BERT stand-in: MLM plus the [CLS] sentence objective (harness/backbones/standin_bert.py), the
    # stand-in for the NSP that trains a real BERT's [CLS]; with MLM alone [CLS] barely tells colours apart.
    bert=dict(checkpoint=None, standin=dict(hidden_size=128, sentence="words")),
    joint_dim=128,
    temperature=0.07,
    text_pool="cls",            # BERT's [CLS] as the sentence embedding ("mean": masked token mean)
    inference="similarity",     # the query's patch similarity; "assignment": softmax over the image's expressions
)

# The synthref budget (configs/_base_/synthref.py) with the spec's ratio: ViT and BERT at 0.1 x the
# heads' lr (spec: 1e-5 / 1e-6), cosine schedule.
train = dict(
    backbone_lr_scale=0.1,
    weight_decay=0.01,
    schedule="cosine",
    warmup_steps=0,
)

protocol = dict(minmax=True)

profiles = dict(
    smoke=dict(
        method=dict(vit=dict(standin=dict(patch_size=8, embed_dim=32, depth=1, num_heads=2, steps=5)),
                    bert=dict(standin=dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                           intermediate_size=64, steps=5)),
                    joint_dim=32),
        train=dict(max_steps=4)),
    ci=dict(),
    full=dict(),
)

variants = dict(
    assignment=dict(method=dict(inference="assignment")),
    mean_text=dict(method=dict(text_pool="mean")),
)
