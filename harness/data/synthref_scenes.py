"""synthref scenes: small textured images holding several coloured shapes, some overlapping.

Every shape is a union of convex polygons, so the visible part of an occluded shape is again a
union of convex polygons (half-plane clipping) and can be written as COCO polygon segmentation.
The image is painted from the very masks pycocotools decodes from those polygons, so the pixels
and the ground truth agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image
from pycocotools import mask as coco_mask

from harness.data.refer import decode_rle

IMAGE_SIZE = 64
SHAPES = ("circle", "square", "triangle", "diamond", "star", "cross")
COLOURS = {"red": (215, 45, 45), "green": (45, 165, 65), "blue": (45, 85, 215),
           "yellow": (225, 205, 45), "purple": (145, 65, 185), "orange": (235, 135, 35)}
SIZE_RADII = {"small": (4.5, 5.5), "big": (8.0, 9.5)}  # px; far apart so "big"/"small" is never a guess
# Objects per scene by split: testA sparse, testB crowded, train/val mixed. Enough objects that
# pointing at every object (no language) scores low.
OBJECT_COUNTS = {"train": (4, 8), "val": (4, 8), "testA": (3, 4), "testB": (6, 8)}
MIN_VISIBLE = 0.6          # an occluded object keeps at least this fraction of its area
PLACEMENT_TRIES = 40
Polygon = list  # [(x, y), ...], convex


@dataclass
class SceneObject:
    shape: str
    colour: str
    size: str
    cx: float
    cy: float
    radius: float
    pieces: list = field(default_factory=list)        # convex polygons of the whole shape
    visible: list = field(default_factory=list)       # convex polygons of its visible part
    mask: np.ndarray = None                            # bool [H, W], decoded from `visible`


@dataclass
class Scene:
    image_id: int
    split: str
    objects: list          # SceneObject, in painting order (later ones on top)
    image: np.ndarray      # uint8 [H, W, 3]


def shape_pieces(shape: str, cx: float, cy: float, r: float) -> list[Polygon]:
    """The shape as convex polygons around (cx, cy), extent about r."""
    def ring(n, radius, phase):
        return [(cx + radius * math.cos(phase + 2 * math.pi * k / n),
                 cy + radius * math.sin(phase + 2 * math.pi * k / n)) for k in range(n)]

    if shape == "circle":
        return [ring(16, r, 0.0)]
    if shape == "square":
        return [ring(4, r * 1.15, math.pi / 4)]
    if shape == "diamond":
        return [ring(4, r * 1.15, 0.0)]
    if shape == "triangle":
        return [ring(3, r * 1.25, -math.pi / 2)]
    if shape == "star":  # a pentagon plus five spikes
        outer, inner = ring(5, r * 1.3, -math.pi / 2), ring(5, r * 0.55, -math.pi / 2 + math.pi / 5)
        spikes = [[inner[k - 1], outer[k], inner[k]] for k in range(5)]
        return [ring(5, r * 0.55, -math.pi / 2 + math.pi / 5)] + spikes
    if shape == "cross":
        w, h = r * 1.1, r * 0.4
        return [[(cx - w, cy - h), (cx + w, cy - h), (cx + w, cy + h), (cx - w, cy + h)],
                [(cx - h, cy - w), (cx + h, cy - w), (cx + h, cy + w), (cx - h, cy + w)]]
    raise ValueError(f"unknown shape {shape!r}")


def _side(a, b, p) -> float:
    return (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])


def _clip(poly: Polygon, a, b, sign: float) -> Polygon:
    """Sutherland–Hodgman: the part of `poly` where sign * side(a, b, p) >= 0."""
    out = []
    for k, p in enumerate(poly):
        q = poly[(k + 1) % len(poly)]
        sp, sq = sign * _side(a, b, p), sign * _side(a, b, q)
        if sp >= 0:
            out.append(p)
        if (sp >= 0) != (sq >= 0):
            t = sp / (sp - sq)
            out.append((p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1])))
    return out


def _area(poly: Polygon) -> float:
    return 0.5 * abs(sum(poly[k][0] * poly[k - 1][1] - poly[k - 1][0] * poly[k][1] for k in range(len(poly))))


def subtract(poly: Polygon, hole: Polygon) -> list[Polygon]:
    """poly minus the convex `hole`, as convex pieces (one per edge of the hole it crosses)."""
    if (max(p[0] for p in poly) <= min(p[0] for p in hole) or min(p[0] for p in poly) >= max(p[0] for p in hole)
            or max(p[1] for p in poly) <= min(p[1] for p in hole)
            or min(p[1] for p in poly) >= max(p[1] for p in hole)):
        return [poly]  # bounding boxes apart: nothing to cut
    centre = (sum(p[0] for p in hole) / len(hole), sum(p[1] for p in hole) / len(hole))
    pieces, rest = [], poly
    for k, a in enumerate(hole):
        b = hole[(k + 1) % len(hole)]
        inward = 1.0 if _side(a, b, centre) > 0 else -1.0
        outside = _clip(rest, a, b, -inward)
        if len(outside) >= 3 and _area(outside) > 0.05:
            pieces.append(outside)
        rest = _clip(rest, a, b, inward)
        if len(rest) < 3:
            break
    return pieces


def rasterise(polygons: list[Polygon], size: int = IMAGE_SIZE) -> np.ndarray:
    """Union of polygons as bool [size, size], exactly as the REFER reader will decode it."""
    flat = coco_polygons(polygons)
    if not flat:
        return np.zeros((size, size), dtype=bool)
    return decode_rle(coco_mask.merge(coco_mask.frPyObjects(flat, size, size)))


def coco_polygons(polygons: list[Polygon]) -> list[list[float]]:
    """COCO's flat [x0, y0, x1, y1, ...] lists, rounded so files are small and exact."""
    return [[round(float(v), 2) for p in poly for v in p] for poly in polygons]


