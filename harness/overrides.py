"""`--set key=value`: one rule turns the text into the type of the value it replaces.

A key the config already holds takes the text as that value's type:

    bool       true / false / 1 / 0 (any case)             `method.interaction=false` → False
    int        an integer literal                           `train.epochs=3`
    float      an int or float literal                      `train.lr=1e-5`
    str        the text as given (a quoted literal unquoted) `method.inference=avg`
    list/tuple a list or tuple literal (or `a,b`), each item by this rule against the old items'
               common type                                  `protocol.taus=[0.4, 0.5]`
    dict       a dict literal                               `method.slots=dict(...)` is not one
    None       anything (the type is unknown), parsed as a Python literal else kept as text

`None` / `null` (any case) sets any existing key to None (an optional setting switched off).
A value that does not fit is a ConfigError naming the key, the expected type and the value.
A key the config does not hold is a ConfigError naming it and its close matches (a typo would
otherwise run the default silently), unless the assignment starts with `+` (Hydra's convention):
`--set +method.new_key=3` says a new key is meant, and takes the literal parsing (a Python
literal, else the text). A new section below a known key (`+method.vit.checkpoint=PATH`) too.
"""

from __future__ import annotations

import ast
import difflib

from harness.errors import ConfigError

TRUE_WORDS, FALSE_WORDS = ("true", "1"), ("false", "0")
# Keys the code reads when present and a config may leave out (harness/run/fit_loop.py: absent
# means no step cap, no clipping, fp32): setting one is never a typo, so it needs no `+`.
OPTIONAL_KEYS = ("train.max_steps", "train.grad_clip", "train.amp")
NONE_WORDS = ("none", "null")


def parse_value(text: str):
    """A `--set` value of a new key: a Python literal (`3`, `1e-4`, `[1, 2]`, `True`, `None`)
    else the string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def typed_value(key: str, text: str, old):
    """`text` as the type of `old`, the value the key holds now (module docstring)."""
    if text.strip().lower() in NONE_WORDS:
        return None
    if old is None:
        return parse_value(text)
    try:
        return _as_type_of(text, old)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"--set {key}={text}: expected {_type_name(old)} (the type of its "
                          f"current value {old!r}), got {text!r}{_detail(exc)}") from None


def _detail(exc: Exception) -> str:
    return f" ({exc})" if str(exc) else ""


def _as_type_of(text: str, old):
    if isinstance(old, (bool, int, float)):
        return _item(parse_value(text.strip()), type(old))
    if isinstance(old, str):
        value = parse_value(text)
        return value if isinstance(value, str) else text.strip()
    if isinstance(old, (list, tuple)):
        return _sequence(text, old)
    if isinstance(old, dict):
        value = parse_value(text)
        if not isinstance(value, dict):
            raise ValueError("not a dict literal")
        return value
    return parse_value(text)


def _item(value, kind: type):
    """A parsed literal as `kind` (bool, int, float or str), or ValueError."""
    if kind is bool:
        word = str(value).strip().lower()
        if word in TRUE_WORDS or word in FALSE_WORDS:
            return word in TRUE_WORDS
    elif kind is str:
        if isinstance(value, str):
            return value
    elif not isinstance(value, bool) and isinstance(value, (int, float)):
        if kind is float or isinstance(value, int):
            return kind(value)
    raise ValueError("")


def _sequence(text: str, old):
    value = parse_value(text)
    if not isinstance(value, (list, tuple)):
        value = [value]                           # one item: `taus=0.5`
    kinds = {type(item) for item in old}
    if len(kinds) == 1 and next(iter(kinds)) in (bool, int, float, str):
        kind = next(iter(kinds))
        try:
            value = [_item(item, kind) for item in value]
        except ValueError:
            raise ValueError(f"every item must be {kind.__name__}") from None
    return type(old)(value)


def _type_name(old) -> str:
    if isinstance(old, bool):
        return "bool (true/false/1/0)"
    if isinstance(old, (list, tuple)) and old:
        kinds = sorted({type(item).__name__ for item in old})
        return f"{type(old).__name__} of {'/'.join(kinds)}"
    return type(old).__name__


def apply_override(cfg: dict, assignment: str) -> None:
    """Apply one `key.sub=value` in place. New leaf keys are allowed below a known top-level key."""
    key, sep, raw_value = assignment.partition("=")
    key = key.strip()
    new_key = key.startswith("+")
    key = key.removeprefix("+").strip()
    if not sep or not key:
        raise ConfigError(f"--set {assignment!r}: expected KEY=VALUE (e.g. train.epochs=3)")
    parts = key.split(".")
    if parts[0] not in cfg:
        raise ConfigError(f"--set {key}: unknown top-level key {parts[0]!r}; "
                          f"expected one of: {', '.join(sorted(cfg))}")
    node = cfg
    for depth, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None and depth > 0:
            if part not in node:
                _check_new(key, ".".join(parts[:depth + 1]), part, node, new_key)
            child = node[part] = {}
        if not isinstance(child, dict):
            path = ".".join(parts[:depth + 1])
            raise ConfigError(f"--set {key}: {path!r} is {type(child).__name__}, not a section")
        node = child
    leaf, text = parts[-1], raw_value.strip()
    if leaf in node:
        node[leaf] = typed_value(key, text, node[leaf])
    else:
        _check_new(key, key, leaf, node, new_key)
        node[leaf] = parse_value(text)


def _check_new(key: str, path: str, name: str, section: dict, new_key: bool) -> None:
    """A key the config does not hold: an error naming its close matches, unless `+` said so."""
    if new_key or path in OPTIONAL_KEYS:
        return
    close = difflib.get_close_matches(name, [str(k) for k in section], n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(repr(c) for c in close)}? " if close else ""
    known = ", ".join(sorted(map(str, section))) or "(none)"
    raise ConfigError(f"--set {key}: the config has no key {path!r}; {hint}its section holds: "
                      f"{known}; to add a new key, write --set +{key}=...")
