"""synthref language: referring expressions as small programs, their wording, a parser that
reads the wording back, and whole-scene captions.

An expression is `{"target": desc, "loc": dir|None, "rel": {"dir", "anchor": desc}|None}` where
`desc = {"colour", "shape", "size"}` (None = not said) and dir in left/right/top/bottom.
`evaluate(expr, objects)` lists the objects it picks; a sentence is only written when it picks
exactly its target, so every expression is unambiguous by construction (and tests re-check it
by parsing the text).
"""

from __future__ import annotations

import re

import numpy as np

from harness.data.synthref_scenes import COLOURS, SHAPES, SIZE_RADII

VARIANTS = ("synthref", "synthref+", "synthrefg")
DIRS = ("left", "right", "top", "bottom")
MARGIN = 4.0  # px between centres before "left of"/"leftmost" counts: no near-ties
ATTRS = ("size", "colour", "shape")
APPEARANCE_SUBSETS = (("shape",), ("colour",), ("colour", "shape"), ("size", "shape"),
                      ("size", "colour"), ("size", "colour", "shape"))
LOCATION_SUBSETS = ((), ("shape",), ("colour",), ("colour", "shape"), ("size", "shape"))
LOC_TEMPLATES = {
    "left": ("the leftmost {np}", "the {np} on the left", "{np} on the left", "left {np}"),
    "right": ("the rightmost {np}", "the {np} on the right", "{np} on the right", "right {np}"),
    "top": ("the topmost {np}", "the {np} at the top", "top {np}", "the top {np}"),
    "bottom": ("the lowest {np}", "the {np} at the bottom", "bottom {np}", "the bottom {np}"),
}
LOC_WORDS = {"leftmost": "left", "left": "left", "rightmost": "right", "right": "right",
             "topmost": "top", "top": "top", "lowest": "bottom", "bottom": "bottom"}
REL_PHRASES = {"left": ("to the left of", "left of"), "right": ("to the right of", "right of"),
               "top": ("above", "over"), "bottom": ("below", "under")}
REL_TEMPLATES = ("the {t} {rel} the {a}", "{t} {rel} the {a}", "the {t} that is {rel} the {a}",
                 "the {t} which is {rel} the {a}", "the {t} placed {rel} the {a}")
NOUNS = ("one", "shape", "object")
PLURALS = {"circle": "circles", "square": "squares", "triangle": "triangles",
           "diamond": "diamonds", "star": "stars", "cross": "crosses"}
NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
FUNCTION_WORDS = ("the", "a", "an", "on", "at", "of", "to", "that", "is", "which", "placed", "and",
                  "from", "picture", "with", "there", "are", "shapes", ",")


def vocabulary() -> list[str]:
    """The closed vocabulary: BERT-style specials first, then every word any text may use."""
    words = (set(COLOURS) | set(SHAPES) | set(SIZE_RADII) | set(PLURALS.values()) | set(NUMBERS)
             | set(NOUNS) | set(LOC_WORDS) | set(FUNCTION_WORDS) | {"above", "over", "below", "under"})
    return list(SPECIAL_TOKENS) + sorted(words)


def tokenize(text: str) -> list[str]:
    """Words and commas, lower-case (what vocab.txt covers)."""
    return re.findall(r"[a-z]+|,", text.lower())


# ---- meaning -------------------------------------------------------------------------------

def _coord(obj: dict, direction: str) -> float:
    """Smaller = further in `direction` (image y grows downwards)."""
    return {"left": obj["cx"], "right": -obj["cx"], "top": obj["cy"], "bottom": -obj["cy"]}[direction]


def matches(obj: dict, desc: dict) -> bool:
    return ((desc["colour"] is None or obj["colour"] == desc["colour"])
            and (desc["shape"] is None or obj["shape"] == desc["shape"])
            and (desc["size"] is None or obj["size"] == desc["size"]))


def _beyond(obj: dict, other: dict, direction: str) -> bool:
    """obj lies clearly further than `other` in `direction` ("left of", "above", ...)."""
    return _coord(obj, direction) + MARGIN <= _coord(other, direction)


def evaluate(expr: dict, objects: list[dict]) -> list[int]:
    """Indices of the objects (dicts with colour, shape, size, cx, cy) the expression picks."""
    group = [i for i, o in enumerate(objects) if matches(o, expr["target"])]
    if expr.get("loc"):
        d = expr["loc"]
        group = [i for i in group
                 if all(_beyond(objects[i], objects[j], d) for j in group if j != i)]
    if expr.get("rel"):
        anchors = [j for j, o in enumerate(objects) if matches(o, expr["rel"]["anchor"])]
        if len(anchors) != 1:
            return []
        a, d = anchors[0], expr["rel"]["dir"]
        group = [i for i in group if i != a and _beyond(objects[i], objects[a], d)]
    return group


def _desc(obj: dict, keys) -> dict:
    return {k: (obj[k] if k in keys else None) for k in ATTRS}


