"""Batches of images and texts for training and evaluation.

Images are squashed (not cropped) to S×S with bilinear antialiased resizing, as float
[B, 3, S, S] in [0, 1]; each method applies its own normalisation. Decoded and resized images
are kept in an in-memory LRU cache keyed by (path, S), bounded by bytes (`ImageCache`, 2 GiB by
default: the whole of synthref, about 1,200 images of RefCOCO's ~17k at 384 px; docs/gpu.md).

`workers=0` decodes in the process that iterates. `workers=N` decodes and resizes in N
`torch.utils.data.DataLoader` worker processes (persistent over a fit's epochs, pinned memory
when the batches go to a GPU), each with its own cache of 1/N of the budget, so the memory the
caches take stays bounded; the batches, their order and their bits are those of `workers=0`
(the same function decodes them, and the loader draws nothing from the global RNG).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from pathlib import Path
from typing import Iterator, Optional, Sequence

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, get_worker_info

from harness.data.images import read_rgb
from harness.data.types import RefDataset
from harness.errors import ConfigError


class ImageCache:
    """LRU of resized images [3, S, S] keyed by (path, S), bounded by bytes."""

    def __init__(self, max_bytes: int = 2 * 1024**3):
        self.max_bytes = max_bytes
        self._items: OrderedDict = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    def get(self, path: Path, size: int) -> torch.Tensor:
        key = (str(path), int(size))
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        image = load_image(path, size)
        self._items[key] = image
        self._bytes += image.numel() * image.element_size()
        while self._bytes > self.max_bytes and len(self._items) > 1:
            _, old = self._items.popitem(last=False)
            self._bytes -= old.numel() * old.element_size()
        return image

    def clear(self) -> None:
        self._items.clear()
        self._bytes = 0


IMAGE_CACHE = ImageCache()


def load_image(path: Path, size: int) -> torch.Tensor:
    """The image at `path` as float [3, S, S] in [0, 1], squashed to S×S."""
    pixels = torch.from_numpy(read_rgb(path).copy())                   # [H, W, 3] uint8
    image = pixels.permute(2, 0, 1).float().div_(255.0)[None]          # [1, 3, H, W]
    if image.shape[-2:] != (size, size):
        image = F.interpolate(image, size=(size, size), mode="bilinear", align_corners=False,
                              antialias=True)                          # [1, 3, S, S]
    return image[0].clamp_(0.0, 1.0)


def shuffled_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """A permutation of range(n) that depends only on (seed, epoch)."""
    digest = hashlib.sha256(f"{int(seed)}:{int(epoch)}".encode()).digest()
    generator = torch.Generator()
    generator.manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))
    return torch.randperm(n, generator=generator)


def rank_indices(n: int, seed: int, epoch: int, rank: int = 0, world_size: int = 1) -> list[int]:
    """This rank's share of the shuffled order: every world_size-th index from `rank`, after
    dropping the remainder, so ranks are disjoint, equally long, and their k-th batches
    together are the k-th batch a single process would see with world_size × the batch size."""
    if not 0 <= rank < world_size:
        raise ConfigError(f"rank {rank} outside world_size {world_size}")
    order = shuffled_order(n, seed, epoch)
    usable = (n // world_size) * world_size
    return order[:usable][rank::world_size].tolist()


def check_workers(workers: int) -> int:
    """The number of loader worker processes, or ConfigError."""
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 0:
        raise ConfigError(f"--workers {workers!r}: expected an integer ≥ 0 (0: decode in the main process)")
    return workers


def _stack(ds: RefDataset, indices: Sequence[int], size: int, cache: ImageCache) -> torch.Tensor:
    return torch.stack([cache.get(ds.samples[i].image_path, size) for i in indices])  # [B, 3, S, S]


class _DecodedImages(Dataset):
    """Sample i of `ds` as its image [3, S, S], decoded in a DataLoader worker through that
    worker's own ImageCache (1/num_workers of `cache_bytes`, made on first use)."""

    def __init__(self, ds: RefDataset, size: int, cache_bytes: int):
        self.ds, self.size, self.cache_bytes = ds, int(size), int(cache_bytes)
        self._cache: Optional[ImageCache] = None

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, index: int) -> torch.Tensor:
        if self._cache is None:
            info = get_worker_info()
            self._cache = ImageCache(max(1, self.cache_bytes // (info.num_workers if info else 1)))
        return self._cache.get(self.ds.samples[index].image_path, self.size)


def _stack_images(images: list) -> torch.Tensor:
    return torch.stack(images)                                         # [B, 3, S, S]


class EpochBatches:
    """One rank's batches of sample indices for an epoch (`set_epoch` picks it, as with
    DistributedSampler): the batch sampler of a fit's DataLoader, and the in-process order."""

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1,
                 drop_last: bool = False):
        if batch_size < 1:
            raise ConfigError(f"train batch_size must be ≥ 1, got {batch_size}")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.rank, self.world_size, self.drop_last = rank, world_size, drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[list[int]]:
        indices = rank_indices(self.n, self.seed, self.epoch, self.rank, self.world_size)
        for start in range(0, len(indices), self.batch_size):
            chunk = indices[start:start + self.batch_size]
            if self.drop_last and len(chunk) < self.batch_size:
                return
            yield chunk

    def __len__(self) -> int:
        share = self.n // self.world_size
        return share // self.batch_size if self.drop_last else -(-share // self.batch_size)


def _image_loader(ds: RefDataset, size: int, batches, workers: int, pin_memory: bool,
                  cache_bytes: int, persistent: bool) -> DataLoader:
    """A DataLoader yielding the images [B, 3, S, S] of each index batch of `batches`, in order.
    Its own generator seeds the workers, so iterating it leaves the global torch RNG untouched."""
    return DataLoader(_DecodedImages(ds, size, cache_bytes), batch_sampler=batches, num_workers=workers,
                      collate_fn=_stack_images, pin_memory=pin_memory, persistent_workers=persistent,
                      generator=torch.Generator().manual_seed(0))


def _train_batch(ds: RefDataset, chunk: list[int], images: torch.Tensor) -> dict:
    samples = [ds.samples[i] for i in chunk]
    return {"images": images, "texts": [s.text for s in samples],
            "image_ids": [s.image_id for s in samples], "sample_ids": [s.sample_id for s in samples]}


def _eval_batch(ds: RefDataset, chunk: list[int], images: torch.Tensor) -> dict:
    samples = [ds.samples[i] for i in chunk]
    return {"images": images, "texts": [s.text for s in samples], "samples": samples, "indices": chunk}


class TrainLoader:
    """Shuffled training batches, epoch after epoch, from the main process (`workers=0`) or from
    `workers` DataLoader processes that live as long as this loader (`close`, or a `with` block).

        with TrainLoader(ds, 384, 32, seed, workers=4, pin_memory=True) as loader:
            for epoch in range(epochs):
                for batch in loader.epoch(epoch): ...
    """

    def __init__(self, ds: RefDataset, input_size: int, batch_size: int, seed: int, rank: int = 0,
                 world_size: int = 1, drop_last: bool = False, workers: int = 0, pin_memory: bool = False,
                 cache: Optional[ImageCache] = None):
        self.ds, self.input_size = ds, input_size
        self.cache = cache if cache is not None else IMAGE_CACHE
        self.batches = EpochBatches(len(ds), batch_size, seed, rank, world_size, drop_last)
        self.workers = check_workers(workers)
        self._loader = (_image_loader(ds, input_size, self.batches, self.workers, pin_memory,
                                      self.cache.max_bytes, persistent=True) if self.workers else None)

    def epoch(self, epoch: int) -> Iterator[dict]:
        """dict(images=float[B,3,S,S] in [0,1], texts, image_ids, sample_ids) of each batch."""
        self.batches.set_epoch(epoch)
        if self._loader is None:
            for chunk in self.batches:
                yield _train_batch(self.ds, chunk, _stack(self.ds, chunk, self.input_size, self.cache))
            return
        for chunk, images in zip(self.batches, self._loader):    # the loader iterates its own copy
            yield _train_batch(self.ds, chunk, images)

    def close(self) -> None:
        """Stop the worker processes (dropping the DataLoader shuts its persistent iterator down)."""
        self._loader = None

    def __enter__(self) -> "TrainLoader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def train_batches(ds: RefDataset, input_size: int, batch_size: int, seed: int, epoch: int = 0,
                  drop_last: bool = False, rank: int = 0, world_size: int = 1,
                  cache: Optional[ImageCache] = None, workers: int = 0) -> Iterator[dict]:
    """Shuffled batches of one epoch: dict(images=float[B,3,S,S] in [0,1], texts, image_ids,
    sample_ids); `TrainLoader` for several epochs over one set of workers."""
    with TrainLoader(ds, input_size, batch_size, seed, rank, world_size, drop_last, workers,
                     cache=cache) as loader:
        yield from loader.epoch(epoch)


def eval_batches(ds: RefDataset, input_size: int, batch_size: int,
                 indices: Optional[Sequence[int]] = None,
                 cache: Optional[ImageCache] = None, workers: int = 0,
                 pin_memory: bool = False) -> Iterator[dict]:
    """Batches in order: dict(images=float[B,3,S,S], texts, samples, indices)."""
    if batch_size < 1:
        raise ConfigError(f"eval batch_size must be ≥ 1, got {batch_size}")
    cache = cache if cache is not None else IMAGE_CACHE
    indices = list(range(len(ds))) if indices is None else [int(i) for i in indices]
    chunks = [indices[start:start + batch_size] for start in range(0, len(indices), batch_size)]
    if not check_workers(workers):
        for chunk in chunks:
            yield _eval_batch(ds, chunk, _stack(ds, chunk, input_size, cache))
        return
    loader = _image_loader(ds, input_size, chunks, workers, pin_memory, cache.max_bytes, persistent=False)
    for chunk, images in zip(chunks, loader):
        yield _eval_batch(ds, chunk, images)
