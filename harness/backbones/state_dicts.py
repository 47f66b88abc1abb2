"""Reading weight files and reporting why they do not fit a model, shared by the backbone loaders.

Pickled checkpoints are read with `torch.load(weights_only=True)` first; files that also pickle
objects of other packages (NVlabs GroupViT stores its OmegaConf config beside the weights, DeiT-style
training checkpoints an argparse Namespace) are read again by `read_torch_pickle`, which builds
tensors as torch does and turns every other class into an inert `ForeignObject`: nothing of the
foreign package is imported or run, so it need not be installed.
"""

from __future__ import annotations

import contextlib
import pickle
import types
import warnings
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
    `save_pretrained` (a bar per cached stand-in load cluttered `run --no-progress` logs), and no
    "LOAD REPORT" table (the loaders check the keys themselves and raise on what matters); the
    caller's settings are restored afterwards."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    verbosity = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
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
            with warnings.catch_warnings():   # "torch.jit.load is deprecated": OpenAI ships only this
                warnings.simplefilter("ignore", FutureWarning)
                state = torch.jit.load(str(path), map_location="cpu").state_dict()
        else:
            state = read_torch_pickle(path)
    except CheckpointError:
        raise
    except Exception as exc:  # any reader failure means the file is not a weight file we can use
        raise CheckpointError(f"{path}: cannot be read as a weight file ({first_line(exc)})") from exc
    return _unwrap(state, path)


def state_dict_keys(path: Path) -> set[str]:
    """The names `read_state_dict(path)` would return, without reading the tensors where the
    format allows (safetensors headers; zip pickles memory-mapped)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as handle:
                return set(handle.keys())
        except Exception as exc:
            raise CheckpointError(f"{path}: cannot be read as a safetensors file ({first_line(exc)})") from exc
    if not is_torchscript_archive(path):
        try:
            return set(_unwrap(torch.load(path, map_location="cpu", weights_only=True, mmap=True), path))
        except CheckpointError:
            raise
        except Exception:  # legacy (non-zip) or foreign pickles cannot be mapped: read them whole
            pass
    return set(read_state_dict(path))


def _unwrap(state, path: Path) -> dict:
    """The state dict inside a checkpoint: under state_dict/model/module if wrapped, no DDP prefix."""
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


# ---------------------------------------------------------------- pickles naming foreign classes
class ForeignObject:
    """Inert stand-in for an object whose class the file names but that is never imported (e.g.
    `omegaconf.dictconfig.DictConfig`). It keeps what the pickle built it from and runs no code."""

    foreign_name = "?"

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs

    def __setstate__(self, state):
        self.state = state

    def __setitem__(self, key, value):   # SETITEMS of a dict subclass
        self.__dict__.setdefault("items", {})[key] = value

    def append(self, value):             # APPENDS of a list subclass
        self.__dict__.setdefault("list", []).append(value)

    def extend(self, values):
        self.__dict__.setdefault("list", []).extend(values)

    def __repr__(self) -> str:
        return f"<foreign {self.foreign_name}>"


_TORCH_TYPES = (torch.dtype, torch.device, torch.layout, torch.memory_format)
_SAFE_BUILTINS = {"set", "frozenset", "list", "dict", "tuple", "int", "float", "complex", "bool", "str",
                  "bytes", "bytearray", "slice", "range"}
_SAFE_GLOBALS = {("collections", "OrderedDict"), ("collections", "defaultdict"), ("torch", "Size"),
                 ("torch", "Tensor"), ("torch.nn.parameter", "Parameter"), ("torch._tensor", "_rebuild_from_type_v2"),
                 ("torch.serialization", "_get_layout"), ("numpy", "dtype"), ("numpy", "ndarray"),
                 ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
                 ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct")}


def _is_safe(module: str, name: str) -> bool:
    if (module, name) in _SAFE_GLOBALS or (module == "builtins" and name in _SAFE_BUILTINS):
        return True
    if module == "torch._utils" and name.startswith("_rebuild"):
        return True
    return module == "torch" and isinstance(getattr(torch, name, None), _TORCH_TYPES)


class _InertUnpickler(pickle.Unpickler):
    """Tensors, containers and plain values as usual; any other class becomes a ForeignObject."""

    def find_class(self, module, name):
        if _is_safe(module, name):
            return super().find_class(module, name)
        return type(name, (ForeignObject,), {"foreign_name": f"{module}.{name}", "__module__": __name__})


def _inert_load(file, **kwargs):
    return _InertUnpickler(file, **kwargs).load()


# torch.load takes a pickle *module*: this one differs from `pickle` only in its Unpickler.
_inert_pickle = types.ModuleType("inert_pickle")
_inert_pickle.Unpickler = _InertUnpickler
_inert_pickle.load = _inert_load


def read_torch_pickle(path: Path):
    """What `torch.load` returns for `path`, without importing any package the pickle names.

    `weights_only=True` first (torch's own safe reader); a file that pickles other objects too
    is read again with every foreign class replaced by a ForeignObject."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        pass
    try:
        return torch.load(path, map_location="cpu", weights_only=False, pickle_module=_inert_pickle)
    except Exception as exc:
        raise CheckpointError(f"{path}: cannot be read as a torch checkpoint ({first_line(exc)})") from exc
