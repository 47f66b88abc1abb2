"""The house rules of docs/architecture.md, read from the code's own import statements.

Each wing may import only the wings below it; no module imports itself back through others;
imports sit at the top of a file, except the CLI's per-command ones and optional dependencies.
"""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("harness", "baselines", "sag_model")
CORE = "core"      # the flat modules of harness/: errors, paths, config, registry, segmenter, ...
ENTRY = "entry"    # the command line and doctor: may import anything
ENTRY_MODULES = {"harness.__main__", "harness.cli", "harness.cli_commands", "harness.doctor",
                 "harness.doctor_checkpoints"}
# wing -> the wings (or single modules) it may import; its own wing is always allowed.
ALLOWED = {
    CORE: {"harness.data"},
    "harness.data": {CORE},
    "harness.eval": {CORE, "harness.data"},
    "harness.store": {CORE, "harness.data", "harness.eval"},
    "harness.run": {CORE, "harness.data", "harness.eval", "harness.store"},
    "harness.report": {CORE, "harness.data", "harness.eval", "harness.store"},
    "harness.backbones": {CORE, "harness.data", "harness.run.fit_loop"},
    "methods": {CORE, "harness.data", "harness.backbones", "harness.run.fit_loop"},
}
# Local imports kept on purpose: the CLI loads a command's modules only when it runs.
LOCAL_IMPORTS_ALLOWED = {"harness.cli", "harness.cli_commands"}


def module_name(path: Path) -> str:
    name = ".".join(path.relative_to(REPO).with_suffix("").parts)
    return name.removesuffix(".__init__")


def modules() -> dict[str, ast.Module]:
    out = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            out[module_name(path)] = ast.parse(path.read_text())
    return out


def imported(tree: ast.Module, known) -> list[tuple[str, bool]]:
    """(module imported, at top level?) for every import of one of ours."""
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                found.append((name, id(node) in top))
    return found


def wing_of(module: str) -> str:
    if module in ENTRY_MODULES:
        return ENTRY
    if module.split(".")[0] in ("baselines", "sag_model"):
        return "methods"
    parts = module.split(".")
    if len(parts) >= 3 or (REPO / "harness" / parts[-1]).is_dir():
        return "harness." + parts[1]
    return CORE


def allowed(importer: str, target: str) -> bool:
    source, wing = wing_of(importer), wing_of(target)
    if source == ENTRY or source == wing or (target == "harness" and source == CORE):
        return True
    rules = ALLOWED[source]
    return wing in rules or any(target == rule or target.startswith(rule + ".") for rule in rules)


def test_every_wing_imports_only_the_wings_below_it():
    tree = modules()
    broken = [f"{importer} imports {target}" for importer, t in tree.items()
              for target, _ in imported(t, tree) if target != importer and not allowed(importer, target)]
    assert broken == []


def test_the_rules_catch_an_upward_import():
    assert not allowed("harness.eval.metrics", "harness.store")
    assert not allowed("harness.report.tables", "harness.run.runner")
    assert not allowed("baselines.maskclip", "harness.run.runner")
    assert not allowed("harness.segmenter", "harness.run.fit_loop")
    assert allowed("baselines.maskclip", "harness.run.fit_loop")
    assert allowed("harness.cli_commands", "harness.run.runner")


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_no_import_circles():
    tree = modules()
    graph = {name: {target for target, _ in imported(t, tree) if target != name} for name, t in tree.items()}
    assert strongly_connected(graph) == []


def test_circle_finder_finds_a_circle():
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("package", PACKAGES)
def test_our_imports_sit_at_the_top_of_files(package):
    tree = modules()
    local = [f"{name} imports {target} inside a function" for name, t in tree.items()
             if name.split(".")[0] == package and name not in LOCAL_IMPORTS_ALLOWED
             for target, top in imported(t, tree) if not top]
    assert local == []
