"""Batches of images and texts for training and evaluation.

Images are squashed (not cropped) to S×S with bilinear antialiased resizing, as float
[B, 3, S, S] in [0, 1]; each method applies its own normalisation. Decoded and resized images
are kept in an in-memory LRU cache keyed by (path, S), so epochs after the first read no files.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from pathlib import Path
from typing import Iterator, Optional, Sequence

import torch
import torch.nn.functional as F

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


def _stack(ds: RefDataset, indices: Sequence[int], size: int, cache: ImageCache) -> torch.Tensor:
    return torch.stack([cache.get(ds.samples[i].image_path, size) for i in indices])  # [B, 3, S, S]


def train_batches(ds: RefDataset, input_size: int, batch_size: int, seed: int, epoch: int = 0,
                  drop_last: bool = False, rank: int = 0, world_size: int = 1,
                  cache: Optional[ImageCache] = None) -> Iterator[dict]:
    """Shuffled batches: dict(images=float[B,3,S,S] in [0,1], texts, image_ids, sample_ids)."""
    if batch_size < 1:
        raise ConfigError(f"train batch_size must be ≥ 1, got {batch_size}")
    cache = cache if cache is not None else IMAGE_CACHE
    indices = rank_indices(len(ds), seed, epoch, rank, world_size)
    for start in range(0, len(indices), batch_size):
        chunk = indices[start:start + batch_size]
        if drop_last and len(chunk) < batch_size:
            return
        samples = [ds.samples[i] for i in chunk]
        yield {"images": _stack(ds, chunk, input_size, cache),
               "texts": [s.text for s in samples],
               "image_ids": [s.image_id for s in samples],
               "sample_ids": [s.sample_id for s in samples]}


def eval_batches(ds: RefDataset, input_size: int, batch_size: int,
                 indices: Optional[Sequence[int]] = None,
                 cache: Optional[ImageCache] = None) -> Iterator[dict]:
    """Batches in order: dict(images=float[B,3,S,S], texts, samples, indices)."""
    if batch_size < 1:
        raise ConfigError(f"eval batch_size must be ≥ 1, got {batch_size}")
    cache = cache if cache is not None else IMAGE_CACHE
    indices = list(range(len(ds))) if indices is None else [int(i) for i in indices]
    for start in range(0, len(indices), batch_size):
        chunk = indices[start:start + batch_size]
        samples = [ds.samples[i] for i in chunk]
        yield {"images": _stack(ds, chunk, input_size, cache),
               "texts": [s.text for s in samples],
               "samples": samples,
               "indices": chunk}
