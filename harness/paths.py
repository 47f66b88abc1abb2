"""Where the harness keeps generated data and cached pretraining (outside the repository), and
where it finds its own configs and the paper's figures.

In a checkout (and an editable install) those are `configs/` and `results/paper/` at the repository
root. A wheel (`pip install .`) carries copies of both inside the package, at `harness/_shipped/`
(setup.py puts them there); a checkout's own folders win when both exist.
"""

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SHIPPED = Path(__file__).resolve().parent / "_shipped"


def cache_dir() -> Path:
    """`$SAG_HARNESS_CACHE`, else `~/.cache/sag-harness`."""
    root = os.environ.get("SAG_HARNESS_CACHE") or Path.home() / ".cache" / "sag-harness"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _checkout_or_shipped(relative: str, shipped_name: str) -> Path:
    checkout = REPO_ROOT / relative
    if checkout.is_dir():
        return checkout
    shipped = SHIPPED / shipped_name
    if shipped.is_dir():
        return shipped
    # Neither: return the checkout path so that the caller's error names where it looked first.
    return checkout


def configs_dir() -> Path:
    """The harness's mmengine configs: `_base_/`, one per method, `tables/`, `reference/`."""
    return _checkout_or_shipped("configs", "configs")


def paper_dir() -> Path:
    """The paper's published figures, one CSV per table."""
    return _checkout_or_shipped("results/paper", "paper")


def reference_path(name: str = "ci.json") -> Path:
    """A file of `configs/reference/` (the CI gate's reference by default)."""
    return configs_dir() / "reference" / name
