# Shared defaults for every method on the real datasets (refcoco, refcoco+, refcocog, phrasecut).
# A method's `configs/<method>_refcoco.py` starts with `_base_ = ['_base_/real.py']`.
# The protocol is the same as on synthref (DESIGN §5); only the batch is smaller because images
# are ~640×480 and models are ViT-B/ViT-S at 224–384 px.
#
# Training precision: `train.amp` is absent (fp32) unless set (harness/run/fit_loop.py):
#   --set train.amp=bf16   bfloat16 autocast, on the CPU or a GPU with bf16 (Ampere or newer)
#   --set train.amp=fp16   float16 autocast with a GradScaler, CUDA GPUs only
# Set, it is part of the config hash (the figures change). Memory and speed of each: docs/gpu.md.

runtime = dict(
    eval_batch_size=16,     # images per predict() call at evaluation
    save_checkpoint=False,  # write model.pt next to metrics.json
    # None: PyTorch's own intra-op thread count (the machine's cores). On CPU the figures then
    # depend on the machine; pin it (e.g. --set runtime.torch_threads=8) to compare CPU runs.
    torch_threads=None,
)

protocol = dict(
    minmax=True,
    # Test-time sampling draws per trained model (synthref.py says what they are); 3, as the
    # paper's "3 experiments", since a draw is a full evaluation pass on real data.
    inference_draws=3,
    crf=dict(
        iterations=10,
        bilateral_sxy=80,
        bilateral_srgb=13,
        bilateral_compat=10,
        gaussian_sxy=3,
        gaussian_compat=3,
    ),
)
