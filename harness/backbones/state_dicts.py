"""Reading weight files and reporting why they do not fit a model, shared by the backbone loaders."""

from __future__ import annotations

import contextlib
import zipfile
from pathlib import Path

import torch

from harness.errors import CheckpointError

WRAPPER_KEYS = ("state_dict", "model", "module")


def require_path(path, what: str, folder: bool = False) -> Path:
    """`path` as a Path; CheckpointError naming it when it is missing (never a silent random init)."""
    if path is None or str(path) == "":
        raise CheckpointError(f"no {what} given: set the backbone's `checkpoint` to a local path")
    path = Path(path).expanduser()
    exists = path.is_dir() if folder else path.is_file()
    if not exists:
        kind = "folder" if folder else "file"
        raise CheckpointError(f"{path}: {what} {kind} not found")
    return path


@contextlib.contextmanager
def quiet_transformers_loading():
    """No "Loading weights" / "Writing model shards" bar from transformers' `from_pretrained` /
    `save_pretrained` (a bar per cached stand-in load cluttered `run --no-progress` logs); the
    caller's setting is restored afterwards."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def is_torchscript_archive(path: Path) -> bool:
    """True for TorchScript zips (e.g. OpenAI's original CLIP `.pt` files)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("constants.pkl") or "/code/" in name for name in archive.namelist())


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a `.safetensors`, `.pth`/`.bin`/`.pt` (plain or wrapped in state_dict/model) file."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        elif is_torchscript_archive(path):
            state = torch.jit.load(str(path), map_location="cpu").state_dict()
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any reader failure means the file is not a weight file we can use
        raise CheckpointError(f"{path}: cannot be read as a weight file ({first_line(exc)})") from exc
    for key in WRAPPER_KEYS:
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not state:
        raise CheckpointError(f"{path}: holds no tensors (expected a state dict)")
    if all(k.startswith("module.") for k in state):  # saved from DistributedDataParallel
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def describe_keys(keys, limit: int = 5) -> str:
    keys = list(keys)
    shown = ", ".join(keys[:limit])
    more = f" (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return f"{len(keys)}: {shown}{more}"


def raise_on_mismatch(path: Path, what: str, missing, unexpected) -> None:
    """CheckpointError listing missing/unexpected keys (first few and a count) if there are any."""
    missing, unexpected = list(missing), list(unexpected)
    if not missing and not unexpected:
        return
    parts = []
    if missing:
        parts.append(f"missing keys {describe_keys(missing)}")
    if unexpected:
        parts.append(f"unexpected keys {describe_keys(unexpected)}")
    raise CheckpointError(f"{path}: does not match {what}: " + "; ".join(parts))


def size_mismatches(model: torch.nn.Module, state: dict) -> list[str]:
    """Keys present in both whose shapes differ, as 'key (file [..] vs model [..])'."""
    own = model.state_dict()
    return [f"{k} (file {list(v.shape)} vs model {list(own[k].shape)})"
            for k, v in state.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
