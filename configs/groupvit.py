# GroupViT on the embedded benchmark (synthref, synthref+, synthrefg), by the SaG authors' protocol
# (supplementary §B): the expression plus a dummy query "a photo of a nothing"; groups go to the
# more similar text. `groupvit@zeroshot` is the stand-in as pretrained; `groupvit` is fine-tuned on
# the train split's (image, expression) pairs with GroupViT's own loss.
_base_ = ['_base_/synthref.py']

method = dict(
    type="groupvit",
    input_size=64,
    finetune=True,
    dummy_query="a photo of a nothing",
    # "official": NVlabs' rule (soft maps upsampled to the image, argmax group per pixel, the group's
    # text; {0, 1} maps); "soft": P(query | group) under the soft assignment; "hard": argmax group per
    # patch before upsampling (baselines/groupvit.py).
    mask_rule="official",
    backbone=dict(
        checkpoint=None,     # synthref: no web weights exist; the stand-in below is pretrained instead
        # One grouping stage (GroupViT's 1-stage ablation) at 64 px: 64 patches -> 8 groups. With
        # GroupViT-S's two stages (64 -> 16 -> 4) both stages collapsed (docs/synthref_history.md).
        arch=dict(image_size=64, patch_size=8, hidden_size=128, intermediate_size=512, num_attention_heads=4,
                  depths=[3, 2], num_group_tokens=[8, 0], num_output_groups=[8, 8],
                  text_hidden_size=128, text_intermediate_size=512, text_layers=2, text_heads=4,
                  context_length=48, projection_dim=128, projection_intermediate_dim=512),
        mean=[0.485, 0.456, 0.406],
        std=[0.229, 0.224, 0.225],
        # From-scratch pretraining on synthref's whole-scene captions (the stand-in for CC12M+YFCC),
        # cached by config hash and shared by every seed.
        standin=dict(steps=200, batch_size=64, lr=1e-3, weight_decay=0.05, warmup=20, phrases=2, seed=0),
    ),
)

# GroupViT's loss (K phrases of the expression) at the synthref budget (configs/_base_/synthref.py).
train = dict(weight_decay=0.05, schedule="constant", warmup_steps=0, grad_clip=1.0, phrases=2)

# The maps are already the decision ({0, 1} by the official rule; P(query | pixel) with 0.5 the
# boundary for @soft): min-max would move that boundary per image (and make a map with no query
# pixel non-empty), so it stays off, as the SaG authors thresholded the assignment itself.
protocol = dict(minmax=False)

profiles = dict(
    smoke=dict(method=dict(backbone=dict(standin=dict(steps=4, batch_size=16, warmup=1))),
               train=dict(max_steps=2)),
    ci=dict(method=dict(backbone=dict(standin=dict(steps=60, warmup=6)))),
    full=dict(),
)

variants = dict(
    zeroshot=dict(method=dict(finetune=False)),
    soft=dict(method=dict(mask_rule="soft")),
    hard=dict(method=dict(mask_rule="hard")),
)
