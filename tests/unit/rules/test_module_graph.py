"""The shape of ``sampflow.rules``: its import graph is a DAG and no module reaches into
another's underscore names.

Edges are read from the source with :mod:`ast`: module-level imports, imports inside functions
(they run later, but a cycle through them is still a cycle of dependencies), imports under
``if TYPE_CHECKING`` and, since Python runs a package's ``__init__`` before any of its
submodules, an edge to each package on the way to an imported submodule (``sampflow.rules``
itself excepted: every module is below it).
"""

from __future__ import annotations

import ast
from pathlib import Path

import sampflow.rules

ROOT = Path(sampflow.rules.__file__).parent
PACKAGE = "sampflow.rules"


def _modules() -> dict[str, Path]:
    mods = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        mods[".".join([PACKAGE, *parts])] = path
    return mods


def _target(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _graph() -> tuple[dict[str, set[str]], list[str]]:
    mods = _modules()
    edges: dict[str, set[str]] = {m: set() for m in mods}
    private: list[str] = []

    def add(src: str, dst: str) -> None:
        parts = dst.split(".")
        for i in range(len(PACKAGE.split(".")) + 1, len(parts) + 1):
            step = ".".join(parts[:i])
            if step in mods and step != src and not src.startswith(step + "."):
                edges[src].add(step)

    for name, path in mods.items():
        tree = ast.parse(path.read_text(), str(path))
        is_package = path.name == "__init__.py"
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    add(name, alias.name)
            elif isinstance(node, ast.ImportFrom):
                target = _target(name, is_package, node)
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    add(name, sub if sub in mods else target)
                    if (alias.name.startswith("_") and not alias.name.startswith("__")
                            and target.startswith(PACKAGE)):
                        private.append(f"{name}: from {target} import {alias.name}")
            elif (isinstance(node, ast.Attribute) and node.attr.startswith("_")
                  and not node.attr.startswith("__")
                  and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))):
                private.append(f"{name}:{node.lineno}: {ast.unparse(node)}")
    return edges, private


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `edges`, or None."""
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_rules_package_has_no_import_cycle() -> None:
    edges, _ = _graph()
    assert f"{PACKAGE}.filefacts" in edges[f"{PACKAGE}.expr"]  # the graph is really read
    assert _cycle(edges) is None, " -> ".join(_cycle(edges) or [])


def test_the_cycle_finder_finds_cycles() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_module_uses_another_objects_underscore_names() -> None:
    _, private = _graph()
    assert private == []
