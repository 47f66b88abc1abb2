"""The one registry of segmenters (mmengine Registry), and the modules that fill it.

`harness` never imports a method by name elsewhere: `load_methods()` imports the harness's own
modules below, the modules of installed plugins (entry-point group `sag_harness.methods`) and those
`SAG_HARNESS_INCLUDE` names, then whatever `--include` or a config's `custom_imports` adds
(harness/plugins.py); each registers its class with `@SEGMENTERS.register_module("name")`.
Every registered name keeps its `Origin`, which `list` shows and config.json records.
"""

import inspect
import sys
from pathlib import Path
from typing import Iterable, Optional

from mmengine.registry import Registry

from harness import plugins
from harness.errors import MethodImportError, UnknownNameError
from harness.plugins import HARNESS, ImportFailure, Origin
from harness.segmenter import Segmenter

SEGMENTERS = Registry("segmenter")

# The harness's own method modules. A method of your own needs no line here: see
# docs/adding_a_method.md (a config's custom_imports, --include, or an entry point).
METHOD_MODULES = (
    "harness.reference_segmenters",
    "baselines.maskclip",
    "baselines.groupvit",
    "baselines.tseg",
    "sag_model.model",
)

_loaded = False                        # METHOD_MODULES, entry points and SAG_HARNESS_INCLUDE done
_origins: dict[str, Origin] = {}       # method name -> where it came from
_failures: dict[str, ImportFailure] = {}   # target -> its failure (a failed module is not retried)
_imported: set[str] = set()            # targets imported by this registry


def load_methods(includes: Iterable[tuple[str, str]] = ()) -> None:
    """Import every method module so that it registers itself (idempotent): the harness's, the
    installed entry points', SAG_HARNESS_INCLUDE's, then `includes` ((target, route) pairs).

    Raises MethodImportError naming every module that failed (with its route and error) and the
    methods that did load; every module is tried before it is raised."""
    global _loaded
    if not _loaded:
        for name in METHOD_MODULES:
            _import(name, HARNESS)
        for entry in plugins.method_entry_points():
            _import(entry.value.partition(":")[0], "entry point",
                    detail=f"{entry.name} = {entry.value}", dist=entry.dist)
        for target, route in plugins.include_targets(environ=None, flags=()):
            _import(target, route)
        _loaded = True
    for target, route in includes:
        _import(target, route)
    if _failures:
        raise MethodImportError(_failures.values(), SEGMENTERS.module_dict)


def _import(target: str, route: str, detail: str = "", dist=None) -> None:
    """Import one target, attributing the names it registers to its Origin; a failure is kept."""
    if target in _imported or target in _failures:
        return
    before, seen = set(SEGMENTERS.module_dict), set(sys.modules)
    try:
        module, where = plugins.import_target(target)
    except Exception as exc:  # any error of a user's module: its import is what failed
        _failures[target] = ImportFailure(target, f"{route} {detail}".strip(),
                                          f"{type(exc).__name__}: {exc}")
        return
    _imported.add(target)
    if route != HARNESS and module.__name__ not in seen and set(SEGMENTERS.module_dict) == before:
        _failures[target] = ImportFailure(target, f"{route} {detail}".strip(), (
            "imported, but it registered no method (a class decorated with "
            "@SEGMENTERS.register_module('name') from harness.registry)"))
        return
    if route == HARNESS:
        origin = Origin(HARNESS, module.__name__)
    else:
        origin = plugins.origin_of(module, route, detail or where, dist)
    for name in set(SEGMENTERS.module_dict) - before:
        _origins.setdefault(name, origin)


def failures() -> list[ImportFailure]:
    """The modules that failed to import so far (`list` shows them beside the methods)."""
    return list(_failures.values())


def segmenter_class(name: str):
    """The registered class for a method name (without any `@variant`)."""
    load_methods()
    cls = SEGMENTERS.get(name)
    if cls is None:
        raise UnknownNameError("method", name, SEGMENTERS.module_dict)
    return cls


def method_names() -> list[str]:
    load_methods()
    return sorted(SEGMENTERS.module_dict)


def origin(name: str) -> Origin:
    """Where a registered method came from; a class registered by other code (a test, a wrapper
    script) is described by its module."""
    cls = SEGMENTERS.get(name) or segmenter_class(name)   # a registered name needs no loading
    found = _origins.get(name)
    if found is not None:
        return found
    module = inspect.getmodule(cls)
    if cls.__module__.split(".")[0] in ("harness", "baselines", "sag_model") or module is None:
        found = Origin(HARNESS, cls.__module__)
    else:
        found = plugins.origin_of(module, "registered in process", file_only=True)
    return _origins.setdefault(name, found)


def method_code(name: str) -> Optional[dict]:
    """The identity of an outside method's code (distribution, version, sha256) for the config
    hash; None for the harness's own methods."""
    return origin(name).identity()


def explaining_methods() -> list[str]:
    """The methods whose class implements `explain`: what the entity figure can draw."""
    return [name for name in method_names() if segmenter_class(name).explain is not Segmenter.explain]


def where(name: str) -> str:
    """`module/path.py:Class` for a method: one hop from its name to its code."""
    return location(segmenter_class(name))


def location(cls) -> str:
    """`module/path.py:Class` of a class (relative to the repository when it lives there)."""
    path = Path(inspect.getfile(cls)).resolve()
    try:
        path = path.relative_to(Path(__file__).resolve().parent.parent)
    except ValueError:
        pass
    return f"{path}:{cls.__name__}"
