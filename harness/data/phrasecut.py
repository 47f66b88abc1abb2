"""PhraseCut reader (VGPhraseCut_v0): a task list, image sizes, images `<folder>/images/<id>.jpg`.

Task lists, per split (`PHRASECUT_LISTS`):
- `official`: `refer_<split>.json`, the dataset's own file — a list of tasks, each a dict with
  task_id, image_id, phrase, phrase_structure, ann_ids, instance_boxes and Polygons;
- `ris`: `refer_<split>_ris.json`, the list the SaG release evaluates (and the paper reports):
  a dict task_id -> {phrase, Polygons, ...}, image id = the task id's prefix before `__`.
When both exist the choice is explicit (`--phrasecut-list`) and defaults to `ris`, the paper's;
when one exists it is read. Its order is the file's (so `--limit 10001` takes the release's
first 10,001 tasks of the chosen list).

Image sizes come from `image_data_split.json` (the official metadata: a list of {image_id,
width, height, split, url, coco_id, flickr_id}; `image_data.json` is accepted as well), which is
what the official evaluation rasterises ground truth at; without either, from the JPEG header.

A task's `Polygons` is a list over instances, each a list of polygons of [x, y] points; the
ground truth is their union, rasterised as the official `polygons_to_mask`
(utils/data_transfer.py) does: coordinates truncated to int, PIL ImageDraw with outline and
fill = 1, polygons of fewer than 2 points skipped, 2-point polygons drawn (a line).
One sample = one task (`sample_id = task_id`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image, ImageDraw

from harness.data.refer import is_train_split
from harness.data.types import RefDataset, RefSample
from harness.errors import ConfigError, DataError

PHRASECUT_LISTS = {"ris": "refer_{split}_ris.json", "official": "refer_{split}.json"}
DEFAULT_LIST = "ris"          # the SaG release's list, which the paper's PhraseCut figures use
SIZE_FILES = ("image_data_split.json", "image_data.json")   # official name first


def load_phrasecut(data_root, split: str, image_root=None, limit: Optional[int] = None,
                   task_list: Optional[str] = None) -> RefDataset:
    """One PhraseCut split; `limit` keeps the first N tasks in the file's order."""
    data_root = Path(data_root)
    if not data_root.is_dir():
        raise DataError(data_root, "PhraseCut folder not found (expected refer_<split>.json and images/)")
    path, tasks = read_tasks(data_root, split, task_list)
    if limit is not None:
        if int(limit) < 1:
            raise ConfigError(f"limit must be ≥ 1, got {limit}")
        tasks = tasks[: int(limit)]
    image_root = Path(image_root) if image_root is not None else data_root / "images"
    sizes = ImageSizes(data_root, image_root)
    samples = [RefSample(sample_id=t["task_id"], ref_id=t["task_id"], image_id=t["image_id"],
                         image_path=image_root / f"{t['image_id']}.jpg", text=t["phrase"],
                         height=h, width=w)
               for t in tasks for (h, w) in [sizes.of(t["image_id"])]]
    if is_train_split(split):
        return RefDataset("phrasecut", split, data_root, samples)
    polygons_of_task = {t["task_id"]: t["Polygons"] for t in tasks}
    tasks_of_image: dict = {}
    for t in tasks:
        tasks_of_image.setdefault(t["image_id"], []).append(t["task_id"])

    def mask(sample: RefSample) -> np.ndarray:
        return rasterise(polygons_of_task[sample.sample_id], sample.height, sample.width,
                         where=f"task {sample.sample_id} in {path}")

    def objects(sample: RefSample) -> np.ndarray:
        out = np.zeros((sample.height, sample.width), dtype=bool)
        for task_id in tasks_of_image[sample.image_id]:
            out |= rasterise(polygons_of_task[task_id], sample.height, sample.width,
                             where=f"task {task_id} in {path}")
        return out

    return RefDataset("phrasecut", split, data_root, samples, mask_source=mask, objects_source=objects)


