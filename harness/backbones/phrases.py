"""Phrases of a caption: maximal runs of content words, cut at function and location words.

No POS tagger is installed (and nothing is downloaded), so "the big red circle on the left"
gives ["big red circle"]. GroupViT's multi-label loss and the CLIP stand-in's patch-level loss
take their extra texts from captions this way.
"""

from __future__ import annotations

import re

_FUNCTION_WORDS = set("""a an the this that these those there it its is are was be being of on in at to into
onto with without from by for near next beside behind above below under over between among and or but
not no some any each one two three four five six several many all both image picture photo scene shows
showing contains containing has have which who what where placed shape shapes object objects thing""".split())
_LOCATION_WORDS = set("""left right top bottom middle center centre leftmost rightmost topmost bottommost
upper lower lowest highest front back side corner edge far close closest nearest""".split())
_STOP = _FUNCTION_WORDS | _LOCATION_WORDS


def phrases_of(text: str) -> list[str]:
    """Maximal runs of content words in `text` (lower-cased), in order."""
    phrases, run = [], []
    for word in re.findall(r"[a-z]+|[^a-z\s]", text.lower()):
        if word.isalpha() and word not in _STOP:
            run.append(word)
            continue
        if run:
            phrases.append(" ".join(run))
        run = []
    if run:
        phrases.append(" ".join(run))
    return phrases
