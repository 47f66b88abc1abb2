"""Reading images from disk, with an error that names the file."""

from pathlib import Path

import numpy as np
from PIL import Image

from harness.errors import DataError


def read_rgb(path: Path) -> np.ndarray:
    """uint8 [H, W, 3]."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "image file not found")
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except OSError as exc:
        raise DataError(path, f"cannot be read as an image ({exc})") from exc
