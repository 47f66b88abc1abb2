"""One writer per run folder: two `run` processes on the same store take turns on each run.

`run_lock(folder)` holds an exclusive `fcntl.flock` on a lock file for that folder while a run
decides whether it is done, computes and writes. A second process asking for the same folder
waits (and says so), then sees the first one's metrics.json and skips — or, when it asked for
more settings, recomputes them all on top of what the first one stored. The kernel drops the
lock when its process dies (even on SIGKILL), so no stale lock can block a rerun.

Lock files live under `<cache dir>/locks/`, never in the store: the store holds results only,
and a run that fails on a user mistake writes nothing there. The locks serialise processes on one
machine (flock is not reliable across network file systems); under torchrun rank 0 takes them.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from harness.paths import cache_dir


def lock_path(folder: Path) -> Path:
    """The lock file of a run folder: named by a hash of its absolute path."""
    absolute = str(Path(folder).resolve())
    digest = hashlib.sha256(absolute.encode()).hexdigest()[:20]
    locks = cache_dir() / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    return locks / f"{Path(folder).name}-{digest}.lock"


@contextmanager
def run_lock(folder: Path, enabled: bool = True) -> Iterator[bool]:
    """Hold the run folder's lock for the block; yields True when it had to wait for it."""
    if not enabled:
        yield False
        return
    fd = os.open(lock_path(folder), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        waited = False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            waited = True
            print(f"waiting for another process writing {folder}", flush=True)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield waited
    finally:
        os.close(fd)  # closing the descriptor releases the lock
