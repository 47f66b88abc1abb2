"""harness/data/loader.py: squashing, deterministic shuffling from (seed, epoch), disjoint rank
shards, eval order, the image cache, and DataLoader workers that give the main process's batches."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from harness.data.loader import (ImageCache, TrainLoader, _DecodedImages, check_workers, eval_batches, load_image,
                                 rank_indices, train_batches)
from harness.data.types import RefDataset, RefSample
from harness.errors import ConfigError
from harness.run.runner import RunOptions, run_many

N = 11


def make_dataset(root: Path) -> RefDataset:
    """N samples over N images: image k is 20×30 (or 30×20 for odd k) of grey level 20k."""
    samples = []
    for k in range(N):
        h, w = (20, 30) if k % 2 == 0 else (30, 20)
        path = root / f"{k}.png"
        Image.fromarray(np.full((h, w, 3), 20 * k, dtype=np.uint8)).save(path)
        samples.append(RefSample(sample_id=100 + k, ref_id=k, image_id=k, image_path=path,
                                 text=f"thing {k}", height=h, width=w))
    return RefDataset("toy", "train", root, samples)


def ids(batches) -> list:
    return [i for b in batches for i in b["sample_ids"]]


def test_train_batches_shapes_values_and_determinism(tmp_path):
    ds = make_dataset(tmp_path)
    batches = list(train_batches(ds, 16, 4, seed=5, cache=ImageCache()))
    assert [b["images"].shape for b in batches] == [(4, 3, 16, 16)] * 2 + [(3, 3, 16, 16)]
    assert sorted(ids(batches)) == [100 + k for k in range(N)] and ids(batches) != sorted(ids(batches))
    for b in batches:
        for image, image_id, text, sample_id in zip(b["images"], b["image_ids"], b["texts"], b["sample_ids"]):
            assert torch.allclose(image, torch.full_like(image, 20 * image_id / 255), atol=1e-5)
            assert text == f"thing {image_id}" and sample_id == 100 + image_id
    again = list(train_batches(ds, 16, 4, seed=5, cache=ImageCache()))
    assert ids(again) == ids(batches)
    assert all(torch.equal(a["images"], b["images"]) for a, b in zip(again, batches))
    assert ids(train_batches(ds, 16, 4, seed=5, epoch=1)) != ids(batches)
    assert ids(train_batches(ds, 16, 4, seed=6)) != ids(batches)
    assert len(list(train_batches(ds, 16, 4, seed=5, drop_last=True))) == 2


def test_rank_shards_are_disjoint_and_interleave_the_single_process_order(tmp_path):
    ds = make_dataset(tmp_path)
    single = rank_indices(N, seed=3, epoch=2)
    shards = [rank_indices(N, seed=3, epoch=2, rank=r, world_size=2) for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == N // 2 and not set(shards[0]) & set(shards[1])
    assert [i for pair in zip(*shards) for i in pair] == single[:2 * (N // 2)]
    # two ranks with batch 2 together see the batches one process sees with batch 4
    per_rank = [ids(train_batches(ds, 8, 2, seed=3, epoch=2, rank=r, world_size=2)) for r in range(2)]
    one = ids(train_batches(ds, 8, 4, seed=3, epoch=2))
    assert sorted(per_rank[0][:2] + per_rank[1][:2]) == sorted(one[:4])
    with pytest.raises(ConfigError):
        rank_indices(N, 0, 0, rank=2, world_size=2)


def test_eval_batches_keep_order_and_indices(tmp_path):
    ds = make_dataset(tmp_path)
    batches = list(eval_batches(ds, 8, 5))
    assert [b["indices"] for b in batches] == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [10]]
    assert [s.sample_id for b in batches for s in b["samples"]] == [100 + k for k in range(N)]
    chosen = list(eval_batches(ds, 8, 2, indices=[7, 3, 9]))
    assert [b["indices"] for b in chosen] == [[7, 3], [9]]
    assert chosen[0]["texts"] == ["thing 7", "thing 3"]
    assert chosen[0]["images"].shape == (2, 3, 8, 8)


def test_squash_keeps_left_right_layout_and_cache_hits(tmp_path):
    pixels = np.zeros((10, 40, 3), dtype=np.uint8)
    pixels[:, 20:] = 255                       # right half white
    path = tmp_path / "half.png"
    Image.fromarray(pixels).save(path)
    image = load_image(path, 8)                # [3, 8, 8]
    assert image.shape == (3, 8, 8) and image.min() >= 0 and image.max() <= 1
    assert torch.all(image[:, :, :3] < 0.05) and torch.all(image[:, :, 5:] > 0.95)
    cache = ImageCache()
    first = cache.get(path, 8)
    Image.fromarray(255 - pixels).save(path)   # a cache hit must not re-read the file
    assert torch.equal(cache.get(path, 8), first) and len(cache) == 1
    bigger = cache.get(path, 16)               # another S is another key: read afresh (inverted)
    assert torch.all(bigger[:, :, :6] > 0.95) and len(cache) == 2
    small = ImageCache(max_bytes=3 * 8 * 8 * 4)
    small.get(path, 8)
    small.get(tmp_path / "half.png", 4)
    assert len(small) == 1                     # bounded: the older entry was evicted


def coco_size_dataset(root: Path, n: int = 6) -> RefDataset:
    """n samples over n 640×480 JPEGs (COCO's size), smooth colours plus noise."""
    rng = np.random.default_rng(0)
    samples = []
    for k in range(n):
        small = rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)
        pixels = np.asarray(Image.fromarray(small).resize((640, 480), Image.BILINEAR), dtype=np.int16)
        pixels = np.clip(pixels + rng.integers(-8, 8, pixels.shape), 0, 255).astype(np.uint8)
        path = root / f"COCO_train2014_{k:012d}.jpg"
        Image.fromarray(pixels).save(path, quality=90)
        samples.append(RefSample(sample_id=200 + k, ref_id=k, image_id=k, image_path=path,
                                 text=f"object {k}", height=480, width=640))
    return RefDataset("toy", "train", root, samples)


