"""REFER reader: RefCOCO (`refcoco`, unc), RefCOCO+ (`refcoco+`, unc), G-Ref (`refcocog`, google
or umd) and the embedded synthref family, all from the same files.

Layout: `DATA_ROOT/<dataset>/instances.json` (COCO: images, annotations, categories) and
`DATA_ROOT/<dataset>/refs(<splitBy>).p` (a pickle: list of refs with `ref_id, ann_id, image_id,
split, sentences[{sent_id, sent, tokens}]`). One sample = one sentence (`sample_id = sent_id`).
Masks are decoded with pycocotools at the image's original size, only on evaluation splits:
the train split gets no mask source, so training can never see a mask.
"""

from __future__ import annotations

import json
import pickle
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from pycocotools import mask as coco_mask

from harness.data.types import RefDataset, RefSample
from harness.errors import DataError

# name -> (default splitBy, default image folder relative to DATA_ROOT)
REFER_DEFAULTS = {
    "refcoco": ("unc", "images/mscoco/images/train2014"),
    "refcoco+": ("unc", "images/mscoco/images/train2014"),
    "refcocog": ("google", "images/mscoco/images/train2014"),
    "synthref": ("unc", "images/synthref"),
    "synthref+": ("unc", "images/synthref"),
    "synthrefg": ("unc", "images/synthref"),
}
COCO_IMAGE_DIR = "images/mscoco/images/train2014"
MASK_CACHE_SIZE = 256  # decoded masks kept; sentences of one ref are consecutive, so few suffice


def is_train_split(split: str) -> bool:
    """Training splits expose no masks (weak supervision)."""
    return split.startswith("train")


def refs_path(data_root: Path, dataset: str, split_by: str) -> Path:
    return Path(data_root) / dataset / f"refs({split_by}).p"


def load_refer(data_root, dataset: str, split: str, split_by: Optional[str] = None,
               image_root=None) -> RefDataset:
    """One split of a REFER-format dataset as a RefDataset (masks only on eval splits)."""
    data_root = Path(data_root)
    default_split_by, image_dir = REFER_DEFAULTS.get(dataset, ("unc", COCO_IMAGE_DIR))
    split_by = split_by or default_split_by
    folder = data_root / dataset
    refs_file, instances_file = refer_files(data_root, dataset, split_by)
    refs = read_refs(refs_file)
    images, annotations = read_instances(instances_file)
    image_root = Path(image_root) if image_root is not None else data_root / image_dir
    split_refs = _refs_of_split(refs, split, refs_path(data_root, dataset, split_by))
    samples = _samples(split_refs, images, annotations, image_root, instances_file,
                       refs_path(data_root, dataset, split_by))
    if samples and not samples[0].image_path.is_file():
        raise DataError(samples[0].image_path, "image not found; is the image folder right? "
                                               "(give it with --image-root DIR)")
    check_image_sizes(samples, instances_file)
    if is_train_split(split):
        return RefDataset(dataset, split, folder, samples)
    masks = AnnotationMasks(images, annotations, instances_file)
    ann_of_ref = {ref["ref_id"]: ref["ann_id"] for ref in split_refs}
    return RefDataset(dataset, split, folder, samples,
                      mask_source=lambda s: masks.ann_mask(ann_of_ref[s.ref_id]),
                      objects_source=lambda s: masks.image_objects_mask(s.image_id))


_SIZES_SEEN: dict = {}   # image path -> (height, width) read from its header, once per process


def check_image_sizes(samples, instances_file: Path) -> None:
    """Every image's file has the height and width that instances.json gives it. Masks are decoded
    at instances.json's size and predictions resized to it, so a disagreement would score a squashed
    image against a mask of another shape without an error. Reads headers only."""
    from PIL import Image

    checked = set()
    for s in samples:
        if s.image_path in checked:
            continue
        checked.add(s.image_path)
        if s.image_path not in _SIZES_SEEN:
            if not s.image_path.is_file():
                raise DataError(s.image_path, f"image {s.image_id} of {instances_file} not found")
            try:
                with Image.open(s.image_path) as im:
                    _SIZES_SEEN[s.image_path] = (im.height, im.width)
            except OSError as exc:
                raise DataError(s.image_path, f"cannot be read as an image ({exc})") from exc
        height, width = _SIZES_SEEN[s.image_path]
        if (height, width) != (s.height, s.width):
            raise DataError(s.image_path, f"the file is {width}×{height} (width×height), but "
                                          f"{instances_file} gives image {s.image_id} width {s.width}, "
                                          f"height {s.height}; the annotations and the images disagree")


