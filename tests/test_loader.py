"""harness/data/loader.py: squashing, deterministic shuffling from (seed, epoch), disjoint rank
shards, eval order, and the image cache."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from harness.data.loader import ImageCache, eval_batches, load_image, rank_indices, train_batches
from harness.data.types import RefDataset, RefSample
from harness.errors import ConfigError

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
