"""Reading an untrusted rule file as YAML nodes, within documented limits.

A rule file may come from anywhere, so it is composed (never constructed into Python objects)
by a bounded pyyaml composer with ``BaseLoader`` resolution (every scalar a plain string, its
position kept): at most :data:`MAX_FILE_BYTES` per file, :data:`MAX_DEPTH` levels of nesting
and :data:`MAX_ALIAS_NODES` nodes added by aliases. Crossing a limit, or a YAML syntax error,
becomes one located `~sampflow.rules.errors.Problem`. :mod:`~sampflow.rules.loader` checks the
node tree against the rule file format.
"""

from __future__ import annotations

from typing import Any

import yaml

from .errors import Problem

__all__ = ["MAX_ALIAS_NODES", "MAX_DEPTH", "MAX_FILE_BYTES", "RuleFileLimitError",
           "RuleFileLoader", "compose_document", "too_big"]

#: Largest rule file accepted, in bytes (characters for a text given to :func:`load`).
MAX_FILE_BYTES = 1024 * 1024
#: Deepest YAML nesting accepted (collections inside collections).
MAX_DEPTH = 100
#: Most nodes that aliases may add to the document once expanded.
MAX_ALIAS_NODES = 10_000


class RuleFileLimitError(yaml.MarkedYAMLError):
    """A rule file crossed one of the loader's limits; ``problem_mark`` says where."""


class RuleFileLoader(yaml.BaseLoader):
    """pyyaml loader with ``BaseLoader`` resolution: every scalar is a plain string.

    The composer is bounded: nesting deeper than :data:`MAX_DEPTH`, aliases adding more than
    :data:`MAX_ALIAS_NODES` nodes and self-referring aliases raise :class:`RuleFileLimitError`.
    Aliases share the anchored node (composition stays linear); the bound is on the size the
    checker would walk.
    """

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._depth = 0
        self._expanded = 0  # nodes composed, counting each alias as its target's size
        self._aliased = 0  # nodes added by aliases
        self._sizes: dict[int, int] = {}  # id(anchored node) -> its expanded size

    def _limit(self, mark: Any, reason: str) -> RuleFileLimitError:
        return RuleFileLimitError(None, None, reason, mark)

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()  # type: ignore[no-untyped-call]  # unannotated in the stubs
        if isinstance(event, yaml.AliasEvent):
            target = self.anchors.get(event.anchor)
            if target is not None:
                size = self._sizes.get(id(target))
                if size is None:
                    raise self._limit(event.start_mark, f"alias *{event.anchor} refers to the "
                                      "collection that contains it")
                self._expanded += size
                self._aliased += size
                if self._aliased > MAX_ALIAS_NODES:
                    raise self._limit(event.start_mark, f"alias *{event.anchor}: aliases "
                                      f"expand to more than {MAX_ALIAS_NODES:,} nodes")
            return super().compose_node(parent, index)
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise self._limit(event.start_mark, f"nested more than {MAX_DEPTH} levels deep")
        before = self._expanded
        self._expanded += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if getattr(event, "anchor", None):
            self._sizes[id(node)] = self._expanded - before
        return node


def too_big(size: int, filename: str) -> Problem:
    """The problem of a rule file of `size` bytes, over :data:`MAX_FILE_BYTES`."""
    return Problem(filename, 1, 1, "", f"the file is {size / 2**20:.1f} MiB; the limit for a rule "
                   f"file is {MAX_FILE_BYTES / 2**20:g} MiB")


def compose_document(text: str, filename: str) -> yaml.Node | Problem:
    """The YAML node tree of one rule file's text, within the limits above.

    Parameters
    ----------
    text : str
        The file's text.
    filename : str
        Named in the problem.

    Returns
    -------
    yaml.Node or Problem
        The root node, or the one problem (with line and column) that stopped reading: too
        big, too deep, too many alias nodes, a YAML syntax error, an empty file.
    """
    if len(text) > MAX_FILE_BYTES:
        return too_big(len(text), filename)
    try:
        node = yaml.compose(text, Loader=RuleFileLoader)
    except RuleFileLimitError as exc:
        mark = exc.problem_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        return Problem(filename, line, col, "", str(exc.problem))
    except RecursionError:  # pragma: no cover - MAX_DEPTH is far below Python's limit
        return Problem(filename, 1, 1, "", f"nested more than {MAX_DEPTH} levels deep")
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        reason = " ".join(x for x in (exc.context, exc.problem) if x)
        return Problem(filename, line, col, "", f"YAML syntax error: {reason}")
    except yaml.YAMLError as exc:
        return Problem(filename, 1, 1, "", f"YAML error: {exc}")
    if node is None:
        return Problem(filename, 1, 1, "", "the file is empty")
    return node