def refer_files(data_root: Path, dataset: str, split_by: str) -> tuple[Path, Path]:
    """(refs pickle, instances.json) of a dataset under a split scheme; a DataError naming what
    is missing (and which refs files are there) when the folder or a file is absent."""
    folder = Path(data_root) / dataset
    if not folder.is_dir():
        raise DataError(folder, f"dataset folder not found; expected DATA_ROOT/{dataset}/ holding "
                                f"instances.json and refs({split_by}).p")
    refs = refs_path(data_root, dataset, split_by)
    if not refs.is_file():
        present = sorted(p.name for p in folder.glob("refs(*).p"))
        raise DataError(refs, f"refs file not found (files present: {', '.join(present) or 'none'})")
    instances = folder / "instances.json"
    if not instances.is_file():
        raise DataError(instances, "instances.json not found (COCO images/annotations/categories expected)")
    return refs, instances


def read_refs(path: Path) -> list[dict]:
    """The refs pickle as a list of dicts, with errors that name the file."""
    if not path.is_file():
        present = sorted(p.name for p in path.parent.glob("refs(*).p")) if path.parent.is_dir() else []
        raise DataError(path, f"refs file not found (files present: {', '.join(present) or 'none'})")
    try:
        refs = _unpickle(path)
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            ImportError, IndexError, KeyError, UnicodeDecodeError) as exc:
        raise DataError(path, f"not a readable refs pickle ({type(exc).__name__}: {exc})") from exc
    if not isinstance(refs, list) or not all(isinstance(r, dict) for r in refs):
        raise DataError(path, "expected a pickled list of ref dicts")
    needed = ("ref_id", "ann_id", "image_id", "split", "sentences")
    for ref in refs:
        missing = [k for k in needed if k not in ref]
        if missing:
            raise DataError(path, f"ref {ref.get('ref_id', '?')} lacks {', '.join(missing)}")
    return refs


def read_instances(path: Path, with_categories: bool = False) -> tuple:
    """(images by id, annotations by id) from a COCO instances.json, and with `with_categories`
    its categories by id too (empty when the file has none) — one parse of the file."""
    if not path.is_file():
        raise DataError(path, "instances.json not found (COCO images/annotations/categories expected)")
    try:
        coco = json.loads(path.read_text())
        images = {im["id"]: im for im in coco["images"]}
        annotations = {ann["id"]: ann for ann in coco["annotations"]}
        categories = {c["id"]: c for c in coco.get("categories", [])} if with_categories else None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(path, f"not valid JSON ({exc})") from exc
    except (KeyError, TypeError, AttributeError) as exc:
        raise DataError(path, f"not COCO instances: missing or malformed field {exc}") from exc
    return (images, annotations, categories) if with_categories else (images, annotations)


def _unpickle(path: Path):
    try:
        with open(path, "rb") as f:
            return pickle.load(f)
    except UnicodeDecodeError:
        # The released RefCOCO pickles were written by Python 2: their str objects need latin1.
        with open(path, "rb") as f:
            return pickle.load(f, encoding="latin1")


def _refs_of_split(refs: list[dict], split: str, path: Path) -> list[dict]:
    chosen = [ref for ref in refs if ref["split"] == split]
    if not chosen:
        present = sorted({str(ref["split"]) for ref in refs})
        raise DataError(path, f"no split {split!r}; splits present: {', '.join(present)}")
    return chosen


