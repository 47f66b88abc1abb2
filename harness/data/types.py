"""What every reader returns: one `RefSample` per referring expression, grouped in a `RefDataset`.

A dataset holds no pixels until asked. Masks come from a `mask_source` callable that the reader
passes only for evaluation splits: the train split has none, so any attempt to read a training
mask raises `MaskAccessError` (the weak-supervision guarantee that tests assert for every method).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from harness.data.images import read_rgb
from harness.errors import HarnessError


class MaskAccessError(HarnessError):
    """A mask was requested from a split that must not expose masks (training)."""


@dataclass(frozen=True)
class RefSample:
    """One referring expression.

    sample_id: the expression's key — `sent_id` for REFER data, `task_id` for PhraseCut; it names
        the row in samples.csv and the prediction file `<sample_id>.png` read by `score`.
    """

    sample_id: int | str
    ref_id: int | str
    image_id: int | str
    image_path: Path
    text: str
    height: int
    width: int


MaskSource = Callable[[RefSample], np.ndarray]


class RefDataset:
    """A split of a referring dataset: samples plus lazy access to images and (eval only) masks."""

    def __init__(
        self,
        name: str,
        split: str,
        root: Path,
        samples: list[RefSample],
        mask_source: Optional[MaskSource] = None,
        objects_source: Optional[MaskSource] = None,
    ):
        self.name = name
        self.split = split
        self.root = Path(root)
        self.samples = samples
        self._mask_source = mask_source
        self._objects_source = objects_source

    def __len__(self) -> int:
        return len(self.samples)

    def __repr__(self) -> str:
        return f"RefDataset({self.name!r}, split={self.split!r}, n={len(self)}, masks={self.has_masks})"

    @property
    def has_masks(self) -> bool:
        return self._mask_source is not None

    def image(self, i: int) -> np.ndarray:
        """The i-th sample's image, uint8 [H, W, 3] at the sample's size (height, width).

        The annotation's size is the one masks and predictions are scored at. Where the file
        differs from it (a few Visual Genome JPEGs differ from PhraseCut's image_data_split.json,
        which the official PhraseCut evaluation sizes masks by), the pixels are resized to it
        (bilinear), so the image always lines up with the mask."""
        sample = self.samples[i]
        pixels = read_rgb(sample.image_path)
        if pixels.shape[:2] != (sample.height, sample.width):
            from PIL import Image

            resized = Image.fromarray(pixels).resize((sample.width, sample.height), Image.BILINEAR)
            pixels = np.asarray(resized)
        return pixels

    def mask(self, i: int) -> np.ndarray:
        """Ground truth, bool [H, W] at original size. Raises on a split without masks."""
        if self._mask_source is None:
            raise MaskAccessError(f"{self.name}/{self.split}: masks are not available on this split")
        return self._mask_source(self.samples[i])

    def objects_mask(self, i: int) -> np.ndarray:
        """Union of every annotated object in the i-th sample's image (the `objects` oracle)."""
        if self._objects_source is None:
            raise MaskAccessError(f"{self.name}/{self.split}: object annotations are not exposed on this split")
        return self._objects_source(self.samples[i])

    def subset(self, n: int) -> "RefDataset":
        """The first n samples (for `--limit` and short profiles)."""
        return RefDataset(self.name, self.split, self.root, self.samples[:n],
                          self._mask_source, self._objects_source)
