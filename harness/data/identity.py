"""What data a run reads, as part of its identity (config hash) and record (config.json).

`data_identity` names the split scheme (REFER `split_by`) or the PhraseCut task list, and a
sha256 of each annotation file actually read — REFER: `refs(<splitBy>).p` and `instances.json`;
PhraseCut: the task list of each split read and the image-size file. Folder paths are not in
it (moving the data changes nothing); editing an annotation file changes the fingerprint, so a
stored run of the old file is never reported as this one.

Files are hashed once per process: digests are cached by (path, mtime, size).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Iterable, Optional

from harness.data.datasets import dataset_info, phrasecut_folder, resolve_data_root
from harness.data.phrasecut import size_file, task_list_file
from harness.data.refer import refer_files
from harness.errors import DataError

_CHUNK = 1 << 20
_DIGESTS: dict = {}


def file_digest(path: Path) -> str:
    """sha256 (hex) of a file's bytes, cached by (resolved path, mtime_ns, size)."""
    path = Path(path)
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise DataError(path, "annotation file not found") from None
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    if key not in _DIGESTS:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(_CHUNK), b""):
                digest.update(chunk)
        _DIGESTS[key] = digest.hexdigest()
    return _DIGESTS[key]


def fingerprint(files: dict) -> str:
    """One short digest over {file name: sha256}."""
    blob = json.dumps(files, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def annotation_files(name: str, data_root=None, split_by: Optional[str] = None,
                     splits: Iterable[str] = (), phrasecut_list: Optional[str] = None) -> dict:
    """{"split_by" | "phrasecut_list": ..., "paths": [annotation files a run of these splits reads]}."""

    info = dataset_info(name)
    split_by = info.resolve_split_by(split_by, name)
    root = resolve_data_root(name, data_root)
    if info.kind != "phrasecut":
        return {"split_by": split_by, "paths": list(refer_files(root, name, split_by))}
    folder = phrasecut_folder(root)
    chosen = {split: task_list_file(folder, split, phrasecut_list) for split in dict.fromkeys(splits)}
    lists = sorted({list_name for _, list_name in chosen.values()})
    paths = [path for path, _ in chosen.values()]
    sizes = size_file(folder)
    return {"phrasecut_list": lists[0] if len(lists) == 1 else lists,
            "paths": paths + ([sizes] if sizes is not None else [])}


def data_identity(name: str, data_root=None, split_by: Optional[str] = None,
                  splits: Iterable[str] = (), phrasecut_list: Optional[str] = None) -> dict:
    """{"split_by" or "phrasecut_list", "files": {file name: sha256}, "fingerprint"}."""
    found = annotation_files(name, data_root, split_by, splits, phrasecut_list)
    files = {Path(path).name: file_digest(path) for path in found.pop("paths")}
    return {**found, "files": files, "fingerprint": fingerprint(files)}
