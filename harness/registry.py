"""The one registry of segmenters (mmengine Registry), and the one list of modules that fill it.

`harness` never imports a method by name elsewhere: `load_methods()` imports the modules below,
each of which registers its class with `@SEGMENTERS.register_module("name")`.
"""

import importlib
import inspect
from pathlib import Path

from mmengine.registry import Registry

from harness.errors import UnknownNameError
from harness.segmenter import Segmenter

SEGMENTERS = Registry("segmenter")

# The only place that names method modules. Adding a method = one module + one line here.
METHOD_MODULES = (
    "harness.reference_segmenters",
    "baselines.maskclip",
    "baselines.groupvit",
    "baselines.tseg",
    "sag_model.model",
)

_loaded = False


def load_methods() -> None:
    """Import every method module so that it registers itself (idempotent)."""
    global _loaded
    if _loaded:
        return
    for name in METHOD_MODULES:
        importlib.import_module(name)
    _loaded = True


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
