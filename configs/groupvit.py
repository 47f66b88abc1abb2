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
        # GroupViT-S's two stages (64 -> 16 -> 4) both stages collapsed (measurements at the end).
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

# The protocol's fine-tuning: batch 32, lr 1e-5, GroupViT's loss (K phrases of the expression).
train = dict(batch_size=32, lr=1e-5, weight_decay=0.05, epochs=1, schedule="constant", warmup_steps=0,
             grad_clip=1.0, phrases=2)

# The maps are already the decision ({0, 1} by the official rule; P(query | pixel) with 0.5 the
# boundary for @soft): min-max would move that boundary per image (and make a map with no query
# pixel non-empty), so it stays off, as the SaG authors thresholded the assignment itself.
protocol = dict(minmax=False)

profiles = dict(
    smoke=dict(method=dict(backbone=dict(standin=dict(steps=4, batch_size=16, warmup=1))),
               train=dict(max_steps=2)),
    ci=dict(method=dict(backbone=dict(standin=dict(steps=60, warmup=6))), train=dict(max_steps=30)),
    full=dict(),
)

variants = dict(
    zeroshot=dict(method=dict(finetune=False)),
    soft=dict(method=dict(mask_rule="soft")),
    hard=dict(method=dict(mask_rule="hard")),
)

# Measured 2026-11-25 (synthref val, seed 0, full profile, OMP_NUM_THREADS=1; CPU-s = user+sys).
# Whole-image floor: 2.9 mIoU. The old stand-in (two stages 64 -> 16 -> 4 groups, 300 steps,
# ~125 CPU-s) scored 2.01 zero-shot / 2.09 fine-tuned because the GROUPING collapsed, not the text
# side: under argmax only 2.4 of the 16 stage-1 groups and 1.3 of the 4 final groups receive any
# patch, and the soft assignment is near uniform (max 0.09 against 1/16), so every patch's score is
# the same mixture of near-identical groups and an image is all query or all background.
#   stand-in (200 steps, 64 px, 8x8 patches)        groups used (argmax)   zero-shot mIoU soft / hard
#   two stages 16 -> 4, hard Gumbel (300 steps)        2.4 -> 1.3            2.01 / 1.99
#   two stages 16 -> 4, soft Gumbel                     3.9 -> 1.2            2.09 / 2.16
#   one stage  8 groups, hard Gumbel (chosen)           2.9 of 8              2.83 / 3.14
#   one stage  8 groups, soft Gumbel (180 steps)        3.5 of 8              2.48 / 2.70
#   one stage 16 groups, hard Gumbel                    2.9 of 16             2.31 / 3.16
#   one stage  8 groups, hard Gumbel, stand-in lr 3e-3  1.6 of 8              1.39 / 2.35
#   one stage  8 groups, width 64, 400 steps (~70 CPU-s) 2.7 of 8             2.43 / 3.24
# Chosen: one stage of 8 groups, 200 steps (~90 CPU-s; the budget allows no more). Through the CLI
# (seeds 0,1,2; floor val/testA/testB 2.9/3.3/3.0): zero-shot val 2.83, testA 3.49, testB 2.75;
# fine-tuned (1 epoch, 123 steps, bs 32, lr 1e-5, fit ~25 s) val 2.90±0.08, testA 3.67±0.06,
# testB 2.77±0.03. Seed 0, lr 1e-4 fine-tunes
# to 2.51 (soft) / 2.86 (hard), so the protocol's lr 1e-5 stays. OPEN: the groups still collapse to
# ~3 per image and GroupViT stays at the whole-image floor; neither the Gumbel mode nor the group
# count fixed that within the ~90 s stand-in budget.
