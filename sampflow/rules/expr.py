"""Conditions and templates, evaluated by jinja2's immutable sandbox.

Only strings written in the rule file are ever compiled: message contents, file names and headers
are *data* in the namespace, never templates. Everything is compiled when the file loads, so
syntax errors and unknown names are reported with ``file:line:column``.

Templates
---------
A string with ``{{ ... }}`` is a template. A string that is *exactly one* ``{{ expression }}``
keeps the expression's native type, so ``row-list: "{{ params['row-list'] }}"`` yields a list;
anything else renders to a string. A string without braces is returned as it is.

Conditions
----------
``if:`` takes an expression (braces optional), a list of conditions (all must hold), or the
structured forms ``{and: [...]}``, ``{or: [...]}`` and ``{not: ...}``.

Namespace
---------
========================  ============================================================
``event``                 ``"samp"``, ``"hub"``, ``"file"`` or ``"timer"``
``mtype``, ``params``     the incoming SAMP message (``params['row-list']`` for dashes)
``sender.name/.id``       its sender; ``sender.profile`` is ``"web"`` for a browser page
                          (Web Profile), ``"standard"`` otherwise (None: hub cannot tell)
``msg_id``, ``call``      the call's id, and whether a reply is expected
``client.name/.id``       the client of a hub event; ``hub_event`` its kind
``file.path/.name/...``   ``path name stem suffix dir size url event header kind``
``file.kind``             what the content is: ``"image"`` (FITS image), ``"table"`` (FITS
                          table or VOTable) or ``None``; the same test ``send_file`` makes
``header(KEY, default)``  a FITS header value of the event's file (first headers only)

``file.kind``, ``file.size``, ``file.url`` and ``header()`` read facts the engine computed off
the event loop before the condition (:mod:`~sampflow.rules.filefacts`): an expression never
reads a file.
``timer.count/.every``    for ``every:`` triggers
``vars.NAME``             the file's variables (``vars:`` with ``--set`` overrides)
``response``, ``result``  the last ``call`` action's response map and its ``samp.result``
``responses.NAME``        the response of the ``call`` that had ``as: NAME``
``registered(NAME)``      a client that the name pattern picks is registered (its
                          public id, or its ``samp.name`` as a case-insensitive
                          glob: `sampflow.samp.names`)
``subscribed(NAME, MT)``  such a client is subscribed to the MType
``match(VALUE, GLOB)``    case-insensitive glob match
``newest(FOLDER, GLOB)``  path of the newest regular file in the folder whose name matches
                          (case-insensitive; default ``*``), or None
``clients(GLOB)``         ``samp.name`` of every registered client that matches (default ``*``)
``now()``                 the current time (``datetime``)
========================  ============================================================
"""

from __future__ import annotations

import datetime as _dt
import difflib
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Union

from jinja2 import StrictUndefined, TemplateError, Undefined, meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ..samp.names import glob_matches
from .errors import ExpressionError
from .events import Event, FileEvent, HubEvent, SampMessage, TimerEvent
from .filefacts import FileFacts

__all__ = [
    "KNOWN_NAMES",
    "And",
    "Condition",
    "ExprCondition",
    "ExpressionSyntaxError",
    "FileInfo",
    "HubState",
    "Not",
    "Or",
    "Template",
    "ValueTemplate",
    "build_namespace",
    "compile_condition",
    "compile_template",
    "render_value",
    "vars_referenced",
]

KNOWN_NAMES = frozenset(
    {
        "event", "mtype", "params", "sender", "msg_id", "call", "client", "hub_event", "file",
        "header", "timer", "vars", "response", "result", "responses", "registered", "subscribed",
        "match", "now", "rule", "key", "newest", "clients",
    }
)

_SINGLE_EXPR = re.compile(r"^\s*\{\{(?P<expr>.*)\}\}\s*$", re.DOTALL)

# Words of the expression language that jinja2's parser, where it expects a value, reads as
# plain names (``a and and`` parses as ``a and (the variable 'and')``).
_KEYWORDS = frozenset({"and", "or", "not", "in", "is", "if", "else", "elif"})
_VALUE_BEFORE = frozenset({"name", "string", "integer", "float"})


