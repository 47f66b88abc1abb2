"""SaG's training dynamics at the common budget: why its figure is decided by float noise (issue 24).

    python benchmarks/bench_sag_dynamics.py                                  # seed 0, default vs aten_avx2
    python benchmarks/bench_sag_dynamics.py --label release --set method.fusion_text_residual=1.0
    python benchmarks/bench_sag_dynamics.py --label grad_last --set method.slot_grad=last
    python benchmarks/bench_sag_dynamics.py --seeds 0,1 --kernels default    # two seeds, one kernel
    python benchmarks/bench_sag_dynamics.py --summarise                      # re-read what is stored

Each (kernel choice, seed) trains the synthref SaG run of `harness run --methods sag --splits val`
in a child process (ATEN_CPU_CAPABILITY=avx2 for `aten_avx2`: another CPU's vector kernels, with the
same cached stand-ins, so only SaG's own fit differs), instrumented without touching its numerics
(hooks that only read tensors, no RNG draw). Per optimiser step it records:

- the losses (C3, reconstruction, total) and the gradient's global norm before clipping;
- the norm of the gradient that reaches the slots after each of the T weight-tied iterations;
- the slots' mutual cosine (mean over pairs of one image's final slots), the normalised entropy of
  A_slot (over slots, per patch) and of A_fuse (over slots, each image with its own text);
- ‖e_t‖ against the fusion's attention update, and the spread across images of the C3 logits;
- a snapshot of every trainable parameter at a log-spaced set of steps.

The parent then measures where two runs that differ only by float rounding part ways: the
relative parameter distance ‖θ_a − θ_b‖ / ‖θ_a‖ per snapshot, the first step whose total loss
differs, and the growth rate of the distance while it is small (log-linear fit: the perturbation
doubles every ln 2 / λ steps). Two seeds of one kernel give the saturation level to compare with.
Figures go to OUT/LABEL/summary.json and OUT/LABEL/dynamics.png; snapshots are deleted after the
distances are computed unless --keep-snapshots. It asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

KERNELS = {"default": {}, "aten_avx2": {"ATEN_CPU_CAPABILITY": "avx2"}}
SNAPSHOT_STEPS = sorted({0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 299})


# ------------------------------------------------------------------------------ the child

class Recorder:
    """Per-step statistics of one SaG fit, filled by hooks (reads only)."""

    def __init__(self, snapshot_dir: Path):
        self.steps: list[dict] = []
        self.current: dict = {}
        self.snapshot_dir = snapshot_dir
        self.net = None

    def begin_step(self, net) -> None:
        import numpy as np
        import torch

        if self.current:
            self.steps.append(self.current)
        step = len(self.steps)
        self.current = {"step": step, "grad_iter": {}, "grad_sq": 0.0}
        if self.net is None:
            self.net = net
            for p in net.parameters():
                if p.requires_grad:
                    p.register_hook(self._param_hook)
        if step in SNAPSHOT_STEPS:
            with torch.no_grad():
                flat = torch.cat([p.detach().reshape(-1).double() for p in net.parameters() if p.requires_grad])
            np.save(self.snapshot_dir / f"step{step:04d}.npy", flat.numpy().astype(np.float64))

    def _param_hook(self, grad):
        self.current["grad_sq"] += float(grad.detach().double().square().sum())
        return None

    def finish(self) -> list[dict]:
        if self.current:
            self.steps.append(self.current)
            self.current = {}
        for record in self.steps:
            record["grad_norm"] = math.sqrt(record.pop("grad_sq"))
            record["grad_iter"] = [record["grad_iter"][t] for t in sorted(record["grad_iter"])]
        return self.steps


def instrument(recorder: Recorder) -> None:
    """Hooks on SaG's modules so that training steps feed `recorder`. Every hook reads tensors
    under no_grad and draws no random number, so the fit is the one the harness makes."""
    import torch
    import torch.nn.functional as F

    from sag_model.training import SaGObjective

    def entropy(probs, dim):                       # normalised to [0, 1] by log(size)
        p = probs.clamp_min(1e-12)
        return float((-(p * p.log()).sum(dim=dim) / math.log(probs.shape[dim])).mean())

    def training(module) -> bool:
        return module.training and torch.is_grad_enabled()

    def after_iteration(t, slots):                 # EntityDiscovery.iteration_hook
        if slots.requires_grad:
            slots.register_hook(lambda g: recorder.current["grad_iter"].__setitem__(t, float(g.detach().norm())))

    def after_discovery(module, inputs, out):
        if not training(module):
            return
        with torch.no_grad():
            z = F.normalize(out.slots.detach(), dim=-1)
            cos = z @ z.transpose(1, 2)                                              # [B, K, K]
            k = cos.shape[-1]
            recorder.current["slot_cos"] = float((cos.sum(dim=(1, 2)) - k).mean() / (k * (k - 1)))
            recorder.current["a_slot_entropy"] = entropy(out.attn_slot.detach(), dim=1)

    def after_fusion_attention(module, inputs, out):
        if training(module) and inputs[0].dim() == 3 and inputs[0].shape[1] > 1:    # the all-pairs call
            recorder.current["fusion_update_norm"] = float(out[0].detach().norm(dim=-1).mean())

    def after_fusion(module, inputs, out):
        text = inputs[0]
        fused, attn = out
        if not training(module) or fused.dim() != 3:
            return
        with torch.no_grad():
            n = min(attn.shape[0], attn.shape[1])
            own = attn.detach()[torch.arange(n), torch.arange(n)]                   # [B, K]: own text
            recorder.current["a_fuse_entropy"] = entropy(own, dim=-1)
            recorder.current["text_norm"] = float(text.detach().norm(dim=-1).mean())
            logits = torch.einsum("td,itd->ti", text.detach(), fused.detach())      # [B_t, B_i]
            recorder.current["logit_spread"] = float(logits.std(dim=1).mean())

    objective_forward = SaGObjective.forward

    def forward(self, images, texts, image_ids=None):
        if recorder.net is None:
            net = self.net
            net.discovery.iteration_hook = after_iteration
            net.discovery.register_forward_hook(after_discovery)
            net.fusion.register_forward_hook(after_fusion)
            net.fusion.attn.register_forward_hook(after_fusion_attention)
        recorder.begin_step(self.net)
        losses = objective_forward(self, images, texts, image_ids)
        for key in ("c3", "rec", "total"):
            recorder.current[key] = float(losses[key].detach())
        return losses

    SaGObjective.forward = forward


def child(args) -> int:
    out = Path(args.child_out)
    snapshots = out / f"snapshots_seed{args.seed}"
    snapshots.mkdir(parents=True, exist_ok=True)
    recorder = Recorder(snapshots)
    instrument(recorder)
    from harness.cli import main

    argv = ["run", "--methods", "sag", "--seeds", str(args.seed), "--splits", "val", "--no-progress",
            "--profile", args.profile, "--out", str(out / "store")]
    if args.set:
        argv += ["--set", *args.set]
    started = time.time()
    code = main(argv)
    steps = recorder.finish()
    if not steps:
        print(f"no training step was recorded (was the run already stored under {out / 'store'}?)")
        return 1
    metrics = json.loads(next((out / "store").glob(f"*/sag*/seed{args.seed}/metrics.json")).read_text())
    trace = {"seed": args.seed, "kernel": args.kernel, "set": args.set, "seconds": time.time() - started,
             "env": {k: os.environ.get(k) for k in ("ATEN_CPU_CAPABILITY", "SAG_HARNESS_KERNELS")},
             "val": metrics["splits"]["val"]["tau=0.50"], "steps": steps}
    (out / f"trace_seed{args.seed}.json").write_text(json.dumps(trace))
    return code


# ------------------------------------------------------------------------------ the parent

def run_child(label_dir: Path, kernel: str, seed: int, sets: list, profile: str) -> None:
    out = label_dir / kernel
    if (out / f"trace_seed{seed}.json").is_file():
        print(f"{label_dir.name}/{kernel}/seed{seed}: trace stored")
        return
    env = dict(os.environ, SAG_HARNESS_KERNELS="native", **KERNELS[kernel])
    command = [sys.executable, __file__, "--child", "--child-out", str(out), "--kernel", kernel,
               "--seed", str(seed), "--profile", profile] + (["--set", *sets] if sets else [])
    started = time.time()
    done = subprocess.run(command, cwd=ROOT, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{label_dir.name}/{kernel}/seed{seed}: the child failed ({done.returncode})")
    print(f"{label_dir.name}/{kernel}/seed{seed}: {time.time() - started:.0f} s")


def distances(a: Path, b: Path) -> dict:
    """{step: ‖θ_a − θ_b‖ / ‖θ_a‖} over the snapshots both runs hold."""
    import numpy as np

    out = {}
    for step in SNAPSHOT_STEPS:
        fa, fb = a / f"step{step:04d}.npy", b / f"step{step:04d}.npy"
        if fa.is_file() and fb.is_file():
            x, y = np.load(fa), np.load(fb)
            out[step] = float(np.linalg.norm(x - y) / np.linalg.norm(x))
    return out


def growth(dist: dict) -> dict:
    """First step that differs, and the log-linear growth rate λ per step of the distance while it
    lies in (1e-9, 1e-2) (before it saturates)."""
    first = next((s for s, d in sorted(dist.items()) if d > 0), None)
    small = [(s, math.log(d)) for s, d in sorted(dist.items()) if 1e-9 < d < 1e-2]
    rate = None
    if len(small) >= 2:
        n = len(small)
        mx, my = sum(s for s, _ in small) / n, sum(y for _, y in small) / n
        sxx = sum((s - mx) ** 2 for s, _ in small)
        rate = sum((s - mx) * (y - my) for s, y in small) / sxx if sxx else None
    return {"first_differing_snapshot": first, "rate_per_step": rate,
            "doubling_steps": (math.log(2) / rate) if rate and rate > 0 else None,
            "fit_points": len(small)}


def first_loss_difference(ta: dict, tb: dict) -> int | None:
    for x, y in zip(ta["steps"], tb["steps"]):
        if x["total"] != y["total"]:
            return x["step"]
    return None


def summarise(label_dir: Path, keep: bool) -> dict:
    traces = {}
    for path in sorted(label_dir.glob("*/trace_seed*.json")):
        trace = json.loads(path.read_text())
        traces[(path.parent.name, trace["seed"])] = trace
    if not traces:
        raise SystemExit(f"{label_dir}: no trace stored")
    runs = {f"{k}/seed{s}": _run_summary(t) for (k, s), t in sorted(traces.items())}
    pairs = {}
    keys = sorted(traces)
    for i, (ka, sa) in enumerate(keys):
        for kb, sb in keys[i + 1:]:
            if not (ka == kb or sa == sb):
                continue
            dist = distances(label_dir / ka / f"snapshots_seed{sa}", label_dir / kb / f"snapshots_seed{sb}")
            name = f"{ka}/seed{sa} vs {kb}/seed{sb}"
            pairs[name] = {"kind": "kernel" if sa == sb else "seed", "distance": dist, **growth(dist),
                           "first_loss_difference_step": first_loss_difference(traces[(ka, sa)], traces[(kb, sb)]),
                           "val_mIoU": [traces[(ka, sa)]["val"]["mIoU"], traces[(kb, sb)]["val"]["mIoU"]],
                           "val_gap": [traces[(ka, sa)]["val"].get("gap"), traces[(kb, sb)]["val"].get("gap")]}
    maps = {}
    for (kernel, seed) in keys:
        try:
            maps[(kernel, seed)] = raw_maps(label_dir / kernel / "store", seed)
            runs[f"{kernel}/seed{seed}"]["map_contrast"] = map_contrast(maps[(kernel, seed)])
        except Exception as exc:      # a bench: report what could not be measured, keep the rest
            runs[f"{kernel}/seed{seed}"]["map_contrast"] = f"not measured: {exc}"
    for name, pair in pairs.items():
        a, b = name.split(" vs ")
        ka, sa = a.split("/seed")
        kb, sb = b.split("/seed")
        if (ka, int(sa)) in maps and (kb, int(sb)) in maps:
            pair["map_noise"] = map_noise(maps[(ka, int(sa))], maps[(kb, int(sb))])
    summary = {"label": label_dir.name, "set": next(iter(traces.values()))["set"], "runs": runs, "pairs": pairs}
    (label_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    _plot(label_dir, traces, pairs)
    if not keep:
        for snapshot in label_dir.glob("*/snapshots_seed*/step*.npy"):
            if any(name for name in pairs):     # distances computed: the snapshots are no longer needed
                snapshot.unlink()
    return summary


def raw_maps(store_dir: Path, seed: int, limit: int = 192):
    """SaG's score maps of the stored run on the first `limit` val expressions, before the
    protocol's min-max: float64 [n, h, w] (the run's own test-time sampling seed)."""
    import numpy as np
    import torch

    from harness.data.loader import eval_batches
    from harness.report.figures import load_trained

    spec = next(p.parent.name for p in store_dir.glob(f"synthref/sag*/seed{seed}"))
    segmenter, val, size = load_trained(store_dir, spec, "synthref", seed=seed)
    maps = []
    with torch.no_grad():
        for batch in eval_batches(val, size, 64, indices=list(range(min(limit, len(val))))):
            maps.append(segmenter.predict(batch["images"], batch["texts"], batch["samples"]).double().numpy())
    return np.concatenate(maps)


def map_contrast(maps) -> dict:
    """How flat the maps are: per map (max − min) and (max − min) / mean, medians over maps. With
    K slots and A_fuse uniform a map is exactly 1/K everywhere; min-max stretches what is left."""
    import numpy as np

    flat = maps.reshape(len(maps), -1)
    spread = flat.max(axis=1) - flat.min(axis=1)
    return {"median_range": float(np.median(spread)), "median_relative_range": float(np.median(spread / flat.mean(axis=1))),
            "median_mean": float(np.median(flat.mean(axis=1)))}


def map_noise(maps_a, maps_b, tau: float = 0.5) -> dict:
    """Two runs' maps of the same expressions: the difference against each map's range, and the
    share of grid cells whose min-max-then-τ label differs."""
    import numpy as np

    def minmax(m):
        lo, hi = m.min(axis=(1, 2), keepdims=True), m.max(axis=(1, 2), keepdims=True)
        return (m - lo) / np.maximum(hi - lo, 1e-12)

    spread = maps_a.max(axis=(1, 2)) - maps_a.min(axis=(1, 2))
    diff = np.abs(maps_a - maps_b).max(axis=(1, 2))
    flips = (minmax(maps_a) >= tau) != (minmax(maps_b) >= tau)
    return {"median_max_difference_over_range": float(np.median(diff / np.maximum(spread, 1e-12))),
            "label_flip_share": float(flips.mean())}


def _phase_means(steps: list[dict], key: str, phases=((0, 50), (50, 150), (150, 300))) -> list:
    out = []
    for lo, hi in phases:
        values = [s[key] for s in steps[lo:hi] if key in s]
        out.append(round(sum(values) / len(values), 4) if values else None)
    return out


def _run_summary(trace: dict) -> dict:
    steps = trace["steps"]
    iters = len(steps[0]["grad_iter"]) if steps and steps[0]["grad_iter"] else 0
    grad_iter = [round(sum(s["grad_iter"][t] for s in steps) / len(steps), 6) for t in range(iters)] if iters else []
    return {"val": {k: trace["val"][k] for k in ("mIoU", "gap", "pointing") if k in trace["val"]},
            "seconds": round(trace["seconds"], 1), "steps": len(steps),
            "phases": "steps 0-49 / 50-149 / 150-299",
            **{key: _phase_means(steps, key) for key in ("c3", "rec", "grad_norm", "slot_cos", "a_slot_entropy",
                                                         "a_fuse_entropy", "text_norm", "fusion_update_norm",
                                                         "logit_spread")},
            "grad_iter_mean": grad_iter,
            "clipped_share": round(sum(s["grad_norm"] > 0.1 for s in steps) / len(steps), 3)}


def _plot(label_dir: Path, traces: dict, pairs: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(15, 8))
    for (kernel, seed), trace in sorted(traces.items()):
        steps = trace["steps"]
        x = [s["step"] for s in steps]
        name = f"{kernel}/seed{seed} (val {trace['val']['mIoU']:.1f})"
        axes[0][0].plot(x, [s["c3"] for s in steps], label=name, lw=0.8)
        axes[0][1].plot(x, [s["slot_cos"] for s in steps], label=name, lw=0.8)
        axes[0][2].plot(x, [s["a_fuse_entropy"] for s in steps], label=name, lw=0.8)
        axes[1][0].plot(x, [s["grad_norm"] for s in steps], label=name, lw=0.8)
        axes[1][1].plot(x, [s["a_slot_entropy"] for s in steps], label=name, lw=0.8)
    for name, pair in pairs.items():
        dist = sorted((s, d) for s, d in pair["distance"].items() if d > 0)
        if dist:
            axes[1][2].semilogy([s for s, _ in dist], [d for _, d in dist], marker="o", label=name)
    titles = ["C3 loss", "slots' mutual cosine", "A_fuse entropy (own text, /log K)",
              "gradient norm before clipping (clip 0.1)", "A_slot entropy (/log K)",
              "‖θ_a − θ_b‖ / ‖θ_a‖"]
    for ax, title in zip(sum(axes.tolist(), []), titles):
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.legend(fontsize=6)
    fig.suptitle(f"SaG training dynamics, synthref, {label_dir.name}", fontsize=10)
    fig.tight_layout()
    fig.savefig(label_dir / "dynamics.png", dpi=110)
    plt.close(fig)


def print_summary(summary: dict) -> None:
    print(f"\n== {summary['label']} ({' '.join(summary['set'] or []) or 'the synthref config'})")
    for name, run in summary["runs"].items():
        print(f"{name}: val mIoU {run['val']['mIoU']:.2f} gap {run['val'].get('gap', float('nan')):.2f} "
              f"pointing {run['val'].get('pointing', float('nan')):.1f} | {run['seconds']:.0f} s")
        for key in ("c3", "rec", "grad_norm", "slot_cos", "a_slot_entropy", "a_fuse_entropy", "text_norm",
                    "fusion_update_norm", "logit_spread"):
            print(f"    {key:<18} {run[key]}  ({run['phases']})")
        print(f"    grad reaching iteration t=1..T (mean): {run['grad_iter_mean']}; steps clipped: "
              f"{run['clipped_share']:.0%}")
        print(f"    maps before min-max: {run.get('map_contrast')}")
    for name, pair in summary["pairs"].items():
        rate = pair["rate_per_step"]
        print(f"{name} [{pair['kind']}]: loss first differs at step {pair['first_loss_difference_step']}; "
              f"λ = {rate if rate is None else round(rate, 4)} per step"
              + (f" (doubling every {pair['doubling_steps']:.1f} steps)" if pair["doubling_steps"] else "")
              + f"; val mIoU {pair['val_mIoU'][0]:.2f} vs {pair['val_mIoU'][1]:.2f}")
        print("    distance: " + ", ".join(f"{s}:{d:.1e}" for s, d in sorted(pair["distance"].items())))
        if "map_noise" in pair:
            print(f"    maps: {pair['map_noise']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--kernels", default="default,aten_avx2")
    parser.add_argument("--set", nargs="*", default=[], help="config overrides for every run (harness run --set)")
    parser.add_argument("--label", default="default", help="folder under --out for this configuration "
                        "(the release's recipe: --label release --set method.fusion_text_residual=1.0)")
    parser.add_argument("--profile", default="full")
    parser.add_argument("--out", default=str(ROOT / "results" / "sag-dynamics"))
    parser.add_argument("--summarise", action="store_true")
    parser.add_argument("--keep-snapshots", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child-out", help=argparse.SUPPRESS)
    parser.add_argument("--kernel", default="default", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    label_dir = Path(args.out) / args.label
    if not args.summarise:
        for kernel in args.kernels.split(","):
            if kernel not in KERNELS:
                raise SystemExit(f"--kernels: unknown choice {kernel!r}; expected some of {sorted(KERNELS)}")
            for seed in (int(s) for s in args.seeds.split(",")):
                run_child(label_dir, kernel, seed, args.set, args.profile)
    print_summary(summarise(label_dir, args.keep_snapshots))
    return 0


if __name__ == "__main__":
    sys.exit(main())