def candidates(variant: str, target: int, objects: list[dict]) -> list[dict]:
    """Every expression of the variant's kind that picks exactly `target`."""
    obj = objects[target]
    unique = lambda e: evaluate(e, objects) == [target]  # noqa: E731
    if variant == "synthrefg":
        out = []
        anchors = [_minimal_unique(j, objects) for j in range(len(objects))]
        for keys in (("colour", "shape"), ("size", "colour", "shape")):
            for j, anchor in enumerate(anchors):
                for d in DIRS:
                    if j == target or anchor is None or not _beyond(obj, objects[j], d):
                        continue  # cheap rejection before evaluating against every object
                    e = {"target": _desc(obj, keys), "loc": None, "rel": {"dir": d, "anchor": anchor}}
                    if unique(e):
                        out.append(e)
        return out
    out = [{"target": _desc(obj, keys), "loc": None, "rel": None} for keys in APPEARANCE_SUBSETS]
    if variant == "synthref":
        out += [{"target": _desc(obj, keys), "loc": d, "rel": None}
                for d in DIRS for keys in LOCATION_SUBSETS]
    return [e for e in out if unique(e)]


def _minimal_unique(j: int, objects: list[dict]):
    """The shortest appearance description (colour + shape at least) naming only object j."""
    for keys in (("colour", "shape"), ("size", "colour", "shape")):
        desc = _desc(objects[j], keys)
        if sum(matches(o, desc) for o in objects) == 1:
            return desc
    return None


def choose(variant: str, options: list[dict], objects: list[dict], rng: np.random.Generator) -> dict:
    """Pick one expression: synthref says where in about half the cases it can, synthrefg
    prefers relations the target needs (its appearance alone is ambiguous)."""
    if variant == "synthref":
        located = [e for e in options if e["loc"]]
        if located and (len(located) == len(options) or rng.random() < 0.5):
            options = located
        elif located:
            options = [e for e in options if not e["loc"]]
    if variant == "synthrefg":
        needed = [e for e in options if len(evaluate({"target": e["target"]}, objects)) > 1]
        if needed and rng.random() < 0.7:
            options = needed
    return options[int(rng.integers(len(options)))]


# ---- wording -------------------------------------------------------------------------------

def noun_phrase(desc: dict, rng: np.random.Generator) -> str:
    words = [desc[k] for k in ("size", "colour") if desc.get(k)]
    words.append(desc["shape"] if desc.get("shape") else str(rng.choice(NOUNS)))
    return " ".join(words)


def realise(expr: dict, rng: np.random.Generator) -> str:
    """The expression in words."""
    np_target = noun_phrase(expr["target"], rng)
    if expr.get("rel"):
        rel = str(rng.choice(REL_PHRASES[expr["rel"]["dir"]]))
        template = str(rng.choice(REL_TEMPLATES))
        return template.format(t=np_target, rel=rel, a=noun_phrase(expr["rel"]["anchor"], rng))
    if expr.get("loc"):
        return str(rng.choice(LOC_TEMPLATES[expr["loc"]])).format(np=np_target)
    return (str(rng.choice(("the ", ""))) + np_target)


def parse(text: str) -> dict:
    """Read a realised expression back into its program (independent of how it was chosen)."""
    tokens = tokenize(text)
    rel = None
    for k, tok in enumerate(tokens):
        d = {"above": "top", "over": "top", "below": "bottom", "under": "bottom"}.get(tok)
        if tok in ("left", "right") and k + 1 < len(tokens) and tokens[k + 1] == "of":
            d, anchor_from = tok, k + 2
        else:
            anchor_from = k + 1
        if d:
            rel = {"dir": d, "anchor": _parse_desc(tokens[anchor_from:])}
            tokens = tokens[:k]
            break
    locs = {LOC_WORDS[t] for t in tokens if t in LOC_WORDS}
    if len(locs) > 1:
        raise ValueError(f"two locations in {text!r}")
    return {"target": _parse_desc(tokens), "loc": locs.pop() if locs else None, "rel": rel}


def _parse_desc(tokens: list[str]) -> dict:
    vocab = {"colour": set(COLOURS), "shape": set(SHAPES), "size": set(SIZE_RADII)}
    return {k: next((t for t in tokens if t in vocab[k]), None) for k in ATTRS}


# ---- captions ------------------------------------------------------------------------------

def with_article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _join(phrases: list[str]) -> str:
    return phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]


def captions(objects: list[dict], rng: np.random.Generator) -> list[str]:
    """Whole-scene captions in three phrasings: a listing, left to right, and counts."""
    listed = [with_article(noun_phrase(_desc(o, ATTRS if rng.random() < 0.5 else ("colour", "shape")), rng))
              for o in (objects[i] for i in rng.permutation(len(objects)))]
    ordered = sorted(objects, key=lambda o: o["cx"])
    left_to_right = [with_article(f"{o['colour']} {o['shape']}") for o in ordered]
    counts: dict = {}
    for o in objects:
        counts[(o["colour"], o["shape"])] = counts.get((o["colour"], o["shape"]), 0) + 1
    counted = [f"{NUMBERS[n]} {c} {PLURALS[s] if n > 1 else s}" for (c, s), n in sorted(counts.items())]
    return [_join(listed),
            "from left to right, " + _join(left_to_right),
            f"a picture with {NUMBERS[len(objects)]} shapes, " + _join(counted)]