def _samples(refs, images, annotations, image_root: Path, instances_file: Path,
             refs_file: Path) -> list[RefSample]:
    samples = []
    for ref in refs:
        if ref["ann_id"] not in annotations:
            raise DataError(refs_file, f"ref {ref['ref_id']} points at annotation {ref['ann_id']}, "
                                       f"which {instances_file} does not hold")
        image = images.get(ref["image_id"])
        if image is None:
            raise DataError(refs_file, f"ref {ref['ref_id']} points at image {ref['image_id']}, "
                                       f"which {instances_file} does not hold")
        for sent in ref["sentences"]:
            samples.append(RefSample(
                sample_id=sent["sent_id"], ref_id=ref["ref_id"], image_id=ref["image_id"],
                image_path=image_root / image["file_name"], text=sent["sent"],
                height=int(image["height"]), width=int(image["width"])))
    return samples


class AnnotationMasks:
    """Decodes annotation masks on demand (bool [H, W] at original size), keeping the last few."""

    def __init__(self, images: dict, annotations: dict, instances_file: Path):
        self.images = images
        self.annotations = annotations
        self.instances_file = instances_file
        self._anns_of_image: dict = {}
        for ann in annotations.values():
            self._anns_of_image.setdefault(ann["image_id"], []).append(ann["id"])
        self._cache: OrderedDict = OrderedDict()

    def ann_mask(self, ann_id) -> np.ndarray:
        return self._cached(("ann", ann_id), lambda: self._decode(self.annotations[ann_id]))

    def image_objects_mask(self, image_id) -> np.ndarray:
        def union():
            image = self.images[image_id]
            out = np.zeros((int(image["height"]), int(image["width"])), dtype=bool)
            for ann_id in self._anns_of_image.get(image_id, []):
                out |= self.ann_mask(ann_id)
            return out
        return self._cached(("image", image_id), union)

    def _cached(self, key, compute: Callable[[], np.ndarray]) -> np.ndarray:
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key].copy()
        value = compute()
        self._cache[key] = value
        if len(self._cache) > MASK_CACHE_SIZE:
            self._cache.popitem(last=False)
        return value.copy()

    def _decode(self, ann: dict) -> np.ndarray:
        image = self.images[ann["image_id"]]
        height, width = int(image["height"]), int(image["width"])
        rle = segmentation_rle(ann.get("segmentation"), height, width,
                               where=f"annotation {ann['id']} in {self.instances_file}")
        return decode_rle(rle)


def decode_rle(rle: dict) -> np.ndarray:
    """bool [H, W] from a compressed RLE."""
    with warnings.catch_warnings():
        # pycocotools' Cython decode trips numpy 2's copy-keyword deprecation; harmless.
        warnings.simplefilter("ignore", DeprecationWarning)
        return coco_mask.decode(rle).astype(bool)


def segmentation_rle(segm, height: int, width: int, where: str) -> dict:
    """A COCO segmentation (polygons, uncompressed or compressed RLE) as one compressed RLE."""
    if isinstance(segm, list):
        if not segm:
            raise DataError(where, "empty polygon list")
        for poly in segm:
            if (not isinstance(poly, (list, tuple)) or len(poly) % 2
                    or not all(isinstance(v, (int, float)) for v in poly)):
                raise DataError(where, f"malformed polygon: expected a flat list of x, y pairs, "
                                       f"got {str(poly)[:60]}")
        # COCO holds a few zero-area polygons (< 3 points); like detectron2, skip them.
        polygons = [poly for poly in segm if len(poly) >= 6]
        if not polygons:
            raise DataError(where, "malformed polygon: no polygon has 3 or more points")
        return coco_mask.merge(coco_mask.frPyObjects(polygons, height, width))
    if isinstance(segm, dict) and "counts" in segm and "size" in segm:
        if list(segm["size"]) != [height, width]:
            raise DataError(where, f"RLE size {list(segm['size'])} differs from the image's "
                                   f"[{height}, {width}]")
        if isinstance(segm["counts"], list):
            return coco_mask.frPyObjects(segm, height, width)
        counts = segm["counts"]
        return {"size": list(segm["size"]),
                "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    raise DataError(where, "segmentation is neither a polygon list nor an RLE dict")
