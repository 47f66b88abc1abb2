"""Stand-in pretraining on synthref, cached by config hash so that seeds and methods share it.

A stand-in replaces web-scale pretraining (CLIP's WIT, GroupViT's CC12M+YFCC, ImageNet for
ViT) that cannot be fetched here. Its result depends only on its own config and the captions
it was trained on, so the cache key is `hash(kind, standin_cfg, captions fingerprint, threads)`;
the stand-in always uses its own fixed seed, never the run's, and always trains with
`STANDIN_THREADS` intra-op threads, whatever the machine or `--jobs` (a float reduction depends
on the thread count: harness/seeding.py), so a cache holds the same weights however it was filled.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable

from harness.atomic_dir import build_once
from harness.errors import CheckpointError
from harness.numerics import kernel_mode, platform_record
from harness.seeding import torch_threads

STANDIN_THREADS = 2


def captions_path(data_root: Path) -> Path:
    return Path(data_root) / "captions.json"


def require_captions(data_root: Path) -> Path:
    """captions.json of `data_root`; CheckpointError naming it when absent (real data has none)."""
    path = captions_path(data_root)
    if not path.is_file():
        raise CheckpointError(
            f"{path}: no captions for stand-in pretraining; on real data give a checkpoint path "
            "(e.g. --set method.backbone.checkpoint=PATH)")
    return path


def captions_fingerprint(data_root: Path) -> str:
    """16 hex digits over captions.json AND the bytes of every image it lists: a stand-in depends on
    both (a cache keyed on the captions alone reused stand-ins pretrained on older images)."""
    path = require_captions(data_root)
    digest = hashlib.sha256(path.read_bytes())
    for image, _ in load_caption_pairs(data_root):
        if not image.is_file():
            raise CheckpointError(f"{image}: image listed in {path} not found")
        digest.update(image.read_bytes())
    return digest.hexdigest()[:16]


def load_caption_pairs(data_root: Path) -> list[tuple[Path, list[str]]]:
    """[(image path, captions)] for the train images of a synthref DATA_ROOT/<variant> folder."""
    data_root = Path(data_root)
    entries = json.loads(captions_path(data_root).read_text())
    return [(data_root.parent / e["file_name"], list(e["captions"])) for e in entries]


def standin_key(kind: str, standin_cfg: dict, data_root: Path) -> str:
    """The cache key; pinned kernels (harness/numerics.py) get their own entries, so a stand-in
    pretrained with the CPU's native kernels is never reused by a run that must be portable."""
    key = {"kind": kind, "cfg": standin_cfg, "captions": captions_fingerprint(data_root),
           "threads": STANDIN_THREADS}
    if kernel_mode() != "native":
        key["kernels"] = kernel_mode()
    blob = json.dumps(key, sort_keys=True, default=str)
    return f"{kind}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def cached_pretrain(kind: str, standin_cfg: dict, data_root: Path, cache_dir: Path,
                    train_fn: Callable[[Path], None]) -> Path:
    """Folder holding the stand-in's weights; `train_fn(tmp_dir)` fills it only on a cache miss.

    The folder appears atomically (written under a temporary name, then renamed), so a killed
    pretraining leaves nothing that a later run would mistake for a finished one.
    """
    final = Path(cache_dir) / "pretrain" / standin_key(kind, standin_cfg, data_root)

    def fill(tmp: Path) -> None:
        with torch_threads(STANDIN_THREADS):
            train_fn(tmp)
        (tmp / "standin.json").write_text(json.dumps({"kind": kind, "cfg": standin_cfg, "threads": STANDIN_THREADS,
                                                      "platform": platform_record()},
                                                     sort_keys=True, indent=1, default=str))

    return build_once(final, fill)