class ExpressionSyntaxError(ExpressionError):
    """A syntax error in an expression; ``offset`` is the 0-based index in the source string
    where it was found, or None when the parser could not tell."""

    def __init__(self, message: str, offset: int | None = None) -> None:
        super().__init__(message)
        self.offset = offset


def _keyword_offset(source: str, word: str) -> int | None:
    """Index in ``source`` of the first ``word`` token standing where a value was expected."""
    try:
        tokens = list(ENV.lexer.tokeniter(source, None))
    except TemplateError:
        return None
    if "".join(value for _, _, value in tokens) != source:
        return None  # the lexer normalised something: offsets would be wrong
    pos, previous = 0, None
    for _, kind, value in tokens:
        if kind == "name" and value == word:
            after_value = previous is not None and (
                previous[0] in _VALUE_BEFORE and not (previous[0] == "name"
                                                      and previous[1] in _KEYWORDS)
                or previous[0] == "operator" and previous[1] in (")", "]", "}"))
            if not after_value:
                return pos
        if kind != "whitespace":
            previous = (kind, value)
        pos += len(value)
    return None


def _glob(value: Any, pattern: str) -> bool:
    # ``match()`` and ``is matching``: the case-insensitive glob that names clients too
    return glob_matches(str(value), str(pattern))


def _make_env() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
    env.filters["basename"] = lambda p: os.path.basename(str(p))
    env.filters["dirname"] = lambda p: os.path.dirname(str(p))
    env.filters["fileurl"] = lambda p: Path(str(p)).expanduser().resolve().as_uri()
    env.tests["matching"] = _glob
    env.globals["match"] = _glob
    env.globals["now"] = _dt.datetime.now
    return env


ENV = _make_env()


