"""A folder that appears whole or not at all: filled under a temporary name, then renamed."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable


def build_once(final: Path, fill: Callable[[Path], None]) -> Path:
    """`final`, filled by `fill(tmp_dir)` only if no finished copy exists (marked by a DONE file).

    A killed build leaves only a hidden temporary folder that no reader mistakes for a finished
    one; when two processes race, the first rename wins and the other's copy is discarded.
    """
    final = Path(final)
    if (final / "DONE").is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        fill(tmp)
        (tmp / "DONE").write_text("ok\n")
        try:
            os.replace(tmp, final)
        except OSError:  # another process finished first: keep theirs
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final
