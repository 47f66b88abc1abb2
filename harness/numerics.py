"""Which CPU kernels the harness computes with, set once before torch loads, and the platform record.

PyTorch on x86 picks code by the CPU it finds, and each choice rounds floats its own way:
ATen's vectorised kernels by ISA (`ATEN_CPU_CAPABILITY`), MKL's GEMM by ISA *and vendor*
(`MKL_ENABLE_INSTRUCTIONS`; its conditional-numerical-reproducibility mode `MKL_CBWR`), oneDNN's
convolutions by ISA (`ONEDNN_MAX_CPU_ISA`). Each library reads its variable once, when it loads
or first dispatches, so the choice is made here, by `apply_kernels()`, before anything imports
torch: `harness/__init__.py` calls it, and child processes (parallel jobs, torchrun workers)
inherit the environment.

`SAG_HARNESS_KERNELS` (or `run --reproducible`, which sets it before torch loads):
- `native` (default): the fast kernels the CPU offers. Bit-identical on one machine; across CPU
  types the figures move within the bands that `configs/reference/ci.json` records.
- `pinned`: `PINNED` below — the kernels chosen so one config + seed give the same bits on any
  x86 CPU with AVX2 at the same thread count (what each setting buys, and its measured cost:
  docs/portability.md). A variable the user already set is left as it is, and recorded.

`platform_record()` is what every run writes to its config.json under "platform", and what
`check` compares between a reference and a store.
"""

from __future__ import annotations

import os
import platform as _platform
import sys

from harness.errors import ConfigError

KERNELS_ENV = "SAG_HARNESS_KERNELS"
MODES = ("native", "pinned")

# The variables that choose CPU kernels (and so float rounding), recorded with every run.
KERNEL_VARIABLES = ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "MKL_ENABLE_INSTRUCTIONS", "MKL_DEBUG_CPU_TYPE",
                    "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "OMP_NUM_THREADS", "MKL_NUM_THREADS")

# `pinned`: every library held to code that exists, and rounds the same, on every AVX2 CPU.
# MKL_CBWR=AVX2 is not enough: on a non-Intel CPU MKL ignores it and takes its AUTO branch (MKL's
# developer guide, "Getting Started with Conditional Numerical Reproducibility"), so MKL is held to
# its COMPATIBLE branch, the one branch MKL documents as the same on Intel and compatible CPUs.
PINNED = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_CBWR": "COMPATIBLE",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
}

# CPU flags that change which kernels run.
FLAGS_THAT_MATTER = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16")


def kernel_mode() -> str:
    """The mode in force: `native` or `pinned` (ConfigError for anything else)."""
    mode = os.environ.get(KERNELS_ENV, "native").strip().lower() or "native"
    if mode not in MODES:
        raise ConfigError(f"environment variable {KERNELS_ENV}={os.environ[KERNELS_ENV]!r}: "
                          f"expected one of {', '.join(MODES)}")
    return mode


def apply_kernels(mode: str | None = None) -> dict:
    """Set the pinned variables (mode `pinned`) unless the user set them; {variable: value} set.

    Must run before torch is imported to take effect; after that it only records a mismatch
    (`platform_record()["kernels_effective"]` is False)."""
    mode = mode or kernel_mode()
    os.environ[KERNELS_ENV] = mode
    applied = {}
    if mode == "pinned":
        for name, value in PINNED.items():
            if name not in os.environ:
                os.environ[name] = value
                applied[name] = value
    global _APPLIED_BEFORE_TORCH
    _APPLIED_BEFORE_TORCH = _APPLIED_BEFORE_TORCH and "torch" not in sys.modules
    return applied


_APPLIED_BEFORE_TORCH = True


def _cpu_info() -> tuple[str, set]:
    model, flags = _platform.processor() or _platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as handle:
            text = handle.read()
    except OSError:
        return model, flags
    for line in text.splitlines():  # the first processor's lines are enough
        key, _, value = line.partition(":")
        if key.strip() == "model name" and model in (_platform.processor(), _platform.machine()):
            model = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = set(value.split())
    return model, flags


def platform_record() -> dict:
    """The platform facts that can change a float result: CPU, ISA in use, BLAS, threads, CUDA."""
    import torch

    model, flags = _cpu_info()
    build = torch.__config__.show()
    record = {
        "cpu_model": model,
        "cpu_vendor": ("AMD" if "AMD" in model.upper() else "Intel" if "INTEL" in model.upper() else "other"),
        "cpu_flags": {flag: flag in flags for flag in FLAGS_THAT_MATTER},
        "machine": _platform.machine(),
        "kernel_mode": os.environ.get(KERNELS_ENV, "native"),
        "kernels_effective": _APPLIED_BEFORE_TORCH,
        "aten_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "blas": _blas_name(build),
        "mkl_version": _line_with(build, "Math Kernel Library Version"),
        "onednn_version": _line_with(build, "MKL-DNN"),
        "environment": {name: os.environ.get(name) for name in KERNEL_VARIABLES},
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cuda": None,
    }
    if torch.cuda.is_available():
        index = torch.cuda.current_device()
        record["cuda"] = {"device": torch.cuda.get_device_name(index),
                          "capability": ".".join(map(str, torch.cuda.get_device_capability(index))),
                          "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version()}
    return record


def _blas_name(build: str) -> str:
    """BLAS_INFO of torch's build settings (`torch.__config__.show()`)."""
    for part in build.replace(",", "\n").splitlines():
        if "BLAS_INFO=" in part:
            return part.split("BLAS_INFO=", 1)[1].strip()
    return "unknown"


def _line_with(build: str, needle: str) -> str | None:
    for line in build.splitlines():
        if needle in line:
            return line.strip(" -")
    return None


# What must agree for two runs to be expected bit-identical (threads are part of the config hash).
BIT_KEYS = ("cpu_vendor", "aten_cpu_capability", "blas", "mkl_version", "onednn_version", "torch", "threads")


def bit_differences(reference: dict | None, here: dict | None) -> list[str]:
    """Human-readable reasons two platform records may round differently ([] when none is seen).

    Under `pinned` kernels on both sides, the vendor and the CPU's own ISA no longer choose the
    code; the library versions and the pinned variables still do."""
    if not reference or not here:
        return ["one side records no platform"]
    pinned = reference.get("kernel_mode") == here.get("kernel_mode") == "pinned"
    keys = [k for k in BIT_KEYS if not (pinned and k == "cpu_vendor")]
    reasons = [f"{k}: {reference.get(k)!r} vs {here.get(k)!r}" for k in keys if reference.get(k) != here.get(k)]
    if reference.get("kernel_mode") != here.get("kernel_mode"):
        reasons.append(f"kernel_mode: {reference.get('kernel_mode')!r} vs {here.get('kernel_mode')!r}")
    ref_env, env = reference.get("environment") or {}, here.get("environment") or {}
    for name in sorted(set(ref_env) | set(env)):
        if name not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS") and ref_env.get(name) != env.get(name):
            reasons.append(f"{name}: {ref_env.get(name)!r} vs {env.get(name)!r}")
    if not pinned:
        flags_ref, flags = reference.get("cpu_flags") or {}, here.get("cpu_flags") or {}
        for flag in FLAGS_THAT_MATTER:
            if flags_ref.get(flag) != flags.get(flag):
                reasons.append(f"cpu flag {flag}: {flags_ref.get(flag)} vs {flags.get(flag)}")
    return reasons