def occlude(objects: list[SceneObject]) -> None:
    """Fill each object's visible polygons and mask: later objects cover earlier ones."""
    for i, obj in enumerate(objects):
        visible = [piece for piece in obj.pieces]
        for above in objects[i + 1:]:
            if math.dist((obj.cx, obj.cy), (above.cx, above.cy)) > 1.6 * (obj.radius + above.radius):
                continue
            for hole in above.pieces:
                visible = [part for piece in visible for part in subtract(piece, hole)]
        obj.visible = [[(round(x, 2), round(y, 2)) for x, y in poly] for poly in visible]
        obj.mask = rasterise(obj.visible)


def sample_objects(rng: np.random.Generator, split: str) -> list[SceneObject]:
    """Objects drawn from a few colours and shapes per scene, so distractors share attributes."""
    low, high = OBJECT_COUNTS[split]
    count = int(rng.integers(low, high + 1))
    colours = list(rng.choice(list(COLOURS), size=int(rng.integers(2, 5)), replace=False))
    shapes = list(rng.choice(SHAPES, size=int(rng.integers(2, 5)), replace=False))
    placed: list[SceneObject] = []
    full_masks: list[np.ndarray] = []
    visible_masks: list[np.ndarray] = []
    while len(placed) < count:
        size = str(rng.choice(list(SIZE_RADII)))
        obj = SceneObject(shape=str(rng.choice(shapes)), colour=str(rng.choice(colours)), size=size,
                          cx=0.0, cy=0.0, radius=float(rng.uniform(*SIZE_RADII[size])))
        if not _place(obj, rng, placed, full_masks, visible_masks):
            break  # the scene is full: keep what fits
        placed.append(obj)
    return placed


def _grow(mask: np.ndarray) -> np.ndarray:
    """The mask grown by one pixel (4-neighbourhood)."""
    out = mask.copy()
    out[1:] |= mask[:-1]
    out[:-1] |= mask[1:]
    out[:, 1:] |= mask[:, :-1]
    out[:, :-1] |= mask[:, 1:]
    return out


def _place(obj: SceneObject, rng, placed: list, full_masks: list, visible_masks: list) -> bool:
    """Find a spot where every earlier object stays at least MIN_VISIBLE visible, and where the
    object does not touch one of its own colour (they would read as one blob)."""
    margin = obj.radius * 1.2 + 1.0  # stars and triangles reach past the radius
    for _ in range(PLACEMENT_TRIES):
        obj.cx = float(rng.uniform(margin, IMAGE_SIZE - margin))
        obj.cy = float(rng.uniform(margin, IMAGE_SIZE - margin))
        mask = rasterise(shape_pieces(obj.shape, obj.cx, obj.cy, obj.radius))
        grown = _grow(mask)
        if any(other.colour == obj.colour and (grown & vis).any()
               for other, vis in zip(placed, visible_masks)):
            continue
        covered = [vis & ~mask for vis in visible_masks]
        if all(c.sum() >= MIN_VISIBLE * f.sum() for c, f in zip(covered, full_masks)):
            obj.pieces = shape_pieces(obj.shape, obj.cx, obj.cy, obj.radius)
            visible_masks[:] = covered
            visible_masks.append(mask)
            full_masks.append(mask)
            return True
    return False


def make_scene(seed: int, split_index: int, index: int, split: str, image_id: int) -> Scene:
    """One scene; its own random stream, so a scene does not depend on how many precede it."""
    rng = np.random.default_rng([seed, split_index, index])
    while True:
        objects = sample_objects(rng, split)
        if len(objects) >= OBJECT_COUNTS[split][0]:
            break
    occlude(objects)
    return Scene(image_id=image_id, split=split, objects=objects, image=paint(objects, rng))


def paint(objects: list[SceneObject], rng: np.random.Generator) -> np.ndarray:
    """uint8 [H, W, 3]: a mildly textured greyish background, then each object's visible mask."""
    base = rng.uniform(95, 150) + rng.uniform(-12, 12, size=3)             # [3] a muted tint
    coarse = rng.normal(0.0, 10.0, size=(8, 8)).astype(np.float32)           # [8, 8] blotches
    blotches = np.asarray(Image.fromarray(coarse, mode="F").resize((IMAGE_SIZE, IMAGE_SIZE),
                                                                     Image.BILINEAR))
    canvas = base[None, None, :] + blotches[..., None] + rng.normal(0, 3, size=(IMAGE_SIZE, IMAGE_SIZE, 3))
    grain = rng.normal(0, 5, size=(IMAGE_SIZE, IMAGE_SIZE, 3))                 # [H, W, 3]
    for obj in objects:
        tone = np.array(COLOURS[obj.colour], dtype=float) + rng.uniform(-15, 15)
        canvas[obj.mask] = tone[None, :] + grain[obj.mask]
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