def task_list_file(data_root: Path, split: str, task_list: Optional[str] = None) -> tuple[Path, str]:
    """(file, list name) a split is read from: `task_list` if given, else `ris` when its file
    exists, else `official`. A named list whose file is missing is an error."""
    data_root = Path(data_root)
    if task_list is not None and task_list not in PHRASECUT_LISTS:
        raise ConfigError(f"--phrasecut-list {task_list!r}: expected one of "
                          f"{', '.join(PHRASECUT_LISTS)}")
    candidates = [task_list] if task_list else [DEFAULT_LIST, *(n for n in PHRASECUT_LISTS if n != DEFAULT_LIST)]
    for name in candidates:
        path = data_root / PHRASECUT_LISTS[name].format(split=split)
        if path.is_file():
            return path, name
    present = sorted(p.name for p in data_root.glob("refer_*.json")) if data_root.is_dir() else []
    wanted = " or ".join(PHRASECUT_LISTS[n].format(split=split) for n in candidates)
    raise DataError(data_root / PHRASECUT_LISTS[candidates[0]].format(split=split),
                    f"not found (expected {wanted}); files present: {', '.join(present) or 'none'}")


def read_tasks(data_root: Path, split: str, task_list: Optional[str] = None) -> tuple[Path, list[dict]]:
    """(file read, tasks as dicts with task_id, image_id, phrase, Polygons) in file order."""
    path, _ = task_list_file(data_root, split, task_list)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(path, f"not valid JSON ({exc})") from exc
    if isinstance(raw, dict):  # the _ris variant: task_id -> task, image id = task_id's prefix
        raw = [dict(task, task_id=task_id, image_id=_image_id_of(task_id))
               if isinstance(task, dict) else task for task_id, task in raw.items()]
    if not isinstance(raw, list):
        raise DataError(path, "expected a list of tasks or a dict task_id -> task")
    for task in raw:
        if not isinstance(task, dict):
            raise DataError(path, f"expected each task to be a dict, got {str(task)[:60]}")
        missing = [k for k in ("task_id", "image_id", "phrase", "Polygons") if k not in task]
        if missing:
            raise DataError(path, f"task {task.get('task_id', '?')} lacks {', '.join(missing)}")
    return path, raw


def _image_id_of(task_id: str):
    prefix = str(task_id).split("__")[0]
    return int(prefix) if prefix.isdigit() else prefix


def size_file(data_root: Path) -> Optional[Path]:
    """The image-size metadata present (`image_data_split.json` first), or None."""
    for name in SIZE_FILES:
        if (Path(data_root) / name).is_file():
            return Path(data_root) / name
    return None


class ImageSizes:
    """(height, width) per image id: from image_data_split.json (or image_data.json) when
    present — an image it does not list is then an error — else from the image's header."""

    def __init__(self, data_root: Path, image_root: Path):
        self.image_root = image_root
        self.source = size_file(data_root)
        self._sizes: dict = {}
        if self.source is not None:
            self._sizes = read_sizes(self.source)

    def of(self, image_id) -> tuple[int, int]:
        if image_id in self._sizes:
            return self._sizes[image_id]
        if self.source is not None:
            raise DataError(self.source, f"image {image_id} is not listed (its height and width "
                                         "are needed to score it)")
        path = self.image_root / f"{image_id}.jpg"
        if not path.is_file():
            raise DataError(path, "image not found (its size is needed; give --image-root DIR "
                                  "or put image_data_split.json beside the task lists)")
        try:
            with Image.open(path) as im:  # reads the header only
                self._sizes[image_id] = (im.height, im.width)
        except OSError as exc:
            raise DataError(path, f"cannot be read as an image ({exc})") from exc
        return self._sizes[image_id]


def read_sizes(path: Path) -> dict:
    """{image_id: (height, width)} from a list of {image_id, width, height, ...}."""
    try:
        entries = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(entries, list):
            raise TypeError("not a list")
        return {entry["image_id"]: (int(entry["height"]), int(entry["width"])) for entry in entries}
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as exc:
        raise DataError(path, f"expected a list of {{image_id, width, height, ...}} "
                              f"({type(exc).__name__}: {exc})") from exc


def rasterise(instances, height: int, width: int, where: str) -> np.ndarray:
    """Union of every polygon of every instance, bool [H, W], as the official polygons_to_mask."""
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    if not isinstance(instances, list):
        raise DataError(where, "Polygons must be a list over instances")
    for polygons in instances:
        if not isinstance(polygons, list):
            raise DataError(where, f"malformed instance {str(polygons)[:60]}: expected a list of polygons")
        for poly in polygons:
            try:
                points = [(int(x), int(y)) for x, y in poly]   # official: int() truncation
            except (TypeError, ValueError) as exc:
                raise DataError(where, f"malformed polygon {str(poly)[:60]}: expected [[x, y], ...]") from exc
            if len(points) < 2:   # the official code skips these; 2 points draw a line
                continue
            draw.polygon(points, outline=1, fill=1)
    return np.asarray(canvas, dtype=bool)
