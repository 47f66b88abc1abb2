"""Two floors shown in every table, registered like methods and never trained.

- `whole`: the whole image is the prediction.
- `objects`: the union of every annotated object in the image — an objectness ORACLE with no
  language, the one segmenter allowed to read eval annotations. A method near `objects`
  segments things but does not ground the expression.
"""

from typing import Optional

import torch

from harness.data.types import RefDataset, RefSample
from harness.registry import SEGMENTERS
from harness.segmenter import Segmenter


@SEGMENTERS.register_module("whole")
class WholeImage(Segmenter):
    def fit(self, train, train_cfg, seed, ctx):
        return {}

    def predict(self, images, texts, samples=None):
        return torch.ones(images.shape[0], images.shape[2], images.shape[3])


@SEGMENTERS.register_module("objects")
class ObjectsOracle(Segmenter):
    """Oracle: reads the eval split's annotations (never the expression)."""

    def fit(self, train, train_cfg, seed, ctx):
        return {}

    def prepare_eval(self, dataset: RefDataset) -> None:
        self._dataset = dataset
        self._index = {s.sample_id: i for i, s in enumerate(dataset.samples)}

    def predict(self, images, texts, samples: Optional[list[RefSample]] = None):
        if samples is None:
            raise ValueError("the objects oracle needs the samples' ids")
        # At original size (a list, since images differ in size): the runner resizes nothing then.
        return [torch.from_numpy(self._dataset.objects_mask(self._index[s.sample_id])).float()
                for s in samples]
