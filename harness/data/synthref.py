"""The embedded benchmark synthref, written in the REFER format so the REFER reader serves it.

    DATA_ROOT/images/synthref/<image_id:06d>.png       scenes shared by the three variants
    DATA_ROOT/<variant>/instances.json                  COCO: polygon segmentations (+ attributes)
    DATA_ROOT/<variant>/refs(unc).p                     refs; one sentence = one sample
    DATA_ROOT/<variant>/captions.json                   whole-scene captions of train images
    DATA_ROOT/<variant>/vocab.txt                       closed vocabulary, specials first

Variants share scenes, annotations and captions; only the expressions differ: `synthref` may
say where ("leftmost", "on the left"), `synthref+` only what (colour, shape, size), `synthrefg`
relates two objects ("the red circle to the left of the blue square") and has train/val only.
Everything is a function of the seed: files are byte-identical across runs.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import sys
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image

from harness.data import synthref_language as lang
from harness.data.synthref_scenes import IMAGE_SIZE, SHAPES, Scene, coco_polygons, make_scene
from harness.atomic_dir import build_once
from harness.errors import ConfigError, UnknownNameError
from harness.paths import cache_dir

VERSION = 1  # bump when generated content changes: the cache folder name carries it
VARIANTS = lang.VARIANTS
SPLITS = ("train", "val", "testA", "testB")
VARIANT_SPLITS = {"synthref": SPLITS, "synthref+": SPLITS, "synthrefg": ("train", "val")}
DEFAULT_SIZES = {"train": 1500, "val": 160, "testA": 160, "testB": 160}  # images per split
IMAGE_DIR = "images/synthref"
REFS_PER_IMAGE = 2
SECOND_SENTENCE_P = 0.3    # REFER refs often carry more than one sentence
PICKLE_PROTOCOL = 4


GENERATOR_MODULES = ("synthref.py", "synthref_scenes.py", "synthref_language.py")


def generator_fingerprint(source_dir: Optional[Path] = None) -> str:
    """12 hex digits over the generator's source and default sizes. Part of the cache folder name:
    a cache filled by an older generator (same VERSION, other code) once made every figure
    differ from a fresh clone's, silently; now any change to the generator regenerates."""
    digest = hashlib.sha256(json.dumps(DEFAULT_SIZES, sort_keys=True).encode())
    source_dir = Path(__file__).parent if source_dir is None else Path(source_dir)
    for name in GENERATOR_MODULES:
        digest.update((source_dir / name).read_bytes())
    return digest.hexdigest()[:12]


def cache_folder(seed: int = 0) -> Path:
    return cache_dir() / "data" / f"synthref-s{int(seed)}-v{VERSION}-{generator_fingerprint()}"


def ensure_synthref(variant: str = "synthref", seed: int = 0) -> Path:
    """DATA_ROOT of the default-size synthref for `seed`, generated into the cache on first use."""
    _check_variant(variant)
    final = cache_folder(seed)
    if not (final / "DONE").is_file():
        print(f"generating synthref (seed {seed}) into {final} ...", file=sys.stderr)
    return build_once(final, lambda tmp: write_variants(tmp, VARIANTS, seed))


def write_synthref(out_dir, variant: str = "synthref", seed: int = 0,
                   sizes: Optional[dict] = None) -> Path:
    """Write the shared images and one variant under `out_dir`; returns `out_dir` (a DATA_ROOT).

    sizes: images per split, e.g. {"train": 40, "val": 20, "testA": 10, "testB": 10}
    (default DEFAULT_SIZES); a scene does not depend on the sizes of other splits.
    """
    _check_variant(variant)
    return write_variants(out_dir, (variant,), seed, sizes)


def write_variants(out_dir, variants, seed: int = 0, sizes: Optional[dict] = None) -> Path:
    """Generate the scenes once and write every variant in `variants`; returns `out_dir`."""
    out_dir = Path(out_dir)
    scenes = generate_scenes(seed, _check_sizes(sizes))
    image_dir = out_dir / IMAGE_DIR
    image_dir.mkdir(parents=True, exist_ok=True)
    for scene in scenes:
        Image.fromarray(scene.image).save(image_dir / image_name(scene.image_id), format="PNG",
                                          compress_level=6)
    instances = _instances(scenes, seed)
    captions = _captions(scenes, seed)
    for variant in variants:
        folder = out_dir / variant
        folder.mkdir(parents=True, exist_ok=True)
        _write_json(folder / "instances.json", instances)
        _write_json(folder / "captions.json", captions)
        (folder / "vocab.txt").write_text("\n".join(lang.vocabulary()) + "\n")
        with open(folder / "refs(unc).p", "wb") as f:
            pickle.dump(_refs(variant, scenes, seed), f, protocol=PICKLE_PROTOCOL)
    return out_dir