def test_worker_processes_give_the_main_process_batches_bit_for_bit(tmp_path):
    ds = coco_size_dataset(tmp_path)
    rng_before = torch.get_rng_state()
    per_mode = {}
    for workers in (0, 2):
        with TrainLoader(ds, 48, 4, seed=3, workers=workers, cache=ImageCache()) as loader:
            per_mode[workers] = [b for epoch in (0, 1) for b in loader.epoch(epoch)]
    assert torch.equal(torch.get_rng_state(), rng_before)    # the loader draws from its own generator
    main, worker = per_mode[0], per_mode[2]
    assert [b["sample_ids"] for b in worker] == [b["sample_ids"] for b in main]
    assert [len(b["sample_ids"]) for b in main] == [4, 2, 4, 2]
    assert ids(main[:2]) != ids(main[2:])                     # epochs are shuffled apart
    assert all(torch.equal(a["images"], b["images"]) for a, b in zip(main, worker))
    assert worker[0]["texts"] == [f"object {i - 200}" for i in worker[0]["sample_ids"]]
    evals = [list(eval_batches(ds, 48, 4, workers=w, cache=ImageCache())) for w in (0, 2)]
    assert [b["indices"] for b in evals[1]] == [[0, 1, 2, 3], [4, 5]]
    assert all(torch.equal(a["images"], b["images"]) for a, b in zip(*evals))
    assert evals[1][0]["samples"][0] is ds.samples[0]          # the dataset's own samples, not copies


class _CacheBudget(_DecodedImages):
    def __getitem__(self, index):
        super().__getitem__(index)
        return torch.tensor([self._cache.max_bytes, len(self._cache)])


def test_each_worker_holds_its_share_of_the_cache_budget_and_bad_counts_are_errors(tmp_path):
    ds = coco_size_dataset(tmp_path, n=4)
    loader = torch.utils.data.DataLoader(_CacheBudget(ds, 32, 1000 * 3 * 32 * 32 * 4), batch_size=None,
                                         num_workers=2)
    budgets = [row.tolist() for row in loader]
    assert {b for b, _ in budgets} == {500 * 3 * 32 * 32 * 4}          # 2 workers: half each
    in_process = _CacheBudget(ds, 32, 4096 * 3)
    assert in_process[0].tolist() == [4096 * 3, 1]
    for bad in (-1, 1.5, True):
        with pytest.raises(ConfigError, match=r"--workers .*expected an integer ≥ 0"):
            check_workers(bad)
    with pytest.raises(ConfigError, match="--workers -2"):
        TrainLoader(ds, 32, 2, seed=0, workers=-2)
    with pytest.raises(ConfigError, match="--workers -1"):
        RunOptions(workers=-1)


@pytest.fixture
def tiny_probe_only(monkeypatch):
    import tests.tiny_segmenter  # noqa: F401  (registers tiny_probe)
    from harness import registry

    monkeypatch.setattr(registry, "METHOD_MODULES", ("harness.reference_segmenters",))
    monkeypatch.setattr(registry, "_loaded", False)


def test_a_run_with_loader_workers_stores_the_figures_of_one_without(synthref_root, tmp_path, tiny_probe_only):
    from tests.tiny_segmenter import write_config

    config = write_config(tmp_path / "tiny_probe.py")
    folders = []
    for workers in (0, 2):
        opts = RunOptions(dataset="synthref", profile="smoke", splits=["val"], limit=24, data_root=synthref_root,
                          config_path=config, out=tmp_path / f"w{workers}", progress=False, workers=workers,
                          overrides=["method.dropout=0.2"])   # dropout: the loader must not draw from torch's RNG
        [outcome] = run_many(["tiny_probe"], [0], opts)
        folders.append(outcome.run_dir)
    logs = [json.loads((f / "config.json").read_text())["train_log"] for f in folders]
    assert logs[0]["steps"] == 16 and logs[0]["loss"] == logs[1]["loss"]     # every step's loss, exactly
    assert (folders[0] / "metrics.json").read_bytes() == (folders[1] / "metrics.json").read_bytes()
    assert (folders[0] / "samples.csv").read_bytes() == (folders[1] / "samples.csv").read_bytes()
