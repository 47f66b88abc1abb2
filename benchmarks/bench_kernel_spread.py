"""The ci profile under other CPU kernel choices: what one machine can show of another CPU.

    python benchmarks/bench_kernel_spread.py                       # every choice below, seed 0
    python benchmarks/bench_kernel_spread.py --choices default,aten_avx2 --seeds 0,1,2
    python benchmarks/bench_kernel_spread.py --summarise            # only re-read the stores
    python benchmarks/bench_kernel_spread.py --choices aten_avx2 --methods sag \
        --merge-into configs/reference/kernel_spread.json --why "new SaG default"   # re-measure one method

PyTorch on x86 picks its kernels by the CPU it finds: ATen's vectorised kernels by ISA
(`ATEN_CPU_CAPABILITY`), MKL's GEMM by ISA and vendor (`MKL_ENABLE_INSTRUCTIONS`, and its
conditional-numerical-reproducibility mode `MKL_CBWR`), oneDNN's convolutions by ISA
(`ONEDNN_MAX_CPU_ISA`). Capping each one stands in for a CPU that lacks the instructions above
the cap. Every choice runs `.ci/run`'s gate run (`harness run --profile ci`) in a child process
with its own empty cache (the stand-ins pretrain under the same kernels, as on a fresh CI
machine) into `OUT/<choice>/seed<k>`, and the metrics land in `OUT/spread.json`:

    {"choices": {name: env}, "metrics": {choice: {metric key: value}}, "seconds": {choice: s},
     "platform": {...}}

The child is started with `SAG_HARNESS_KERNELS=native` so the harness's own pinning
(harness/numerics.py) does not override the choice under study. `harness check --spread` and
`configs/reference/tolerances.py` read this file; it prints a table and asserts nothing.

`--merge-into STUDY` re-measures part of a committed study after a change to some methods (run
only those, `--methods`): their figures here replace theirs under each choice measured here; under
the study's other choices and other platforms (figures of a CPU this machine is not) their old
figures are dropped, since they measured the methods as they were. The study's `remeasured` records what was replaced, where,
when and why (`--why`). Then `python -m harness check --reference configs/reference/ci.json
--tolerances-from STUDY` re-derives the gate's tolerances (configs/reference/README.md).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

METHODS = "sag,maskclip,maskclip@zeroshot,groupvit,groupvit@zeroshot,tseg,whole,objects"

# name -> environment of the child (on top of SAG_HARNESS_KERNELS=native).
CHOICES = {
    "default": {},
    "aten_avx2": {"ATEN_CPU_CAPABILITY": "avx2"},
    "mkl_avx2": {"MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "onednn_avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2"},
    "mkl_cbwr_avx2": {"MKL_CBWR": "AVX2"},
    "pinned": {"SAG_HARNESS_KERNELS": "pinned"},
}


def run_choice(name: str, env_extra: dict, seed: int, out: Path, methods: str = METHODS) -> float:
    store = out / name / f"seed{seed}"
    env = dict(os.environ)
    env.update({"SAG_HARNESS_KERNELS": "native", "SAG_HARNESS_CACHE": str(out / name / "cache")})
    env.update(env_extra)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "harness", "run", "--profile", "ci", "--seeds", str(seed),
                    "--no-progress", "--out", str(store), "--methods", methods],
                   cwd=ROOT, env=env, check=True)
    return time.perf_counter() - start


def summarise(out: Path, platforms=()) -> dict:
    from harness.numerics import platform_record
    from harness.report.check import store_metrics, store_platforms
    from harness.report.gap_floors import store_gaps

    doc = json.loads((out / "spread.json").read_text()) if (out / "spread.json").is_file() else {}
    doc.setdefault("choices", {})
    doc.setdefault("seconds", {})
    metrics, gaps, recorded = {}, {}, {}
    for choice_dir in sorted(p for p in out.iterdir() if p.is_dir()):
        for store in sorted(choice_dir.glob("seed*")):
            found = store_metrics(store)
            if found:
                metrics.setdefault(choice_dir.name, {}).update(found)
                gaps.setdefault(f"{choice_dir.name}/{store.name}", {}).update(
                    {k: round(v, 4) for k, v in store_gaps(store).items()})
                recorded[f"{choice_dir.name}/{store.name}"] = store_platforms(store)
    doc["metrics"], doc["gaps"], doc["run_platforms"] = metrics, gaps, recorded
    doc["platform"] = platform_record()
    for spec in platforms:   # NAME=PATH[:FIELD]: figures measured on another CPU
        name, _, rest = spec.partition("=")
        path, _, field = rest.partition(":")
        other = json.loads(Path(path).read_text())
        doc.setdefault("platforms", {})[name] = {
            "source": rest, "about": other.get("about"), "platform": other.get("platform"),
            "metrics": other[field or "metrics"]}
    (out / "spread.json").write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    return doc


def method_of(key: str) -> str:
    """`synthref/sag/seed0/val/tau=0.50/mIoU` → `synthref/sag` (a gap key is already a method)."""
    return "/".join(key.split("/")[:2])


def merge_into(study_path: Path, doc: dict, why: str) -> dict:
    """The committed study with the figures of the methods `doc` measured replaced by doc's."""
    study = json.loads(study_path.read_text())
    measured = {choice: {method_of(k) for k in figures} for choice, figures in doc["metrics"].items()}
    methods = sorted(set().union(*measured.values()))
    for choice in sorted(set(study["metrics"]) | set(doc["metrics"])):
        kept = {k: v for k, v in study["metrics"].get(choice, {}).items() if method_of(k) not in methods}
        study["metrics"][choice] = dict(sorted({**kept, **doc["metrics"].get(choice, {})}.items()))
    for run in sorted(set(study.get("gaps", {})) | set(doc["gaps"])):
        kept = {k: v for k, v in study.get("gaps", {}).get(run, {}).items() if k not in methods}
        study.setdefault("gaps", {})[run] = dict(sorted({**kept, **doc["gaps"].get(run, {})}.items()))
    for run in doc["run_platforms"]:
        study.setdefault("run_platforms", {})[run] = doc["run_platforms"][run]
    for name, entry in study.get("platforms", {}).items():
        entry["metrics"] = {k: v for k, v in entry["metrics"].items() if method_of(k) not in methods}
    study.setdefault("choices", {}).update(doc.get("choices", {}))
    for method in methods:
        study.setdefault("remeasured", {})[method] = {
            "choices": sorted(c for c, found in measured.items() if method in found),
            "dropped_from": sorted(f"platform:{n}" for n in study.get("platforms", {}))
                            + sorted(f"choice:{c}" for c in study["metrics"] if method not in measured.get(c, ())),
            "platform": doc["platform"], "why": why,
            "seconds": doc.get("seconds", {})}   # these runs' own (only the methods measured here)
    study_path.write_text(json.dumps(study, indent=1, sort_keys=True) + "\n")
    return study


