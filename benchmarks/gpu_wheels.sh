#!/usr/bin/env bash
# Packages for a GPU machine that has no package registry (docs/gpu.md, section 5a).
#
# On the CPU machine (pip reaches PyPI), into a folder that travels with the checkout:
#     bash benchmarks/gpu_wheels.sh download .whl [PYTHON_VERSION]    # default 3.12
# On the GPU machine, whose image already holds torch, torchvision, timm, transformers, numpy,
# pandas, matplotlib, opencv, tqdm and tabulate:
#     eval "$(bash benchmarks/gpu_wheels.sh install .whl /tmp/site)"   # sets PYTHONPATH
#     bash benchmarks/gpu_check.sh --no-install
#
# The wheels are the harness's needs that such an image lacks, at constraints.txt's versions where
# it pins them. pydensecrf2 ships only an sdist whose setup.py asks for Cython 0.29 at build time
# (a download): the copy saved here drops that request, so the GPU machine builds it with its own
# Cython, offline (~30 s).
set -euo pipefail
cd "$(dirname "$0")/.."

pinned() { grep -i "^$1==" constraints.txt || echo "$1"; }

case "${1:-}" in
    download)
        dir="${2:?usage: gpu_wheels.sh download DIR [PYTHON_VERSION]}" python="${3:-3.12}"
        mkdir -p "$dir"
        platforms=()
        for p in manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux_2_28_x86_64 manylinux_2_31_x86_64 \
                 manylinux_2_34_x86_64 manylinux_2_35_x86_64 any; do platforms+=(--platform "$p"); done
        for package in open_clip_torch mmengine addict yapf termcolor platformdirs pycocotools ftfy wcwidth; do
            python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$python" \
                --implementation cp "${platforms[@]}" -d "$dir" "$(pinned "$package")"
        done
        work=$(mktemp -d)
        python3 -m pip download -q --no-deps --no-binary=:all: -d "$work" "$(pinned pydensecrf2)"
        tar xzf "$work"/pydensecrf2-*.tar.gz -C "$work"
        source=$(find "$work" -maxdepth 1 -type d -name 'pydensecrf2-*')
        sed -i '/setup_requires/d' "$source/setup.py"
        sed -i 's/"Cython==[0-9.]*"/"Cython"/' "$source/pyproject.toml"
        tar czf "$dir/$(basename "$source").tar.gz" -C "$work" "$(basename "$source")"
        rm -rf "$work"
        ls -l "$dir" >&2 ;;
    install)
        dir="${2:?usage: gpu_wheels.sh install DIR TARGET}" target="$(realpath -m "${3:?usage: gpu_wheels.sh install DIR TARGET}")"
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$target" "$dir"/*.whl >&2
        python3 -m pip install -q --no-build-isolation --no-deps --no-index --target "$target" \
            "$dir"/pydensecrf2-*.tar.gz >&2
        PYTHONPATH="$target:$PWD" python3 -c "import harness.cli, pydensecrf.densecrf, open_clip, mmengine" >&2
        echo "export PYTHONPATH=$target:$PWD" ;;
    *)
        echo "usage: gpu_wheels.sh download DIR [PYTHON_VERSION] | install DIR TARGET" >&2
        exit 2 ;;
esac
