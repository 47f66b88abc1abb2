"""Pinned CPU kernels (harness/numerics.py): set before torch loads, recorded, kept apart in hashes."""

import json
import os
import subprocess
import sys
from pathlib import Path


from harness.cli import main
from harness.numerics import PINNED, bit_differences, platform_record

ROOT = Path(__file__).resolve().parents[1]

PROBE = ("import harness, os, torch, json; from harness.numerics import platform_record; "
         "print(json.dumps(platform_record()))")


def _child(code: str, **env) -> str:
    """stdout of `python -c code` in a fresh process, none of the kernel variables set but `env`."""
    full = {k: v for k, v in os.environ.items() if k not in PINNED and k != "SAG_HARNESS_KERNELS"}
    full.update(env)
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=full, check=True,
                          capture_output=True, text=True).stdout.strip()


def _child_platform(**env) -> dict:
    return json.loads(_child(PROBE, **env).splitlines()[-1])


def test_pinned_sets_every_library_before_torch_loads_and_native_leaves_them():
    pinned = _child_platform(SAG_HARNESS_KERNELS="pinned")
    assert pinned["kernel_mode"] == "pinned" and pinned["kernels_effective"] is True
    assert pinned["aten_cpu_capability"] == "AVX2"          # ATen took the variable
    assert {k: pinned["environment"][k] for k in PINNED} == PINNED
    native = _child_platform()
    assert native["kernel_mode"] == "native"
    assert all(native["environment"][k] is None for k in PINNED)
    # A variable the user set is theirs: pinned mode does not overwrite it, and it is recorded.
    mine = _child_platform(SAG_HARNESS_KERNELS="pinned", ATEN_CPU_CAPABILITY="default")
    assert mine["environment"]["ATEN_CPU_CAPABILITY"] == "default"
    assert mine["environment"]["MKL_CBWR"] == "COMPATIBLE"


def test_pinned_kernels_change_a_matmul_here_and_give_the_same_bits_twice():
    """MKL's COMPATIBLE branch computes a GEMM other than its CPU-specific one does, and the
    pinned result is repeatable: what `--reproducible` promises on one machine."""
    code = ("import harness, torch, hashlib; torch.manual_seed(0); torch.set_num_threads(2); "
            "a = torch.randn(257, 193); b = torch.randn(193, 131); "
            "print(hashlib.sha1((a @ b).numpy().tobytes()).hexdigest())")

    def digest(**env):
        return _child(code, **env)

    first, second = digest(SAG_HARNESS_KERNELS="pinned"), digest(SAG_HARNESS_KERNELS="pinned")
    assert first == second
    assert first != digest(SAG_HARNESS_KERNELS="native")


def test_reproducible_after_torch_loaded_is_refused_and_a_bad_mode_is_named(capsys, monkeypatch, tmp_path,
                                                                           synthref_root):
    import torch  # noqa: F401  (in this process the kernels are already chosen)

    monkeypatch.delenv("SAG_HARNESS_KERNELS", raising=False)
    for name in PINNED:
        monkeypatch.delenv(name, raising=False)
    args = ["run", "--methods", "whole", "--limit", "2", "--splits", "val", "--no-progress",
            "--data-root", str(synthref_root), "--out", str(tmp_path)]
    assert main(args + ["--reproducible"]) == 2
    assert "torch is already loaded" in capsys.readouterr().err
    assert not any(name in os.environ for name in PINNED)
    monkeypatch.setenv("SAG_HARNESS_KERNELS", "fastest")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "SAG_HARNESS_KERNELS='fastest'" in err and "native, pinned" in err


def test_pinned_runs_and_stand_ins_hash_apart_from_native_ones(monkeypatch, tmp_path):
    from harness.backbones.pretrain_cache import standin_key
    from harness.config import load_run_config
    from harness.run.runner import fit_hash

    (tmp_path / "captions.json").write_text("[]")
    monkeypatch.setenv("SAG_HARNESS_KERNELS", "native")
    native = load_run_config("sag", "synthref", "ci")
    native_key = standin_key("vit", {"width": 64}, tmp_path)
    monkeypatch.setenv("SAG_HARNESS_KERNELS", "pinned")
    pinned = load_run_config("sag", "synthref", "ci")
    assert "kernels" not in native.cfg["runtime"] and pinned.cfg["runtime"]["kernels"] == "pinned"
    assert native.config_hash != pinned.config_hash
    assert (fit_hash(native.cfg, "sag", "synthref", "ci") != fit_hash(pinned.cfg, "sag", "synthref", "ci"))
    assert standin_key("vit", {"width": 64}, tmp_path) != native_key


def test_platform_record_names_what_can_change_bits():
    here = platform_record()
    assert here["threads"] >= 1 and here["blas"] and here["torch"]
    assert set(here["cpu_flags"]) >= {"avx2", "avx512f", "amx_tile"}
    assert bit_differences(here, json.loads(json.dumps(here))) == []
    other = json.loads(json.dumps(here))
    other.update(cpu_vendor="Intel" if here["cpu_vendor"] != "Intel" else "AMD", aten_cpu_capability="AVX2")
    other["cpu_flags"]["amx_tile"] = not here["cpu_flags"]["amx_tile"]
    reasons = bit_differences(here, other)
    assert any(r.startswith("cpu_vendor") for r in reasons)
    assert any(r.startswith("aten_cpu_capability") for r in reasons)
    assert any("amx_tile" in r for r in reasons)
    # Both pinned: the vendor and the CPU's own flags no longer choose the code.
    for record in (here, other):
        record.update(kernel_mode="pinned", aten_cpu_capability="AVX2")
    assert bit_differences(here, other) == []
    assert bit_differences(None, here) == ["one side records no platform"]


def test_a_run_records_its_platform(synthref_root, tmp_path):
    assert main(["run", "--methods", "whole", "--seeds", "0", "--profile", "smoke", "--splits", "val",
                 "--limit", "4", "--data-root", str(synthref_root), "--out", str(tmp_path), "--no-progress"]) == 0
    record = json.loads((tmp_path / "synthref" / "whole" / "seed0" / "config.json").read_text())
    assert record["platform"]["aten_cpu_capability"] == platform_record()["aten_cpu_capability"]
    assert record["platform"]["kernel_mode"] in ("native", "pinned")
    assert "MKL_CBWR" in record["platform"]["environment"]
