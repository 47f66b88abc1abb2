"""What pinned CPU kernels cost: the same training work under `native` and `pinned` kernels.

    python benchmarks/bench_kernel_cost.py [--steps 20] [--repeats 2]

Each mode runs in its own child process (the kernels are chosen when torch loads:
harness/numerics.py) and times, at the synthref shapes, training steps of the ViT stand-in that
SaG and TSEG share (3 local-attention blocks, 64 px, 4-px patches, batch 32, AdamW) and of a
BERT-sized text encoder (2 layers, width 128, 12 tokens, batch 32) — the stand-in pretraining and
the fits are made of such steps — plus a forward pass at evaluation batch size. Wall seconds and
CPU seconds (user + system of the child: less moved by other processes on a shared machine) per
mode, the best of `--repeats`, and the ratio pinned / native. Prints; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def child(steps: int) -> dict:
    import harness  # noqa: F401  (chooses the kernels before torch loads)
    import torch
    from transformers import BertConfig, BertModel

    from harness.backbones.vit import VIT_STANDIN, standin_vit
    from harness.backbones.standin_training import merged
    from harness.numerics import platform_record

    torch.manual_seed(0)
    torch.set_num_threads(2)
    vit = standin_vit(merged(VIT_STANDIN, {"local_radius": 1}))
    bert = BertModel(BertConfig(vocab_size=200, hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                                intermediate_size=512))
    params = list(vit.parameters()) + list(bert.parameters())
    opt = torch.optim.AdamW(params, lr=1e-4)
    images, tokens = torch.randn(32, 3, 64, 64), torch.randint(0, 200, (32, 12))

    def step():
        loss = vit.forward_features(images).pow(2).mean() + bert(input_ids=tokens).last_hidden_state.pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()  # warm-up
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    with torch.no_grad():
        for _ in range(steps):
            vit.forward_features(torch.randn(64, 3, 64, 64))
    return {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu,
            "aten": platform_record()["aten_cpu_capability"],
            "mkl_cbwr": os.environ.get("MKL_CBWR")}


def measure(mode: str, steps: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA")}
    env["SAG_HARNESS_KERNELS"] = mode
    out = subprocess.run([sys.executable, __file__, "--child", "--steps", str(steps)], cwd=ROOT, env=env,
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.steps)))
        return
    best = {}
    for _ in range(args.repeats):
        for mode in ("native", "pinned"):
            got = measure(mode, args.steps)
            if mode not in best or got["wall_s"] < best[mode]["wall_s"]:
                best[mode] = got
    for mode, got in best.items():
        print(f"{mode:7s} ATen {got['aten']:7s} MKL_CBWR={got['mkl_cbwr']}: {got['wall_s']:.2f} s wall, "
              f"{got['cpu_s']:.2f} s CPU for {args.steps} train + {args.steps} eval steps")
    print(f"pinned / native: {best['pinned']['wall_s'] / best['native']['wall_s']:.2f}x wall, "
          f"{best['pinned']['cpu_s'] / best['native']['cpu_s']:.2f}x CPU")


if __name__ == "__main__":
    main()
