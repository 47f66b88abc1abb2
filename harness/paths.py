"""Where the harness keeps generated data and cached pretraining (outside the repository)."""

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    """`$SAG_HARNESS_CACHE`, else `~/.cache/sag-harness`."""
    root = os.environ.get("SAG_HARNESS_CACHE") or Path.home() / ".cache" / "sag-harness"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def configs_dir() -> Path:
    return REPO_ROOT / "configs"
