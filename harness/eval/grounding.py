"""Which other object each expression is also scored against, for the grounding gap.

Within each image of a split, its refs (REFER: one ref per annotated object; PhraseCut: one per
phrase task) are sorted by ref_id and each ref r is paired with σ(r), the next ref cyclically.
σ is a derangement of the image's refs, hence a bijection, which is what makes a language-blind
method's gap exactly 0 (harness/eval/metrics.py). Images with a single ref in the split take no part.
The pairing reads only ids — no mask, no image — so every rank of a distributed run computes the
same pairs from the sample list.
"""

from __future__ import annotations

from typing import Optional, Sequence

from harness.data.types import RefSample


def _ref_order(ref_id) -> tuple:
    """Sort key: numbers by value, then other ids by text (a split never mixes them in REFER)."""
    return (0, ref_id, "") if isinstance(ref_id, int) else (1, 0, str(ref_id))


def partner_refs(samples: Sequence[RefSample]) -> dict:
    """{(image_id, ref_id): σ(ref_id)} for every ref of an image with ≥ 2 refs."""
    refs_of_image: dict = {}
    for sample in samples:
        refs = refs_of_image.setdefault(sample.image_id, [])
        if sample.ref_id not in refs:
            refs.append(sample.ref_id)
    partners = {}
    for image_id, refs in refs_of_image.items():
        ordered = sorted(refs, key=_ref_order)
        if len(ordered) < 2:
            continue
        for k, ref_id in enumerate(ordered):
            partners[(image_id, ref_id)] = ordered[(k + 1) % len(ordered)]
    return partners


def swap_partners(samples: Sequence[RefSample]) -> list[Optional[tuple]]:
    """Per sample: (partner ref_id, index of a sample of that ref — whose mask is the partner
    object's), or None when its image has no other ref in `samples`."""
    first_index: dict = {}
    for index, sample in enumerate(samples):
        first_index.setdefault((sample.image_id, sample.ref_id), index)
    partners = partner_refs(samples)
    out: list[Optional[tuple]] = []
    for sample in samples:
        partner = partners.get((sample.image_id, sample.ref_id))
        out.append(None if partner is None
                   else (partner, first_index[(sample.image_id, partner)]))
    return out
