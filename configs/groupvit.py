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
    hard_assignment=False,   # True: argmax group per patch, winning text per group ({0, 1} maps)
    backbone=dict(
        checkpoint=None,     # synthref: no web weights exist; the stand-in below is pretrained instead
        # GroupViT-S's two grouping stages scaled to 64 px: 64 patches -> 16 groups -> 4 groups.
        arch=dict(image_size=64, patch_size=8, hidden_size=128, intermediate_size=512, num_attention_heads=4,
                  depths=[2, 2, 1], num_group_tokens=[16, 4, 0], num_output_groups=[16, 4, 4],
                  text_hidden_size=128, text_intermediate_size=512, text_layers=2, text_heads=4,
                  context_length=48, projection_dim=128, projection_intermediate_dim=512),
        mean=[0.485, 0.456, 0.406],
        std=[0.229, 0.224, 0.225],
        # From-scratch pretraining on synthref's whole-scene captions (the stand-in for CC12M+YFCC),
        # cached by config hash and shared by every seed.
        standin=dict(steps=300, batch_size=64, lr=1e-3, weight_decay=0.05, warmup=30, phrases=2, seed=0),
    ),
)

# The protocol's fine-tuning: batch 32, lr 1e-5, GroupViT's loss (K phrases of the expression).
train = dict(batch_size=32, lr=1e-5, weight_decay=0.05, epochs=1, schedule="constant", warmup_steps=0,
             grad_clip=1.0, phrases=2)

# The score is already P(query | pixel) with 0.5 the assignment boundary; min-max would move
# that boundary per image (and make a map with no query pixel non-empty), so it stays off, as
# the SaG authors thresholded the assignment itself.
protocol = dict(minmax=False)

profiles = dict(
    smoke=dict(method=dict(backbone=dict(standin=dict(steps=4, batch_size=16, warmup=1))),
               train=dict(max_steps=2)),
    ci=dict(method=dict(backbone=dict(standin=dict(steps=60, warmup=6))), train=dict(max_steps=30)),
    full=dict(),
)

variants = dict(
    zeroshot=dict(method=dict(finetune=False)),
    hard=dict(method=dict(hard_assignment=True)),
)

# Measured (synthref seed 0, full profile, 2 shared CPU cores under load ~7, OMP_NUM_THREADS=1):
# stand-in 300 steps in 257 s wall, loss (5 windows) 7.46 -> 6.02 -> 5.53 -> 5.19 -> 5.04;
# fine-tuning 123 steps (1 epoch, bs 32, lr 1e-5) in 47 s, loss ~10.0 flat;
# val mIoU 2.01 zero-shot, 2.09 fine-tuned: the 4 final groups come out nearly identical
# (score std within an image ~2e-4), so each image is labelled almost wholly query or wholly
# background, the collapse of a GroupViT with little text supervision. No other schedule was
# tried yet, so the protocol's bs 32 / lr 1e-5 stays.
