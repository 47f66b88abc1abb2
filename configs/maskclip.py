# MaskCLIP on the embedded benchmark (synthref, synthref+, synthrefg), SaG supplementary §B.
# CLIP is the synthref stand-in (harness/backbones/clip.py: a tiny ViT-CLIP pretrained from
# scratch on the whole-scene captions, cached and shared by every seed and by GroupViT's runs).
# `maskclip@zeroshot` evaluates that CLIP as is; `maskclip` fine-tunes it with CLIP's own loss on
# the referring expressions (no masks) before evaluating.
_base_ = ['_base_/synthref.py']

method = dict(
    type="maskclip",
    input_size=64,                   # the stand-in's native size: an 8×8 patch grid
    finetune=True,
    templates=["a photo of {}."],    # prompt ensemble: ℓ2-normalise each, average, re-normalise
    clip=dict(checkpoint=None),      # None: the synthref stand-in (its defaults, CLIP_STANDIN)
)

# Schedule: see the measurement note at the end of this file.
train = dict(
    batch_size=32,
    lr=1e-5,
    weight_decay=0.1,
    schedule="constant",
    warmup_steps=0,
    epochs=2,
)

protocol = dict(minmax=True)

_TINY_CLIP = dict(embed_dim=16, vision_cfg=dict(image_size=64, patch_size=16, width=32, layers=2, head_width=16),
                  text_cfg=dict(context_length=16, width=32, heads=2, layers=1), steps=5, batch_size=16, warmup=1)
profiles = dict(
    smoke=dict(method=dict(clip=dict(standin=_TINY_CLIP)), train=dict(max_steps=4)),
    ci=dict(train=dict(epochs=1, max_steps=100)),
    full=dict(),
)

variants = dict(zeroshot=dict(method=dict(finetune=False)))

# Measurements (synthref val mIoU, seed 0, full profile, 2 CPU cores): see the report in the
# commit that set these values.
