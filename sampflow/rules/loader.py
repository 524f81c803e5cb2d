"""Load rule files: YAML -> :mod:`~sampflow.rules.model`, reporting every error at once.

Every scalar is read as a string with its position kept (pyyaml's ``BaseLoader`` resolution), so
``ra: 12:30:45`` stays ``"12:30:45"``, the key ``on`` stays ``"on"`` and ``yes`` stays ``"yes"``.
Strings become numbers, booleans or durations only in fields that want one, following the table
in :mod:`sampflow.rules.spec`. Duplicate keys are errors.

Hostile input
-------------
A rule file is treated as untrusted input (composed by :mod:`~sampflow.rules.rulefile_yaml`),
with documented limits, each refused with one ``file:line:col: reason`` line rather than a hang
or a traceback:

* at most :data:`MAX_FILE_BYTES` (1 MiB) per file, checked before it is read;
* YAML nesting at most :data:`MAX_DEPTH` (100) levels;
* aliases (``*name``) may add at most :data:`MAX_ALIAS_NODES` (10,000) nodes in all once
  expanded (a "billion laughs" stops at the alias that crosses the bound), and an alias may
  not refer to the collection that contains it.

Errors are collected for the whole file (a bad rule does not stop the others being checked) and
raised together as :class:`~sampflow.rules.errors.RuleFileError`, one line each::

    rules.yaml:9:11: rules[1].mode: expected one of single, restart, queued, parallel

Variables
---------
``vars:`` declares variables with their defaults; ``overrides`` (``--set NAME=VALUE``) replace
them, and must name declared variables. ``{{ vars.NAME }}`` may be used in any string: in fields
read at load time (paths, durations, modes, MTypes, ...) it is substituted before the field is
checked; in templates it is evaluated with the rest of the template.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import yaml

from . import model as m
from .errors import ExpressionError, Problem, RuleFileError
from .expr import And, ExpressionSyntaxError, Not, Or, compile_condition, compile_template
from .rulefile_yaml import (
    MAX_ALIAS_NODES,
    MAX_DEPTH,
    MAX_FILE_BYTES,
    RuleFileLoader,
    compose_document,
    too_big,
)
from .spec import ACTION_OPTIONS, ACTIONS, RULE_FIELDS, TOP_FIELDS, TRIGGERS, F, ItemType, K

T = TypeVar("T")

__all__ = ["MAX_ALIAS_NODES", "MAX_DEPTH", "MAX_FILE_BYTES", "RuleFileLoader", "load", "load_file",
           "load_files", "load_paths", "parse_duration"]

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h|d)?", re.IGNORECASE)
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
_SKIP = object()


def parse_duration(text: str) -> float:
    """Seconds in ``text``: ``1s``, ``500ms``, ``2m``, ``1h``, ``1m30s`` or a number of seconds.

    Examples
    --------
    >>> parse_duration("500ms"), parse_duration("1m30s"), parse_duration("2")
    (0.5, 90.0, 2.0)
    """
    s = text.strip()
    pos, total, parts = 0, 0.0, 0
    for mt in _DURATION_PART.finditer(s):
        if s[pos:mt.start()].strip():
            break
        total += float(mt.group(1)) * _UNITS[(mt.group(2) or "").lower() or None]
        pos, parts = mt.end(), parts + 1
    unitless_end = parts > 1 and not re.search(r"[a-z]\s*$", s, re.IGNORECASE)
    if not parts or s[pos:].strip() or unitless_end:
        raise ValueError("expected a duration such as 1s, 500ms, 2m or 1m30s")
    return total


class _Checker:
    """Walks the node tree, converting fields and collecting problems."""

    def __init__(self, filename: str, variables: dict[str, Any]) -> None:
        self.file = filename
        self.vars = variables
        self.problems: list[Problem] = []

    # -- reporting ---------------------------------------------------------------------------
    def problem(self, node: yaml.Node, path: str, reason: str) -> None:
        mark = node.start_mark
        self.problems.append(Problem(self.file, mark.line + 1, mark.column + 1, path, reason))

    def expression_problem(self, node: yaml.Node, path: str, exc: ExpressionError) -> None:
        """Report ``exc``; a syntax error at the exact column when the scalar's source maps
        one to one onto its value (one line, no escapes)."""
        offset = exc.offset if isinstance(exc, ExpressionSyntaxError) else None
        mark = node.start_mark
        if offset is not None and isinstance(node, yaml.ScalarNode) and mark.buffer:
            quote = 1 if node.style in ("'", '"') else 0
            start = mark.pointer + quote
            raw = mark.buffer[start:start + len(node.value)]
            if raw == node.value and "\n" not in raw and node.style in (None, "'", '"'):
                self.problems.append(Problem(self.file, mark.line + 1,
                                             mark.column + 1 + quote + offset, path, str(exc)))
                return
        text = str(exc)
        if offset is not None:
            text += f" (at character {offset + 1} of the expression)"
        self.problem(node, path, text)

    def where(self, node: yaml.Node) -> str:
        return f"{self.file}:{node.start_mark.line + 1}:{node.start_mark.column + 1}"

    # -- shapes ------------------------------------------------------------------------------
    def mapping(self, node: yaml.Node, path: str) -> dict[str, tuple[yaml.Node, yaml.Node]] | None:
        if isinstance(node, yaml.ScalarNode) and node.value == "" and node.style is None:
            return {}
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, path, "expected a mapping (key: value)")
            return None
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for knode, vnode in node.value:
            if not isinstance(knode, yaml.ScalarNode):
                self.problem(knode, path, "keys must be plain strings")
                continue
            if knode.value in out:
                first = out[knode.value][0].start_mark.line + 1
                self.problem(knode, _join(path, knode.value),
                             f"duplicate key {knode.value!r} (first on line {first})")
                continue
            out[knode.value] = (knode, vnode)
        return out

    def seq(self, node: yaml.Node) -> list[yaml.Node]:
        return list(node.value) if isinstance(node, yaml.SequenceNode) else [node]

    def scalar(self, node: yaml.Node, path: str, what: str = "a string") -> str | None:
        if not isinstance(node, yaml.ScalarNode):
            self.problem(node, path, f"expected {what}")
            return None
        return str(node.value)

    def static(self, node: yaml.Node, path: str, what: str = "a string") -> str | None:
        """A string read at load time: {{ vars.X }} substituted."""
        text = self.scalar(node, path, what)
        if text is None or "{{" not in text:
            return text
        try:
            tmpl = compile_template(text, self.where(node), known_vars=self.vars,
                                    allowed=frozenset({"vars"}))
            return str(tmpl.render({"vars": self.vars}))
        except ExpressionError as exc:
            msg = str(exc).removeprefix(self.where(node) + ": ")
            if "unknown name" in msg:
                msg = "this field is read when the file loads: only {{ vars.NAME }} can be used"
            self.problem(node, path, msg)
            return None

    def template(self, node: yaml.Node, path: str) -> Any:
        text = self.scalar(node, path)
        if text is None:
            return _SKIP
        try:
            return compile_template(text, self.where(node), known_vars=self.vars)
        except ExpressionError as exc:
            self.expression_problem(node, path, exc)
            return _SKIP

    def value(self, node: yaml.Node, path: str) -> Any:
        if isinstance(node, yaml.MappingNode):
            items = self.mapping(node, path) or {}
            return {k: self.value(v, _join(path, k)) for k, (_, v) in items.items()}
        if isinstance(node, yaml.SequenceNode):
            return [self.value(v, f"{path}[{i}]") for i, v in enumerate(node.value)]
        return self.template(node, path)

    def condition(self, node: yaml.Node, path: str) -> Any:
        if isinstance(node, yaml.SequenceNode):
            return And(tuple(self.condition(n, f"{path}[{i}]") for i, n in enumerate(node.value)))
        if isinstance(node, yaml.MappingNode):
            items = self.mapping(node, path) or {}
            if len(items) != 1 or next(iter(items)) not in ("and", "or", "not"):
                self.problem(node, path, "expected an expression, a list, or one of and/or/not")
                return _SKIP
            op, (_, sub) = next(iter(items.items()))
            if op == "not":
                return Not(self.condition(sub, _join(path, op)))
            parts = tuple(self.condition(n, f"{path}.{op}[{i}]")
                          for i, n in enumerate(self.seq(sub)))
            return And(parts) if op == "and" else Or(parts)
        text = self.scalar(node, path, "a condition")
        if text is None:
            return _SKIP
        try:
            return compile_condition(text, self.where(node), known_vars=self.vars)
        except ExpressionError as exc:
            self.expression_problem(node, path, exc)
            return _SKIP

    # -- fields ------------------------------------------------------------------------------
    def field(self, spec: F, node: yaml.Node, path: str) -> Any:
        k = spec.kind
        try:
            if k in (K.STR, K.PATH, K.MTYPE, K.ENUM, K.INT, K.BOOL, K.DURATION):
                text = self.static(node, path, f"a {k.value}")
                if text is None:
                    return _SKIP
                return _SCALARS[k](text, spec)
            if k in (K.STRLIST, K.MTYPES, K.ENUMSET):
                texts = [self.static(n, f"{path}[{i}]") for i, n in enumerate(self.seq(node))]
                if any(t is None for t in texts):
                    return _SKIP
                if k is K.MTYPES:
                    return tuple(m.check_mtype(t, pattern=True) for t in texts)  # type: ignore
                if k is K.ENUMSET:
                    return frozenset(_SCALARS[K.ENUM](t, spec) for t in texts)  # type: ignore
                return tuple(texts)
            if k is K.TEMPLATE:
                return self.template(node, path)
            if k is K.TEMPLATES:
                out = [self.template(n, f"{path}[{i}]") for i, n in enumerate(self.seq(node))]
                return _SKIP if _SKIP in out else tuple(out)
            if k is K.VALUE:
                return self.value(node, path)
            if k is K.CONDITION:
                return self.condition(node, path)
            if k in (K.GLOBMAP, K.STRMAP):
                items = self.mapping(node, path)
                if items is None:
                    return _SKIP
                vals = {name: self.static(v, _join(path, name)) for name, (_, v) in items.items()}
                if any(v is None for v in vals.values()):
                    return _SKIP
                return tuple(vals.items()) if k is K.GLOBMAP else vals
            if k is K.RETRY:
                return self.retry(node, path)
        except ValueError as exc:
            self.problem(node, path, str(exc))
            return _SKIP
        raise AssertionError(f"no converter for {k}")  # pragma: no cover

    def retry(self, node: yaml.Node, path: str) -> Any:
        if isinstance(node, yaml.MappingNode):
            items = self.mapping(node, path) or {}
            times, delay = 1, 1.0
            for name, (kn, vn) in items.items():
                if name == "times":
                    times = self.field(F(K.INT, ""), vn, _join(path, name))
                elif name == "delay":
                    delay = self.field(F(K.DURATION, ""), vn, _join(path, name))
                else:
                    self.problem(kn, _join(path, name), "expected times or delay")
            return _SKIP if _SKIP in (times, delay) else (times, delay)
        times = self.field(F(K.INT, ""), node, path)
        return _SKIP if times is _SKIP else (times, 1.0)

    def fields(self, table: Mapping[str, F], items: Mapping[str, tuple[yaml.Node, yaml.Node]],
               path: str, owner: yaml.Node, what: str) -> dict[str, Any] | None:
        """Convert ``items`` by ``table``; None when anything was wrong."""
        out: dict[str, Any] = {}
        ok = True
        for name, (knode, vnode) in items.items():
            spec = table.get(name)
            if spec is None:
                self.problem(knode, _join(path, name),
                             f"unknown key {name!r} in {what}; expected one of "
                             + ", ".join(table))
                ok = False
                continue
            attr = spec.attr or name
            if attr in out:
                self.problem(knode, _join(path, name), f"{attr} is given twice")
                ok = False
                continue
            value = self.field(spec, vnode, _join(path, name))
            if value is _SKIP:
                ok = False
            else:
                out[attr] = value
        for name, spec in table.items():
            if spec.required and name not in items:
                self.problem(owner, path, f"missing {name}: in {what}")
                ok = False
        return out if ok else None

    # -- typed items (triggers, actions) -----------------------------------------------------
    def item(self, node: yaml.Node, path: str, types: Mapping[str, ItemType], what: str,
             extra: Mapping[str, F] = {}) -> tuple[ItemType, dict[str, Any]] | None:
        items = self.mapping(node, path)
        if items is None:
            return None
        present = [k for k in items if k in types]
        if len(present) != 1:
            reason = (f"expected one {what} key: " + ", ".join(types)) if not present else \
                f"one {what} per item, found {', '.join(present)}"
            self.problem(node, path, reason)
            return None
        t = types[present[0]]
        knode, vnode = items[t.key]
        merged = {k: v for k, v in items.items() if k != t.key}
        if isinstance(vnode, yaml.MappingNode):
            inner = self.mapping(vnode, _join(path, t.key))
            if inner is None:
                return None
            for k, v in inner.items():
                if k in merged:
                    self.problem(v[0], _join(_join(path, t.key), k), f"{k} is given twice")
                    return None
                merged[k] = v
        elif not (isinstance(vnode, yaml.ScalarNode) and vnode.value == "" and not vnode.style):
            if t.shorthand is None:  # pragma: no cover - every type has one
                self.problem(vnode, _join(path, t.key), "expected a mapping")
                return None
            merged[t.shorthand] = (knode, vnode)
        table = {**t.fields, **extra}
        values = self.fields(table, merged, path, node, t.key)
        return None if values is None else (t, values)

    def build(self, fn: Callable[..., T], kwargs: dict[str, Any], node: yaml.Node,
              path: str) -> T | None:
        try:
            return fn(**kwargs)
        except (ValueError, TypeError) as exc:
            self.problem(node, path, str(exc))
            return None

    def trigger(self, node: yaml.Node, path: str) -> Any:
        got = self.item(node, path, TRIGGERS, "trigger")
        return None if got is None else self.build(got[0].build, got[1], node, path)

    def action(self, node: yaml.Node, path: str) -> Any:
        got = self.item(node, path, ACTIONS, "action", ACTION_OPTIONS)
        if got is None:
            return None
        t, values = got
        retry = values.pop("retry", (0, 1.0))
        opts = self.build(m.ActionOptions, {
            "continue_on_error": values.pop("continue_on_error", False),
            "retry": retry[0], "retry_delay": retry[1], "where": self.where(node)}, node, path)
        return None if opts is None else self.build(t.build, {**values, "options": opts},
                                                    node, path)

    def rule(self, node: yaml.Node, path: str) -> m.Rule | None:
        items = self.mapping(node, path)
        if items is None:
            return None
        lists: dict[str, Any] = {}
        for name, conv in (("on", self.trigger), ("do", self.action)):
            if name in items:
                _, sub = items[name]
                lists[name] = [conv(n, f"{_join(path, name)}[{i}]" if len(self.seq(sub)) > 1
                                    or isinstance(sub, yaml.SequenceNode) else _join(path, name))
                               for i, n in enumerate(self.seq(sub))]
        plain = {k: v for k, v in items.items() if k not in ("on", "do")}
        values = self.fields({k: v for k, v in RULE_FIELDS.items() if k not in ("on", "do")},
                             plain, path, node, "a rule")
        for name in ("on", "do"):
            if name not in items:
                self.problem(node, path, f"missing {name}: in a rule")
                values = None
            elif None in lists[name]:
                values = None
            elif not lists[name]:
                self.problem(items[name][1], _join(path, name), "must not be empty")
                values = None
        if values is None:
            return None
        values.pop("description", None)
        mode = values.pop("mode", None)
        values["mode"] = m.Mode(mode) if mode else (
            m.Mode.QUEUED if values.get("key") is not None else m.Mode.SINGLE)
        values.update(triggers=tuple(lists["on"]), actions=tuple(lists["do"]),
                      where=self.where(node))
        return self.build(m.Rule, values, node, path)


def _join(path: str, key: str) -> str:
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
        return f"{path}.{key}" if path else key
    return f"{path}[{key!r}]"


def _enum(text: str, spec: F) -> str:
    text = dict(spec.aliases).get(text.strip().lower(), text)
    if text not in spec.choices:
        raise ValueError("expected one of " + ", ".join(spec.choices))
    return text


def _int(text: str, spec: F) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError(f"expected an integer, not {text!r}") from None


def _bool(text: str, spec: F) -> bool:
    low = text.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValueError(f"expected true or false, not {text!r}")


_SCALARS: dict[K, Callable[[str, F], Any]] = {
    K.STR: lambda t, s: t,
    K.PATH: lambda t, s: os.path.abspath(os.path.expanduser(t)),
    K.MTYPE: lambda t, s: m.check_mtype(t),
    K.ENUM: _enum,
    K.INT: _int,
    K.BOOL: _bool,
    K.DURATION: lambda t, s: parse_duration(t),
}


def _plain(node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return {k.value: _plain(v) for k, v in node.value}
    if isinstance(node, yaml.SequenceNode):
        return [_plain(v) for v in node.value]
    return node.value


def _load(text: str, filename: str, overrides: Mapping[str, str], problems: list[Problem]
          ) -> tuple[list[m.Rule], dict[str, Any], dict[str, str], set[str]]:
    doc = compose_document(text, filename)
    if isinstance(doc, Problem):
        problems.append(doc)
        return [], {}, {}, set()
    c = _Checker(filename, {})
    top = c.mapping(doc, "")
    declared: set[str] = set()
    rules: list[m.Rule] = []
    client: dict[str, str] = {}
    if top is not None:
        if "vars" in top:
            vmap = c.mapping(top["vars"][1], "vars") or {}
            declared = set(vmap)
            c.vars = {k: _plain(v) for k, (_, v) in vmap.items()}
            c.vars.update({k: v for k, v in overrides.items() if k in declared})
        if "client" in top:
            got = c.field(TOP_FIELDS["client"], top["client"][1], "client")
            client = {} if got is _SKIP else got
        for name, (knode, _) in top.items():
            if name not in TOP_FIELDS:
                c.problem(knode, name, "unknown key; expected one of " + ", ".join(TOP_FIELDS))
        if "rules" not in top:
            c.problem(doc, "", "missing rules:")
        else:
            rnode = top["rules"][1]
            if not isinstance(rnode, yaml.SequenceNode):
                c.problem(rnode, "rules", "expected a list of rules (- name: ...)")
            else:
                for i, n in enumerate(rnode.value):
                    rule = c.rule(n, f"rules[{i}]")
                    if rule is not None:
                        rules.append(rule)
    problems.extend(c.problems)
    return rules, c.vars, client, declared


def load_files(sources: Iterable[tuple[str, str]], overrides: Mapping[str, str] | None = None,
               *, allow_exec: bool | None = None) -> m.RuleSet:
    """Load and validate several rule files' texts into one :class:`~.model.RuleSet`.

    Parameters
    ----------
    sources : iterable of (filename, text)
        The files; ``filename`` is used in messages.
    overrides : mapping of str to str, optional
        ``--set NAME=VALUE`` values; each must be declared under ``vars:`` in some file.
    allow_exec : bool, optional
        If False, ``exec`` actions are errors (``--allow-exec`` was not given); None skips the
        check (``sampflow validate``).

    Returns
    -------
    RuleSet

    Raises
    ------
    RuleFileError
        With every problem found, each ``file:line:column: path: reason``.
    """
    overrides = dict(overrides or {})
    problems: list[Problem] = []
    rules: list[m.Rule] = []
    variables: dict[str, Any] = {}
    client: dict[str, str] = {}
    names: set[str] = set()
    declared: set[str] = set()
    files: list[str] = []
    for filename, text in sources:
        files.append(filename)
        got, fvars, fclient, fdeclared = _load(text, filename, overrides, problems)
        declared |= fdeclared
        variables.update(fvars)
        client = client or fclient
        for rule in got:
            if rule.name in names:
                line, col = _line_col(rule.where)
                problems.append(Problem(filename, line, col, "", f"rule name {rule.name!r} is "
                                        "used twice; names must be unique"))
            names.add(rule.name)
            if allow_exec is False:
                for action in rule.actions:
                    if isinstance(action, m.Exec):
                        line, col = _line_col(action.options.where)
                        problems.append(Problem(filename, line, col, rule.name, "exec is refused "
                                                "unless sampflow run is given --allow-exec"))
            rules.append(rule)
    for name in sorted(set(overrides) - declared):
        problems.append(Problem("--set", 0, 0, name, "no such variable; declared: "
                                + (", ".join(sorted(declared)) or "none")))
    if problems:
        raise RuleFileError(problems)
    return m.RuleSet(tuple(rules), variables, client, tuple(files))


def _line_col(where: str) -> tuple[int, int]:
    parts = where.rsplit(":", 2)
    return int(parts[1]), int(parts[2])


def load(text: str, filename: str = "<rules>", overrides: Mapping[str, str] | None = None,
         *, allow_exec: bool | None = None) -> m.RuleSet:
    """Load one rule file's text; see :func:`load_files`.

    Examples
    --------
    >>> rs = load('''
    ... rules:
    ...   - name: echo
    ...     on: {mtype: test.echo}
    ...     do: [{log: "got {{ params.text }}"}]
    ... ''')
    >>> rs.rules[0].triggers[0].mtypes
    ('test.echo',)
    """
    return load_files([(filename, text)], overrides, allow_exec=allow_exec)


def load_file(path: str | os.PathLike[str], overrides: Mapping[str, str] | None = None,
              *, allow_exec: bool | None = None) -> m.RuleSet:
    """Read and load one rule file; see :func:`load_files`."""
    return load_paths([path], overrides, allow_exec=allow_exec)


def load_paths(paths: Iterable[str | os.PathLike[str]],
               overrides: Mapping[str, str] | None = None, *,
               allow_exec: bool | None = None) -> m.RuleSet:
    """Read and load several rule files (``sampflow run FILE...``); see :func:`load_files`."""
    sources = []
    problems = []
    for p in paths:
        try:
            with open(p, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                data = b"" if size > MAX_FILE_BYTES else f.read(MAX_FILE_BYTES + 1)
            if size > MAX_FILE_BYTES or len(data) > MAX_FILE_BYTES:
                problems.append(too_big(max(size, len(data)), str(p)))
                continue
            sources.append((str(p), data.decode("utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(Problem(str(p), 0, 0, "", f"cannot read: {exc}"))
    if problems:
        raise RuleFileError(problems)
    return load_files(sources, overrides, allow_exec=allow_exec)