def _check_names(ast: nodes.Template, known_vars: Mapping[str, Any] | None, allowed: frozenset[str],
                 source: str = "") -> None:
    undeclared = meta.find_undeclared_variables(ast)
    misplaced = sorted(undeclared & _KEYWORDS)
    if misplaced:
        word = misplaced[0]
        offset = _keyword_offset(source, word)
        raise ExpressionSyntaxError(f"syntax error: {word!r} where a value was expected", offset)
    unknown = sorted(undeclared - allowed)
    if unknown:
        close = difflib.get_close_matches(unknown[0], sorted(allowed), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ExpressionError(f"unknown name {unknown[0]!r}{hint}")
    if known_vars is not None:
        for name in vars_referenced(ast):
            if name not in known_vars:
                raise ExpressionError(f"undefined variable vars.{name} (declare it under vars:)")


def vars_referenced(ast: nodes.Node) -> set[str]:
    """Names used as ``vars.NAME`` or ``vars['NAME']`` in a parsed template."""
    out: set[str] = set()
    for node in ast.find_all(nodes.Getattr):
        if isinstance(node.node, nodes.Name) and node.node.name == "vars":
            out.add(node.attr)
    for item in ast.find_all(nodes.Getitem):
        if (isinstance(item.node, nodes.Name) and item.node.name == "vars"
                and isinstance(item.arg, nodes.Const) and isinstance(item.arg.value, str)):
            out.add(item.arg.value)
    return out


def _strict(value: Any) -> Any:
    if isinstance(value, Undefined):
        str(value)  # StrictUndefined raises the stored error (UndefinedError or SecurityError)
    return value


class Template:
    """One compiled string from the rule file.

    Use :func:`compile_template` to make one. ``render(namespace)`` returns the source itself when
    it has no braces, the native value when it is exactly one ``{{ expression }}``, and a string
    otherwise. ``where`` is ``file:line:column`` of the source, used in runtime errors.
    """

    __slots__ = ("_fn", "_kind", "source", "where")

    def __init__(self, source: str, where: str, fn: Callable[..., Any] | None, kind: str) -> None:
        self.source = source
        self.where = where
        self._fn = fn
        self._kind = kind  # "static" | "native" | "text"

    @property
    def is_static(self) -> bool:
        """True when the string has no template syntax."""
        return self._kind == "static"

    def render(self, namespace: Mapping[str, Any]) -> Any:
        """Evaluate against ``namespace``; raise :class:`ExpressionError` on failure."""
        if self._fn is None:
            return self.source
        try:
            return _strict(self._fn(dict(namespace)))
        except ExpressionError:
            raise
        except Exception as exc:  # jinja2 errors, and errors raised by namespace functions
            raise ExpressionError(f"{self.where}: {self.source!r}: {exc}") from exc

    def as_native(self, source: str) -> Template:
        """The same compiled expression shown as `source`, rendering its native value (a
        condition ``x > 3`` is compiled as ``{{ x > 3 }}`` but reported as written).

        Parameters
        ----------
        source : str
            The text to show in errors and ``repr``.

        Returns
        -------
        Template
            A template of kind ``native`` sharing this one's compiled code and ``where``.
        """
        return Template(source, self.where, self._fn, "native")

    def __repr__(self) -> str:
        return f"Template({self.source!r})"


def compile_template(source: str, where: str = "<string>", *,
                     known_vars: Mapping[str, Any] | None = None,
                     allowed: frozenset[str] = KNOWN_NAMES) -> Template:
    """Compile a rule-file string.

    Parameters
    ----------
    source : str
        The string as written.
    where : str
        ``file:line:column`` for error messages.
    known_vars : mapping, optional
        If given, ``vars.NAME`` must name one of its keys.
    allowed : frozenset of str
        Top-level names the template may use.

    Raises
    ------
    ExpressionSyntaxError
        On a syntax error (``offset`` says where in `source`, when known).
    ExpressionError
        On an unknown name.

    Examples
    --------
    >>> compile_template("{{ params['row-list'] }}").render({"params": {"row-list": [1, 2]}})
    [1, 2]
    >>> compile_template("{{ file.name }}!").render({"file": {"name": "m31.fits"}})
    'm31.fits!'
    >>> compile_template("12:30:45").render({})
    '12:30:45'
    """
    if "{{" not in source and "{%" not in source and "{#" not in source:
        return Template(source, where, None, "static")
    m = _SINGLE_EXPR.match(source)
    try:
        if m and "{{" not in m.group("expr") and "}}" not in m.group("expr"):
            expr = m.group("expr").strip()
            wrapped = "{{ " + expr + " }}"
            ast = ENV.parse(wrapped)
            try:
                _check_names(ast, known_vars, allowed, wrapped)
            except ExpressionSyntaxError as exc:
                if exc.offset is not None:
                    exc.offset += source.find(expr) - 3
                raise
            compiled = ENV.compile_expression(expr, undefined_to_none=False)
            return Template(source, where, lambda ns: compiled(**ns), "native")
        ast = ENV.parse(source)
        _check_names(ast, known_vars, allowed, source)
        tmpl = ENV.from_string(source)
        return Template(source, where, tmpl.render, "text")
    except TemplateError as exc:
        raise ExpressionSyntaxError(f"template syntax error: {exc.message or exc}") from exc


# ---------------------------------------------------------------------------------------------
# structured values (params) and conditions

ValueTemplate = Union[Template, list["ValueTemplate"], dict[str, "ValueTemplate"]]


def render_value(value: ValueTemplate, namespace: Mapping[str, Any]) -> Any:
    """Render a tree of templates (as the loader builds for ``params``) to plain values."""
    if isinstance(value, Template):
        return value.render(namespace)
    if isinstance(value, list):
        return [render_value(v, namespace) for v in value]
    if isinstance(value, dict):
        return {k: render_value(v, namespace) for k, v in value.items()}
    return value


class Condition(Protocol):
    """Anything with ``check(namespace) -> bool``."""

    def check(self, namespace: Mapping[str, Any]) -> bool: ...


@dataclass(frozen=True, slots=True)
class ExprCondition:
    """A single expression; true when its value is truthy."""

    template: Template

    def check(self, namespace: Mapping[str, Any]) -> bool:
        return bool(self.template.render(namespace))


@dataclass(frozen=True, slots=True)
class And:
    """All of ``items`` hold (short-circuit)."""

    items: tuple[Condition, ...]

    def check(self, namespace: Mapping[str, Any]) -> bool:
        return all(c.check(namespace) for c in self.items)


@dataclass(frozen=True, slots=True)
class Or:
    """Any of ``items`` holds (short-circuit)."""

    items: tuple[Condition, ...]

    def check(self, namespace: Mapping[str, Any]) -> bool:
        return any(c.check(namespace) for c in self.items)


@dataclass(frozen=True, slots=True)
class Not:
    """``item`` does not hold."""

    item: Condition

    def check(self, namespace: Mapping[str, Any]) -> bool:
        return not self.item.check(namespace)


def compile_condition(source: str, where: str = "<string>", *,
                      known_vars: Mapping[str, Any] | None = None) -> ExprCondition:
    """Compile one condition expression; surrounding ``{{ }}`` are optional.

    Examples
    --------
    >>> compile_condition("params.row|int > 3").check({"params": {"row": "7"}})
    True
    """
    text = source.strip()
    m = _SINGLE_EXPR.match(text)
    if m and "{{" not in m.group("expr"):
        text = m.group("expr").strip()
    if not text:
        raise ExpressionError("empty condition")
    try:
        tmpl = compile_template("{{ " + text + " }}", where, known_vars=known_vars)
    except ExpressionSyntaxError as exc:
        if exc.offset is not None:
            exc.offset += source.find(text) - 3
        raise
    return ExprCondition(tmpl.as_native(source))


# ---------------------------------------------------------------------------------------------
# namespace

class HubState(Protocol):
    """Live hub state the engine supplies to ``registered()``, ``subscribed()`` and
    ``clients()``."""

    def is_registered(self, name: str) -> bool: ...

    def is_subscribed(self, name: str, mtype: str) -> bool: ...

    def names(self, pattern: str = "*") -> list[str]: ...


#: ``newest()`` looks at no more than this many entries of a folder (a bound on the time an
#: expression can take; the folder listing is a single ``scandir``, no file is opened).
NEWEST_SCAN_LIMIT = 100_000


def newest(folder: str, pattern: str = "*") -> str | None:
    """The newest (by modification time) regular file in `folder` whose name matches the
    case-insensitive glob `pattern`, or None.

    Parameters
    ----------
    folder : str
        A folder (``~`` expanded); not recursive.
    pattern : str
        File name glob, e.g. ``*.fits``.

    Returns
    -------
    str or None
        Its absolute path; None when nothing matches or the folder cannot be read.

    Examples
    --------
    >>> import os, tempfile
    >>> d = tempfile.mkdtemp()
    >>> for i, name in enumerate(["a.fits", "b.fits", "c.txt"]):
    ...     open(os.path.join(d, name), "w").close()
    ...     os.utime(os.path.join(d, name), (i, i))
    >>> os.path.basename(newest(d, "*.FITS"))
    'b.fits'
    >>> newest(d, "*.vot") is None
    True
    """
    best: tuple[int, str] | None = None
    pat = str(pattern)
    try:
        with os.scandir(os.path.expanduser(str(folder))) as entries:
            for n, entry in enumerate(entries):
                if n >= NEWEST_SCAN_LIMIT:
                    break
                if not glob_matches(entry.name, pat):
                    continue
                try:
                    if not entry.is_file(follow_symlinks=False):
                        continue
                    mtime = entry.stat(follow_symlinks=False).st_mtime_ns
                except OSError:
                    continue
                if best is None or mtime > best[0]:
                    best = (mtime, entry.path)
    except OSError:
        return None
    return os.path.abspath(best[1]) if best else None


@dataclass(frozen=True, slots=True)
class Who:
    """A SAMP client as seen by expressions: ``name``, ``id`` and, for a message's sender,
    ``profile`` (``"standard"``, ``"web"``, ``"hub"`` or None when the hub cannot tell)."""

    name: str | None
    id: str
    metadata: Mapping[str, Any] | None = None
    profile: str | None = None

    def __str__(self) -> str:
        return self.name or self.id


class FitsHeader(Mapping[str, Any]):
    """FITS header keywords of a file (case-insensitive keys), from its precomputed
    :class:`~sampflow.rules.filefacts.FileFacts`: the primary header's value first, then each
    following extension's. Empty when the file is not FITS or was not looked at."""

    def __init__(self, cards: Mapping[str, Any]) -> None:
        self._cards = cards

    def __getitem__(self, key: str) -> Any:
        return self._cards[str(key).upper()]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._cards)

    def __len__(self) -> int:
        return len(self._cards)


