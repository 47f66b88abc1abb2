"""benchmarks/bench_kernel_spread.py --merge-into: re-measuring one method of a committed study
replaces its figures where they were measured again and drops them where they were not (other
kernel choices, other CPUs), so no tolerance is derived from a method as it was before a change."""

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_kernel_spread.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_kernel_spread", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SAG, CLIP = "synthref/sag/seed0/val/tau=0.50/mIoU", "synthref/maskclip/seed0/val/tau=0.50/mIoU"


def test_merge_replaces_the_remeasured_method_and_drops_its_stale_figures(tmp_path):
    study = tmp_path / "study.json"
    study.write_text(json.dumps({
        "choices": {"default": {}, "aten_avx2": {"ATEN_CPU_CAPABILITY": "avx2"}, "mkl_avx2": {}},
        "metrics": {"default": {SAG: 13.0, CLIP: 13.4}, "aten_avx2": {SAG: 13.1, CLIP: 13.5},
                    "mkl_avx2": {SAG: 13.0, CLIP: 13.4}},
        "gaps": {"default/seed0": {"synthref/sag": 0.1, "synthref/maskclip": 5.2},
                 "mkl_avx2/seed0": {"synthref/sag": 0.1, "synthref/maskclip": 5.2}},
        "platforms": {"intel": {"metrics": {SAG: 12.9, CLIP: 13.4}}},
        "run_platforms": {}, "seconds": {"default/seed0": 600.0}}))
    measured = {"metrics": {"default": {SAG: 9.0}, "aten_avx2": {SAG: 9.2}},
                "gaps": {"default/seed0": {"synthref/sag": 4.0}, "aten_avx2/seed0": {"synthref/sag": 4.1}},
                "run_platforms": {"default/seed0": [{"cpu_vendor": "AMD"}]},
                "choices": {"default": {}, "aten_avx2": {"ATEN_CPU_CAPABILITY": "avx2"}},
                "seconds": {"default/seed0": 200.0}, "platform": {"cpu_vendor": "AMD"}}

    merged = _bench().merge_into(study, measured, "a new default")

    assert merged == json.loads(study.read_text())
    assert merged["metrics"]["default"] == {SAG: 9.0, CLIP: 13.4}
    assert merged["metrics"]["aten_avx2"] == {SAG: 9.2, CLIP: 13.5}
    assert merged["metrics"]["mkl_avx2"] == {CLIP: 13.4}            # measured as it was: dropped
    assert merged["platforms"]["intel"]["metrics"] == {CLIP: 13.4}
    assert merged["gaps"]["mkl_avx2/seed0"] == {"synthref/maskclip": 5.2}
    assert merged["gaps"]["aten_avx2/seed0"] == {"synthref/sag": 4.1}
    assert merged["seconds"] == {"default/seed0": 600.0}            # the all-method run's time stays
    record = merged["remeasured"]["synthref/sag"]
    assert record["choices"] == ["aten_avx2", "default"]
    assert record["dropped_from"] == ["platform:intel", "choice:mkl_avx2"]
    assert record["why"] == "a new default" and record["seconds"] == {"default/seed0": 200.0}
