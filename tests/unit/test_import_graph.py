"""The dependency picture of ``sampflow/``: no import cycle, no module importing another's
private names, no reach into another object's private attributes.

The graph is read from the source with `ast` (nothing is imported): every ``import`` and
``from ... import`` counts, at module level, inside functions (lazy imports) and under
``if TYPE_CHECKING:`` alike, since each is a dependency a reader has to follow.
``from package import name`` is an edge to ``package.name`` when that is a module, else to
``package``; importing a module does not count as importing its parent packages.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "sampflow"



def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@functools.lru_cache(maxsize=1)
def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _base(importer: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = importer.split(".")
    if not is_package:
        package.pop()
    if node.level > 1:
        package = package[: len(package) - (node.level - 1)]
    return ".".join(package + ([node.module] if node.module else []))


def imports(name: str, path: Path, known: dict[str, Path]
            ) -> Iterator[tuple[str, str | None, int]]:
    """``(imported module, imported name or None, line)`` for every import in `path`."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = _base(name, path.name == "__init__.py", node)
            for alias in node.names:
                target = f"{base}.{alias.name}"
                if target in known:
                    yield target, None, node.lineno
                else:
                    yield base, alias.name, node.lineno


@functools.lru_cache(maxsize=1)
def graph() -> dict[str, set[str]]:
    known = modules()
    edges: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        for target, _, _ in imports(name, path, known):
            if target in known and target != name:
                edges[name].add(target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(frozenset(component))
    return found


def test_the_checker_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [
        frozenset({"a", "b", "c"})]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_lazy_and_type_checking_imports() -> None:
    edges = graph()
    assert "sampflow.samp.hub.web" in edges["sampflow.samp.hub.sync"]  # module level
    assert "sampflow.samp.hub.server" in edges["sampflow.samp.hub.web"]  # TYPE_CHECKING
    assert "sampflow.samp.hub.web" in edges["sampflow.cli"]  # inside a function


def test_no_import_cycle() -> None:
    found = [sorted(c) for c in cycles(graph())]
    assert found == []


def test_no_module_imports_another_modules_private_names() -> None:
    """No ``from x import _y`` and no import of a private module ``x._y`` outside the
    package that owns it."""
    known = modules()
    bad = []
    for name, path in known.items():
        for target, imported, line in imports(name, path, known):
            if not target.startswith("sampflow"):
                continue
            where = f"{path.relative_to(ROOT)}:{line}"
            if imported is not None and imported.startswith("_") and not imported.startswith("__"):
                bad.append(f"{where}: from {target} import {imported}")
                continue
            private = [i for i, part in enumerate(target.split(".")) if part.startswith("_")
                       and not part.startswith("__")]
            if private:
                owner = ".".join(target.split(".")[: private[0]])
                if name != owner and not name.startswith(owner + "."):
                    bad.append(f"{where}: {target} is private to {owner}")
    assert bad == []


def _reach_through(path: Path) -> Iterator[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))):
            owner = ast.unparse(node.value)
            yield f"{path.relative_to(ROOT)}:{node.lineno}: .{node.attr} of {owner}"


def test_no_module_reaches_into_private_attributes() -> None:
    """Only ``self._x`` and ``cls._x``: another object's private attribute marks a missing
    public method."""
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        bad.extend(_reach_through(path))
    assert bad == []
