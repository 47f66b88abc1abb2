# The synthref ViT stand-in that SaG and TSEG share (VIT_STANDIN, harness/backbones/vit.py), set
# once here so both read the same backbone: its 3 blocks attend locally, a patch only to the
# patches within 1 grid step (the class token to all), so an output patch token sees 7×7 patches
# (28 px, about one object and its surround) and not the whole image. The stand-in is trained by
# label-to-patch scores pooled over patches; with global attention that loss can be met by patches
# that all carry the whole scene (the CLIP stand-in showed it: configs/maskclip.py). Measured on
# synthref val at run seed 0, stand-in seeds 0 / 1 / 2 (mIoU / gap / pointing):
#   TSEG, global attention   5.98 / 4.00 / 30.5    7.89 / 5.84 / 28.8    7.47 / 5.57 / 31.7
#   TSEG, radius 1          10.48 / 7.91 / 32.1   11.24 / 8.74 / 34.8    9.37 / 7.43 / 31.4
#   SaG (stand-in seed 0): global 7.80 / 0.32 / 9.5, radius 1 6.47 / 1.96 / 9.5
method = dict(vit=dict(standin=dict(local_radius=1)))
