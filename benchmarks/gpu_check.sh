#!/usr/bin/env bash
# The one prepared GPU check (docs/gpu.md). On a bare GPU machine, from the checkout:
#
#     bash benchmarks/gpu_check.sh [--out results/gpu-check] [--no-install | --wheels DIR]
#
# installs the harness with the README's command (or, with --wheels DIR on a machine without a
# package registry, the wheels benchmarks/gpu_wheels.sh saved), then runs benchmarks/gpu_check.py: the ci profile
# on CUDA with the gate's verdict against the CPU reference, real-config SaG and MaskCLIP steps/s and
# peak GPU memory at batch 32 with and without AMP, and a 1-GPU torchrun DDP step on NCCL, all into
# <out>/gpu_check.json, in about 8 minutes. The CPU rehearsal (tests/test_gpu_check.py runs it):
#
#     bash benchmarks/gpu_check.sh --device cpu --dry-run --out DIR
set -euo pipefail
cd "$(dirname "$0")/.."

device=cuda out=results/gpu-check install=1 dry_run=() wheels=""
python="${PYTHON:-$(command -v python || command -v python3)}"   # GPU images may have only python3
while [ $# -gt 0 ]; do
    case "$1" in
        --device) device="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --no-install) install=0; shift ;;
        --wheels) wheels="$2"; shift 2 ;;
        --dry-run) dry_run=(--dry-run); install=0; shift ;;
        *) echo "gpu_check.sh: unknown option $1 (expected --device cuda|cpu, --out DIR, --no-install, --wheels DIR, --dry-run)" >&2
           exit 2 ;;
    esac
done

# cuBLAS picks deterministic kernels only with a fixed workspace; the harness asks torch for
# deterministic algorithms (harness/seeding.py), which otherwise warns on every matmul.
export CUBLAS_WORKSPACE_CONFIG="${CUBLAS_WORKSPACE_CONFIG:-:4096:8}"

install_seconds=0
if [ -n "$wheels" ]; then       # no registry: the carried wheels, and the checkout on PYTHONPATH
    if ! compgen -G "$wheels/*.whl" > /dev/null || ! compgen -G "$wheels/pydensecrf2-*.tar.gz" > /dev/null; then
        echo "gpu_check.sh: --wheels $wheels: expected the wheels and the pydensecrf2 sdist that" \
             "'bash benchmarks/gpu_wheels.sh download $wheels' saves" >&2
        exit 2
    fi
    started=$(date +%s)
    eval "$(PATH="$(dirname "$python"):$PATH" bash benchmarks/gpu_wheels.sh install "$wheels" "$out/site")"
    export PYTHONPATH
    install_seconds=$(( $(date +%s) - started ))
elif [ "$install" = 1 ]; then
    started=$(date +%s)
    "$python" -m pip install -c constraints.txt -e '.[test]'
    install_seconds=$(( $(date +%s) - started ))
fi
if [ "$device" = cuda ] && ! "$python" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_check.sh: torch sees no CUDA GPU here (torch.cuda.is_available() is False); --device cpu --dry-run rehearses on the CPU" >&2
    exit 2
fi
exec "$python" benchmarks/gpu_check.py --device "$device" --out "$out" --install-seconds "$install_seconds" "${dry_run[@]}"