def generate_scenes(seed: int, sizes: dict) -> list[Scene]:
    """Scenes of every split, image ids numbered from 1 in split order."""
    scenes, image_id = [], 1
    for split_index, split in enumerate(SPLITS):
        for index in range(sizes.get(split, 0)):
            scenes.append(make_scene(seed, split_index, index, split, image_id))
            image_id += 1
    return scenes


def image_name(image_id: int) -> str:
    return f"{image_id:06d}.png"


def object_records(scene: Scene) -> list[dict]:
    """What the language side knows of each object (centres rounded as written to the files)."""
    return [{"colour": o.colour, "shape": o.shape, "size": o.size,
             "cx": round(o.cx, 2), "cy": round(o.cy, 2)} for o in scene.objects]


def annotation_id(scene: Scene, k: int) -> int:
    return scene.image_id * 100 + k  # at most 8 objects per scene


def _instances(scenes: list[Scene], seed: int) -> dict:
    categories = [{"id": i + 1, "name": s, "supercategory": "shape"} for i, s in enumerate(SHAPES)]
    images, annotations = [], []
    for scene in scenes:
        images.append({"id": scene.image_id, "file_name": image_name(scene.image_id),
                       "height": IMAGE_SIZE, "width": IMAGE_SIZE, "split": scene.split})
        for k, (obj, record) in enumerate(zip(scene.objects, object_records(scene))):
            ys, xs = np.nonzero(obj.mask)
            annotations.append({
                "id": annotation_id(scene, k), "image_id": scene.image_id,
                "category_id": SHAPES.index(obj.shape) + 1, "iscrowd": 0,
                "segmentation": coco_polygons(obj.visible), "area": int(obj.mask.sum()),
                "bbox": [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1),
                         int(ys.max() - ys.min() + 1)],
                "attributes": {"colour": obj.colour, "shape": obj.shape, "size": obj.size, "layer": k,
                               "center": [record["cx"], record["cy"]]}})
    return {"info": {"description": "synthref: procedural referring scenes", "version": VERSION,
                     "seed": int(seed)},
            "images": images, "annotations": annotations, "categories": categories}


def _refs(variant: str, scenes: list[Scene], seed: int) -> list[dict]:
    """Up to REFS_PER_IMAGE refs per scene of the variant's splits, each with 1–2 sentences."""
    refs, sent_id = [], 1
    for scene in scenes:
        if scene.split not in VARIANT_SPLITS[variant]:
            continue
        rng = np.random.default_rng([seed, 1000 + VARIANTS.index(variant), scene.image_id])
        objects = object_records(scene)
        chosen = 0
        for target in rng.permutation(len(objects)):
            if chosen == REFS_PER_IMAGE:
                break
            options = lang.candidates(variant, int(target), objects)
            if not options:
                continue
            n_sentences = 2 if rng.random() < SECOND_SENTENCE_P else 1
            sentences = []
            for _ in range(n_sentences):
                text = lang.realise(lang.choose(variant, options, objects, rng), rng)
                _check_text(text, int(target), objects)
                sentences.append({"sent_id": sent_id, "sent": text, "raw": text,
                                  "tokens": lang.tokenize(text)})
                sent_id += 1
            ann_id = annotation_id(scene, int(target))
            refs.append({"ref_id": ann_id, "ann_id": ann_id, "image_id": scene.image_id,
                         "split": scene.split, "category_id": SHAPES.index(objects[target]["shape"]) + 1,
                         "file_name": image_name(scene.image_id), "sentences": sentences,
                         "sent_ids": [s["sent_id"] for s in sentences]})
            chosen += 1
    return refs


def _check_text(text: str, target: int, objects: list[dict]) -> None:
    """Generator self-check: the words alone must pick the target, in the closed vocabulary."""
    if lang.evaluate(lang.parse(text), objects) != [target]:
        raise RuntimeError(f"synthref bug: {text!r} does not pick object {target} alone")
    unknown = set(lang.tokenize(text)) - set(lang.vocabulary())
    if unknown:
        raise RuntimeError(f"synthref bug: words {sorted(unknown)} missing from the vocabulary")


def _captions(scenes: list[Scene], seed: int) -> list[dict]:
    out = []
    for scene in scenes:
        if scene.split != "train":
            continue
        rng = np.random.default_rng([seed, 2000, scene.image_id])
        out.append({"image_id": scene.image_id, "file_name": f"{IMAGE_DIR}/{image_name(scene.image_id)}",
                    "captions": lang.captions(object_records(scene), rng)})
    return out


def _write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, sort_keys=True, separators=(",", ":")) + "\n")


def _check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise UnknownNameError("synthref variant", variant, VARIANTS)


def _check_sizes(sizes: Optional[dict]) -> dict:
    if sizes is None:
        return dict(DEFAULT_SIZES)
    unknown = set(sizes) - set(SPLITS)
    if unknown or any(int(n) < 0 for n in sizes.values()):
        raise ConfigError(f"synthref sizes: expected images per split for {', '.join(SPLITS)} "
                          f"(≥ 0), got {sizes}")
    return {split: int(sizes.get(split, 0)) for split in SPLITS}
