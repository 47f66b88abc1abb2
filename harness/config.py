"""Resolving a run's configuration: file → profile → variant → `--set key=value`.

Config files are mmengine `Config` files (docs/architecture.md "Configs"):
`configs/<method>.py` for the synthref family, `configs/<method>_refcoco.py` for real datasets.
Their top-level keys are `method` (handed to the segmenter), `train` (handed to `fit`),
`protocol` (the runner's post-processing), `runtime` (batch size, checkpointing), and the
overlays `profiles` and `variants`.

The config hash identifies what a run computes: the merged dict without the overlays, plus the
dataset and the profile (and `--limit`, which changes the figures), plus the identity of the data
read — the REFER split scheme or PhraseCut list and a fingerprint of the annotation files
(harness/data/identity.py). Paths that only say where data lives are not in it, so moving data
does not change the hash; changing an annotation file does.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

from harness import registry
from harness.data.datasets import is_synthetic
from harness.errors import ConfigError, UnknownNameError
from harness.numerics import kernel_mode
from harness.overrides import apply_override, parse_value  # noqa: F401  (the `--set` rule)
from harness.paths import configs_dir

STANDARD_PROFILES = ("smoke", "ci", "full")
OVERLAY_KEYS = ("profiles", "variants")
# The floors (harness/reference_segmenters.py) are never trained and answer with probabilities
# already, so they need no file: they run with the dataset family's base and min-max off
# (min-max of the constant `whole` map would be all zeros).
CONFIG_FREE_METHODS = ("whole", "objects")
REAL_CONFIG_SUFFIX = "_refcoco"


@dataclass(frozen=True)
class ResolvedConfig:
    """The merged config of one method spec on one dataset and profile."""

    cfg: dict               # top-level keys method/train/protocol/runtime (no overlays)
    config_hash: str        # 12 hex digits
    method: str             # registered name, e.g. "sag"
    variant: Optional[str]  # e.g. "T1", or None
    profile: str
    dataset: str
    source: Optional[Path]  # the config file read, or None for a config-free floor
    data: Optional[dict] = None   # the data identity in the hash (harness/data/identity.py)
    code: Optional[dict] = None   # an outside method's code identity in the hash (harness/plugins.py)

    @property
    def spec(self) -> str:
        """`method` or `method@variant` (the store's directory name)."""
        return f"{self.method}@{self.variant}" if self.variant else self.method


def split_method_spec(spec: str) -> tuple[str, Optional[str]]:
    """`"sag@T1"` → `("sag", "T1")`; `"sag"` → `("sag", None)`."""
    name, _, variant = spec.strip().partition("@")
    if not name or (("@" in spec) and not variant):
        raise ConfigError(f"method spec {spec!r}: expected NAME or NAME@VARIANT")
    return name, (variant or None)


def config_file_for(method: str, dataset: str) -> Path:
    """Where a method's config lives for this dataset's family."""
    suffix = "" if is_synthetic(dataset) else REAL_CONFIG_SUFFIX
    return configs_dir() / f"{method}{suffix}.py"


def base_file_for(dataset: str) -> Path:
    return configs_dir() / "_base_" / ("synthref.py" if is_synthetic(dataset) else "real.py")


def read_config_file(path: Path, search: Iterable[Path] = ()) -> dict:
    """A plain dict from an mmengine Config file (its `_base_` merged in).

    A `_base_` entry is looked up next to the file first (mmengine's rule), then in each folder of
    `search` and in configs/, so that a config anywhere may write `_base_ = ['_base_/synthref.py']`
    and get the harness's common budget. Its `custom_imports = dict(imports=[...])` are imported
    through the registry (harness/registry.py): a module that fails is a MethodImportError."""
    from mmengine.config import Config

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        with _bases_also_in([*search, configs_dir()]):
            cfg = Config.fromfile(str(path), import_custom_modules=False).to_dict()
    except Exception as exc:  # mmengine raises a zoo of types for syntax and base errors
        raise ConfigError(f"{path}: cannot be read as an mmengine config ({exc})") from exc
    _custom_imports(path, cfg.get("custom_imports"))
    return cfg


@contextlib.contextmanager
def _bases_also_in(folders: list[Path]):
    """While reading one file: a `_base_` path mmengine does not find next to the config is
    looked up in `folders`. mmengine (pinned < 0.11) resolves every base through
    `Config._get_cfg_path`, its one hook for this, so it is wrapped for the duration."""
    from mmengine.config import Config

    original = Config._get_cfg_path

    def lookup(cfg_path, filename):
        found, scope = original(cfg_path, filename)
        if scope is None and not os.path.isfile(found):
            for folder in folders:
                if (Path(folder) / cfg_path).is_file():
                    return str(Path(folder) / cfg_path), None
        return found, scope

    Config._get_cfg_path = staticmethod(lookup)
    try:
        yield
    finally:
        Config._get_cfg_path = staticmethod(original)


def _custom_imports(path: Path, custom) -> None:
    """mmengine's `custom_imports = dict(imports=[...])`, imported through the one registry."""
    if custom is None:
        return
    imports = custom.get("imports") if isinstance(custom, dict) else None
    imports = [imports] if isinstance(imports, str) else imports
    if not isinstance(imports, (list, tuple)) or not all(isinstance(m, str) for m in imports):
        raise ConfigError(f"{path}: custom_imports: expected dict(imports=['my_pkg.my_method', ...]), "
                          f"got {custom!r}")
    if custom.get("allow_failed_imports"):
        raise ConfigError(f"{path}: custom_imports.allow_failed_imports=True is not honoured: a "
                          "method module that fails to import is an error here, never skipped")
    registry.load_methods([(module, f"custom_imports of {path}") for module in imports])


def deep_merge(base: dict, overlay: dict) -> dict:
    """A new dict: `overlay` merged into `base` recursively (lists and scalars replace)."""
    merged = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def config_hash(cfg: dict, dataset: str, profile: str, limit: Optional[int] = None,
                data: Optional[dict] = None, code: Optional[dict] = None) -> str:
    """First 12 hex digits of sha256 over canonical JSON of what the run computes. `data` is the
    identity of the data read (harness/data/identity.py: split scheme, annotation fingerprint);
    `code` that of an outside method's code (harness/plugins.py `Origin.identity`; None for ours)."""
    payload = {"config": cfg, "dataset": dataset, "profile": profile}
    if limit is not None:
        payload["limit"] = int(limit)
    if data is not None:
        payload["data"] = data
    if code is not None:
        payload["code"] = code
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _file_config(method: str, dataset: str, config_path) -> tuple[dict, Optional[Path]]:
    if config_path is not None:
        return read_config_file(Path(config_path)), Path(config_path)
    path = config_file_for(method, dataset)
    if path.is_file():
        return read_config_file(path), path
    if method in CONFIG_FREE_METHODS:
        floor = dict(method=dict(type=method, finetune=False), train=dict(),
                     protocol=dict(minmax=False))
        return deep_merge(read_config_file(base_file_for(dataset)), floor), None
    shipped = _shipped_config(method, dataset)
    if shipped is not None:
        return read_config_file(shipped), shipped
    raise ConfigError(f"{path}: no config for method {method!r} on {dataset!r} "
                      f"(give one with --config FILE, or ship one in the class's CONFIG_DIR)")


def _shipped_config(method: str, dataset: str) -> Optional[Path]:
    """An outside method's own config, `<CONFIG_DIR>/<method>[_refcoco].py` (Segmenter.CONFIG_DIR)."""
    folder = getattr(registry.segmenter_class(method), "CONFIG_DIR", None)
    if folder is None:
        return None
    path = Path(folder) / config_file_for(method, dataset).name
    return path if path.is_file() else None


def methods_served(config_path, specs: Optional[list[str]]) -> list[str]:
    """The method specs one `--config` runs: `specs` (default: the config's `method.type`).

    A config serves the one method its `method.type` names; asking it for another is an error
    (it would store one method's figures under another's name), and so is asking a config that
    names no type for several methods."""
    cfg = read_config_file(Path(config_path))
    served = (cfg.get("method") or {}).get("type")
    if not specs:
        if served is None:
            raise ConfigError(f"--config {config_path}: names no method.type; give --methods NAME")
        return [served]
    names = list(dict.fromkeys(split_method_spec(spec)[0] for spec in specs))
    if served is None and len(names) > 1:
        raise ConfigError(f"--config {config_path}: one config serves one method, and it names no "
                          f"method.type, but --methods asks for {', '.join(names)}; give one "
                          "--methods name, or set method.type in the config")
    wrong = [name for name in names if served is not None and name != served]
    if wrong:
        raise ConfigError(f"--config {config_path}: method.type={served!r} but --methods asks for "
                          f"{', '.join(map(repr, wrong))}; a config serves the method its "
                          f"method.type names (drop --methods, or give --methods {served})")
    return list(specs)


def _overlay(file_cfg: dict, kind: str, name: str, known_default: Iterable[str] = ()) -> dict:
    overlays = file_cfg.get(f"{kind}s") or {}
    known = set(overlays) | set(known_default)
    if name not in known:
        raise UnknownNameError(kind, name, known)
    overlay = overlays.get(name) or {}
    if not isinstance(overlay, dict):
        raise ConfigError(f"{kind}s.{name}: expected a dict of config keys, got {overlay!r}")
    return overlay


def load_run_config(method_spec: str, dataset: str, profile: str,
                    overrides: Iterable[str] = (), config_path=None,
                    limit: Optional[int] = None, data: Optional[dict] = None,
                    code: Optional[dict] = None) -> ResolvedConfig:
    """Merge file → `profiles[profile]` → `variants[variant]` → overrides; hash the result
    (with `data`, the identity of the data the run reads, and `code`, that of an outside
    method's code, when given). The merged `method.type` must be the method asked for."""
    method, variant = split_method_spec(method_spec)
    file_cfg, source = _file_config(method, dataset, config_path)
    merged = {k: v for k, v in file_cfg.items() if k not in OVERLAY_KEYS}
    for key in ("method", "train", "protocol", "runtime"):
        merged.setdefault(key, {})
    merged["method"].setdefault("type", method)
    merged = deep_merge(merged, _overlay(file_cfg, "profile", profile, STANDARD_PROFILES))
    if variant is not None:
        merged = deep_merge(merged, _overlay(file_cfg, "variant", variant))
    for assignment in overrides:
        apply_override(merged, assignment)
    mode = kernel_mode()
    if mode != "native":   # pinned CPU kernels compute other bits: their runs are other runs
        merged["runtime"]["kernels"] = mode
    if merged["method"].get("type") != method:
        raise ConfigError(f"{source or 'config'}: method.type={merged['method'].get('type')!r} but "
                          f"the method asked for is {method!r}; the run would store one method's "
                          f"figures under the other's name")
    return ResolvedConfig(cfg=merged, config_hash=config_hash(merged, dataset, profile, limit, data, code),
                          method=method, variant=variant, profile=profile, dataset=dataset,
                          source=source, data=data, code=code)