def print_table(doc: dict) -> None:
    choices = sorted(doc["metrics"])
    keys = sorted({k for m in doc["metrics"].values() for k in m if k.endswith("/mIoU")})
    print("metric".ljust(58) + "".join(c[:13].rjust(14) for c in choices))
    for key in keys:
        print(key.ljust(58) + "".join(
            (f"{doc['metrics'][c][key]:.4f}" if key in doc["metrics"][c] else "–").rjust(14) for c in choices))
    for c in choices:
        if c in doc.get("seconds", {}):
            print(f"{c}: {doc['seconds'][c]:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--choices", default=",".join(CHOICES), help=f"comma-separated of {', '.join(CHOICES)}")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--out", default=str(ROOT / "results" / "kernel-spread"))
    parser.add_argument("--summarise", action="store_true", help="only re-read the stores in --out")
    parser.add_argument("--platform", action="append", default=[], metavar="NAME=PATH[:FIELD]",
                        help="add figures measured on another CPU (a JSON file; FIELD: its metrics "
                             "object, default `metrics`) under `platforms`")
    parser.add_argument("--methods", default=METHODS, help="method specs to run (default: the gate's)")
    parser.add_argument("--merge-into", type=Path, default=None, metavar="STUDY",
                        help="replace these methods' figures in a committed study (see above)")
    parser.add_argument("--why", default="", help="with --merge-into: the reason, recorded in the study")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not args.summarise:
        for name in args.choices.split(","):
            if name not in CHOICES:
                parser.error(f"--choices: unknown choice {name!r}; expected one of {', '.join(CHOICES)}")
            for seed in (int(s) for s in args.seeds.split(",")):
                seconds = run_choice(name, CHOICES[name], seed, out, args.methods)
                doc = summarise(out)
                doc["choices"][name] = CHOICES[name]
                doc["seconds"][f"{name}/seed{seed}"] = round(seconds, 1)
                (out / "spread.json").write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    doc = summarise(out, args.platform)
    if args.merge_into is not None:
        if not args.why:
            parser.error("--merge-into: say why with --why (it is recorded in the study)")
        doc = merge_into(args.merge_into, doc, args.why)
        print(f"merged {', '.join(sorted(doc['remeasured']))} into {args.merge_into}")
    print_table(doc)


if __name__ == "__main__":
    main()