class FileInfo:
    """What expressions see as ``file``: path, name, stem, suffix, dir, size, url, event, header,
    kind.

    Content-derived fields (``kind``, ``header``, ``size``, ``url``) come from `facts`,
    computed off the event loop before the rule's condition is evaluated (no I/O happens here);
    without facts, ``kind`` is None, ``header`` is empty and ``size`` is -1.
    """

    __slots__ = ("dir", "event", "facts", "header", "name", "path", "stem", "suffix")

    def __init__(self, path: str, event: str = "", facts: FileFacts | None = None) -> None:
        p = Path(path)
        self.path = str(p)
        self.name = p.name
        self.stem = p.name.split(".")[0] if p.name else ""
        self.suffix = "".join(p.suffixes)
        self.dir = str(p.parent)
        self.event = event
        self.facts = facts
        self.header = FitsHeader(facts.headers if facts is not None else {})

    @property
    def kind(self) -> str | None:
        """``"image"`` for a FITS image, ``"table"`` for a FITS table or a VOTable, else None
        (the same test ``send_file`` makes)."""
        return self.facts.kind if self.facts is not None else None

    @property
    def problem(self) -> str | None:
        """Why ``kind`` is None (not FITS, not a regular file, unreadable), when looked at."""
        return self.facts.reason if self.facts is not None else None

    @property
    def size(self) -> int:
        return self.facts.size if self.facts is not None else -1

    @property
    def url(self) -> str:
        if self.facts is not None and self.facts.url:
            return self.facts.url
        return Path(os.path.abspath(self.path)).as_uri()

    def __str__(self) -> str:
        return self.path


