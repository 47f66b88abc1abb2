"""Methods from outside the harness: how their modules are found, imported and identified.

Three routes name a module whose import registers a segmenter with `@SEGMENTERS.register_module`
(harness/registry.py is the one registry; docs/adding_a_method.md the contract):

- `custom_imports = dict(imports=["my_pkg.my_method"])` in a config file (mmengine's convention);
- `--include MODULE_OR_PATH` on the command line, or `SAG_HARNESS_INCLUDE` (os.pathsep-separated):
  a module name, a `.py` file or a package folder;
- an installed distribution declaring the entry-point group `sag_harness.methods`
  (`[project.entry-points."sag_harness.methods"] my_method = "my_pkg.my_method"`).

Each import is described by an `Origin` (route, module, distribution and version, sha256 of the
source), which `list` shows and config.json records; a failed import is an `ImportFailure`.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Iterable, Optional

ENTRY_POINT_GROUP = "sag_harness.methods"
INCLUDE_ENV = "SAG_HARNESS_INCLUDE"
HARNESS = "harness"          # the route of the harness's own METHOD_MODULES
INCLUDE_FLAG = "--include"


@dataclass(frozen=True)
class Origin:
    """Where a registered method came from."""

    route: str                       # "harness", "entry point", "--include", "SAG_HARNESS_INCLUDE",
                                     # "custom_imports" (and the file or entry point in `detail`)
    module: str                      # the module imported (a path include: the file's path)
    detail: str = ""                 # e.g. "textpatch = textpatch_method.model" or the config file
    distribution: Optional[str] = None   # the installed distribution that holds the module
    version: Optional[str] = None
    sha256: Optional[str] = None     # of the module's source (its top-level package's .py files)

    @property
    def outside(self) -> bool:
        return self.route != HARNESS

    def describe(self) -> str:
        """One phrase for `list` and error messages, e.g. "entry point textpatch (dist 0.1.0)"."""
        where = f"{self.route} {self.detail}".strip()
        if self.distribution:
            where += f" ({self.distribution} {self.version})"
        return where

    def identity(self) -> Optional[dict]:
        """What of an outside method's code a run's config hash holds (None for the harness's own):
        an edited plugin is another run, as an edited annotation file is."""
        if not self.outside:
            return None
        return dict(distribution=self.distribution, version=self.version, sha256=self.sha256)

    def record(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ImportFailure:
    target: str
    route: str
    error: str

    def line(self) -> str:
        return f"{self.target} (via {self.route}): {self.error}"


def include_targets(flags: Iterable[str] = (), environ=None) -> list[tuple[str, str]]:
    """(target, route) for each `--include` value, then each entry of SAG_HARNESS_INCLUDE."""
    environ = os.environ if environ is None else environ
    targets = [(str(flag), INCLUDE_FLAG) for flag in flags]
    targets += [(item, INCLUDE_ENV) for item in environ.get(INCLUDE_ENV, "").split(os.pathsep)
                if item.strip()]
    return targets


def is_path(target: str) -> bool:
    """A file or folder rather than a module name."""
    return target.endswith(".py") or os.sep in target or Path(target).is_dir()


def import_target(target: str) -> tuple[ModuleType, str]:
    """Import a module name, a `.py` file or a package folder; (module, its description)."""
    if not is_path(target):
        return importlib.import_module(target), target
    path = Path(target).expanduser().resolve()
    if path.is_dir():
        if not (path / "__init__.py").is_file():
            raise ImportError(f"{path}: a folder given as a method must be a package (no __init__.py)")
        _on_sys_path(path.parent)
        return importlib.import_module(path.name), str(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    name = f"_sag_harness_include_{path.stem}_{hashlib.sha256(str(path).encode()).hexdigest()[:8]}"
    if name in sys.modules:
        return sys.modules[name], str(path)
    _on_sys_path(path.parent)          # so that the file may import its neighbours
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module         # before executing: pickling by module name needs it
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module, str(path)


def _on_sys_path(folder: Path) -> None:
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))


def method_entry_points() -> list:
    """The installed entry points of ENTRY_POINT_GROUP, in a stable order."""
    return sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: (ep.name, ep.value))


def origin_of(module: ModuleType, route: str, detail: str = "", dist=None, file_only: bool = False) -> Origin:
    """The Origin of an imported outside module (distribution looked up when not given);
    `file_only`: digest the module's own file, not its top-level package (a class registered by
    other code, whose package name depends on how that code was imported)."""
    name = module.__name__
    distribution = version = None
    if dist is not None:
        distribution, version = dist.metadata["Name"], dist.version
    elif not file_only:
        names = metadata.packages_distributions().get(name.partition(".")[0]) or []
        if names:
            distribution, version = names[0], metadata.version(names[0])
    where = getattr(module, "__file__", None) or name
    return Origin(route=route, module=name if not name.startswith("_sag_harness_include_") else where,
                  detail=detail, distribution=distribution, version=version,
                  sha256=source_digest(module, file_only))


def source_digest(module: ModuleType, file_only: bool = False) -> Optional[str]:
    """sha256 over the source of the module's top-level package (every .py below it, by relative
    path), or of the module's file when it is a lone module; None when it has no source file."""
    top = sys.modules.get(module.__name__.partition(".")[0], module)
    folders = [] if file_only else list(getattr(top, "__path__", []) or [])
    if folders:
        root = Path(folders[0])
        files = sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)
    elif getattr(module, "__file__", None):
        root = Path(module.__file__).parent
        files = [Path(module.__file__)]
    else:
        return None
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()