def _header_fn(info: FileInfo | None) -> Callable[..., Any]:
    def header(key: str, default: Any = None) -> Any:
        if info is None:
            raise ExpressionError("header() needs a file event")
        return info.header.get(key, default)
    return header


def build_namespace(event: Event | None, *, variables: Mapping[str, Any],
                    hub: HubState | None = None, rule: str = "",
                    extra: Mapping[str, Any] | None = None,
                    facts: FileFacts | None = None) -> dict[str, Any]:
    """The names an expression sees for ``event`` (see the module docstring).

    For a file event, `facts` (from :func:`~sampflow.rules.filefacts.facts_for`) supply
    ``file.kind``, ``file.size``, ``file.url`` and ``header()``; evaluation never reads files.
    """
    ns: dict[str, Any] = {
        "vars": dict(variables), "rule": rule, "event": "", "mtype": None, "params": {},
        "sender": None, "msg_id": None, "call": False, "client": None, "hub_event": None,
        "file": None, "timer": None, "response": None, "result": None, "responses": {},
        "key": None,
    }

    def registered(name: str) -> bool:
        return bool(hub and hub.is_registered(name))

    def subscribed(name: str, mtype: str) -> bool:
        return bool(hub and hub.is_subscribed(name, mtype))

    def clients(pattern: str = "*") -> list[str]:
        return hub.names(pattern) if hub is not None else []

    ns["registered"] = registered
    ns["subscribed"] = subscribed
    ns["clients"] = clients
    ns["newest"] = newest
    info: FileInfo | None = None
    if isinstance(event, SampMessage):
        ns.update(event="samp", mtype=event.mtype, params=event.params, msg_id=event.msg_id,
                  call=event.kind == "call",
                  sender=Who(event.sender_name, event.sender_id, None, event.sender_profile))
    elif isinstance(event, HubEvent):
        ns.update(event="hub", hub_event=event.kind,
                  client=Who(event.client_name, event.client_id, event.data))
    elif isinstance(event, FileEvent):
        info = FileInfo(event.path, event.kind, facts)
        ns.update(event="file", file=info)
    elif isinstance(event, TimerEvent):
        ns.update(event="timer", timer={"count": event.count, "every": event.every})
    ns["header"] = _header_fn(info)
    if extra:
        ns.update(extra)
    return ns
