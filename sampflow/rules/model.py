"""The typed rule model: frozen, slotted dataclasses that check their own fields.

The loader (:mod:`sampflow.rules.loader`) builds these from YAML through the schema table in
:mod:`sampflow.rules.spec`; they can also be built directly from Python. Strings that are
templates are :class:`~sampflow.rules.expr.Template` objects, compiled at load time.

Model::

    RuleSet(rules, vars, client, files)
    Rule(name, triggers, condition, actions, mode, max, debounce, throttle, key, enabled)
    triggers: MTypeTrigger | HubTrigger | FilesTrigger | TimerTrigger
    actions:  Notify | Call | Broadcast | Forward | Reply | SendFile | PointAt | HighlightRow
              | SelectRows | Log | Delay | Exec       (each with ActionOptions)
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Union

from ..samp.constants import SAMP_METADATA_KEYS
from ..samp.types import is_valid_mtype, is_valid_pattern
from .events import FILE_EVENT_KINDS, HUB_EVENT_KINDS
from .expr import Condition, Template, ValueTemplate

__all__ = [
    "CATCH_UP", "CLIENT_METADATA_KEYS", "DEFAULT_HOLD", "SENDER_PROFILES",
    "Action", "ActionOptions", "Broadcast", "Call", "Delay", "Exec", "FilesTrigger", "Forward",
    "HighlightRow", "HubTrigger", "Log", "MTypeTrigger", "Mode", "Notify", "PointAt", "Reply",
    "Rule", "RuleSet", "SelectRows", "SendFile", "TimerTrigger", "Trigger", "check_mtype",
    "metadata_key",
]

def check_mtype(value: str, *, pattern: bool = False) -> str:
    """Return ``value`` if it is a valid MType (or, with ``pattern``, an MType pattern).

    The syntax is the SAMP package's (`sampflow.samp.types.is_valid_mtype`,
    `~sampflow.samp.types.is_valid_pattern`).

    Examples
    --------
    >>> check_mtype("table.*", pattern=True)
    'table.*'
    >>> check_mtype("table.*")
    Traceback (most recent call last):
    ...
    ValueError: not a valid MType: 'table.*'
    """
    valid = is_valid_pattern if pattern else is_valid_mtype
    if not valid(value):
        kind = "MType pattern" if pattern else "MType"
        raise ValueError(f"not a valid {kind}: {value!r}")
    return value


#: Short ``client:`` keys of a rule file -> the standard metadata keys they stand for.
CLIENT_METADATA_KEYS = {
    "name": "samp.name",
    "description": "samp.description.text",
    "description_html": "samp.description.html",
    "icon": "samp.icon.url",
    "documentation": "samp.documentation.url",
}


def metadata_key(key: str) -> str:
    """The SAMP metadata key that ``client:`` key `key` of a rule file declares.

    Parameters
    ----------
    key : str
        A key of the ``client:`` map.

    Returns
    -------
    str
        The short names of `CLIENT_METADATA_KEYS` mapped; a standard key (SAMP 1.3 section
        3.6) with or without its ``samp.`` prefix as the standard key; any other key with a
        dot as written; one without a dot prefixed with ``samp.``.

    Examples
    --------
    >>> [metadata_key(k) for k in ("description", "icon.url", "author.email", "author")]
    ['samp.description.text', 'samp.icon.url', 'author.email', 'samp.author']
    """
    if key in CLIENT_METADATA_KEYS:
        return CLIENT_METADATA_KEYS[key]
    if f"samp.{key}" in SAMP_METADATA_KEYS:
        return f"samp.{key}"
    return key if "." in key else f"samp.{key}"


class Mode(enum.Enum):
    """What happens when a rule fires while it is still running (per key)."""

    SINGLE = "single"      #: ignore the new firing
    RESTART = "restart"    #: cancel the running one, start the new one
    QUEUED = "queued"      #: run after the running one (up to ``max`` waiting + running)
    PARALLEL = "parallel"  #: run alongside (up to ``max`` at once)


#: ``catch_up:`` choices of a files trigger (see :mod:`sampflow.rules.triggers.files`).
CATCH_UP = ("new", "all", "none")

#: How long a send waits for a recipient that is not registered, by default (``hold:``), s.
DEFAULT_HOLD = 7200.0


def _positive(name: str, value: float | None, *, allow_zero: bool = True) -> None:
    if value is None:
        return
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'non-negative' if allow_zero else 'positive'}")


# ---------------------------------------------------------------------------------- triggers

#: What ``profile:`` of an MType trigger may say: how the sender is connected to the hub.
SENDER_PROFILES = ("standard", "web", "any")


@dataclass(frozen=True, slots=True)
class MTypeTrigger:
    """A SAMP message whose MType matches one of ``mtypes`` (SAMP wildcards), from a sender whose
    ``samp.name`` matches one of the ``senders`` globs (any when empty), connected through one of
    the ``profiles``, with ``params`` whose string values match the given globs.

    ``profiles`` is a subset of `SENDER_PROFILES`; empty means the default: any sender when
    ``senders`` is empty, else only senders not known to be web pages (a page may call itself
    ``topcat``: name globs match web pages only when ``profiles`` says ``web``)."""

    mtypes: tuple[str, ...]
    senders: tuple[str, ...] = ()
    params: tuple[tuple[str, str], ...] = ()
    profiles: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if not self.mtypes:
            raise ValueError("at least one MType is needed")
        unknown = set(self.profiles) - set(SENDER_PROFILES)
        if unknown:
            raise ValueError(f"unknown profile {min(unknown)!r}; expected one of "
                             f"{', '.join(SENDER_PROFILES)}")
        for m in self.mtypes:
            check_mtype(m, pattern=True)


@dataclass(frozen=True, slots=True)
class HubTrigger:
    """A hub event of ``kind`` about a client whose name matches one of ``clients``."""

    kind: str
    clients: tuple[str, ...] = ("*",)

    def __post_init__(self) -> None:
        if self.kind not in HUB_EVENT_KINDS:
            raise ValueError(f"expected one of {', '.join(HUB_EVENT_KINDS)}")


@dataclass(frozen=True, slots=True)
class FilesTrigger:
    """Complete files in a folder (see :mod:`sampflow.rules.triggers.files`)."""

    path: str
    patterns: tuple[str, ...] = ("*",)
    ignore: tuple[str, ...] = ()
    recursive: bool = False
    events: frozenset[str] = frozenset({"created", "moved"})
    settle: float = 1.0
    poll: float | None = None
    catch_up: str = "new"

    def __post_init__(self) -> None:
        if isinstance(self.catch_up, bool):  # the Python spelling before the ledger
            object.__setattr__(self, "catch_up", "all" if self.catch_up else "none")
        if self.catch_up not in CATCH_UP:
            raise ValueError(f"catch_up must be one of {', '.join(CATCH_UP)}")
        bad = set(self.events) - set(FILE_EVENT_KINDS)
        if bad or not self.events:
            raise ValueError(f"events must be some of {', '.join(FILE_EVENT_KINDS)}")
        _positive("settle", self.settle)
        _positive("poll", self.poll, allow_zero=False)


@dataclass(frozen=True, slots=True)
class TimerTrigger:
    """Every ``every`` seconds."""

    every: float

    def __post_init__(self) -> None:
        _positive("every", self.every, allow_zero=False)


Trigger = Union[MTypeTrigger, HubTrigger, FilesTrigger, TimerTrigger]

# ----------------------------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class ActionOptions:
    """Options every action takes: ``continue_on_error`` and ``retry`` (times, delay)."""

    continue_on_error: bool = False
    retry: int = 0
    retry_delay: float = 1.0
    where: str = ""

    def __post_init__(self) -> None:
        if self.retry < 0:
            raise ValueError("retry must be non-negative")
        _positive("retry delay", self.retry_delay)


_NO_OPTIONS = ActionOptions()
Recipients = tuple[Template, ...]


@dataclass(frozen=True, slots=True)
class Notify:
    """Send a notification to each client in ``to``."""

    to: Recipients
    mtype: str
    params: ValueTemplate = field(default_factory=dict)
    hold: float = DEFAULT_HOLD
    options: ActionOptions = _NO_OPTIONS

    def __post_init__(self) -> None:
        check_mtype(self.mtype)
        _positive("hold", self.hold)
        if not self.to:
            raise ValueError("to: needs at least one recipient")


@dataclass(frozen=True, slots=True)
class Call:
    """Call each client in ``to`` and wait up to ``timeout`` for the response; ``name`` (``as:``)
    makes it available as ``responses.NAME``."""

    to: Recipients
    mtype: str
    params: ValueTemplate = field(default_factory=dict)
    timeout: float = 10.0
    name: str | None = None
    hold: float = DEFAULT_HOLD
    options: ActionOptions = _NO_OPTIONS

    def __post_init__(self) -> None:
        check_mtype(self.mtype)
        _positive("timeout", self.timeout, allow_zero=False)
        _positive("hold", self.hold)
        if not self.to:
            raise ValueError("to: needs at least one recipient")


@dataclass(frozen=True, slots=True)
class Broadcast:
    """Notify every client subscribed to ``mtype`` except those in ``except_``."""

    mtype: str
    params: ValueTemplate = field(default_factory=dict)
    except_: Recipients = ()
    options: ActionOptions = _NO_OPTIONS

    def __post_init__(self) -> None:
        check_mtype(self.mtype)


@dataclass(frozen=True, slots=True)
class Forward:
    """Pass the incoming message on unchanged, to ``to`` or else to every subscribed client
    except the sender and ``except_``."""

    to: Recipients = ()
    except_: Recipients = ()
    options: ActionOptions = _NO_OPTIONS


@dataclass(frozen=True, slots=True)
class Reply:
    """Set the reply the engine sends to the incoming call."""

    status: str = "ok"
    result: ValueTemplate = field(default_factory=dict)
    error: Template | None = None
    options: ActionOptions = _NO_OPTIONS

    def __post_init__(self) -> None:
        if self.status not in ("ok", "warning", "error"):
            raise ValueError("status must be ok, warning or error")


@dataclass(frozen=True, slots=True)
class SendFile:
    """Send a file by what it is (VOTable, FITS image, FITS table); ``path`` defaults to the
    triggering file, ``to`` to every client subscribed to the chosen MType. With ``confirm``
    the load is a call answered within ``timeout`` seconds; ``hold`` is how long to wait for
    a recipient that is not registered (or not subscribed to the MType)."""

    to: Recipients = ()
    path: Template | None = None
    name: Template | None = None
    confirm: bool = False
    timeout: float = 60.0
    hold: float = DEFAULT_HOLD
    options: ActionOptions = _NO_OPTIONS

    def __post_init__(self) -> None:
        _positive("timeout", self.timeout, allow_zero=False)
        _positive("hold", self.hold)


@dataclass(frozen=True, slots=True)
class PointAt:
    """Send ``coord.pointAt.sky`` from ``ra``/``dec``, or from ``row`` of a table seen loaded
    (``table`` id or ``url``; both default to the incoming message's)."""

    to: Recipients = ()
    ra: Template | None = None
    dec: Template | None = None
    table: Template | None = None
    url: Template | None = None
    row: Template | None = None
    options: ActionOptions = _NO_OPTIONS

    def __post_init__(self) -> None:
        if (self.ra is None) != (self.dec is None):
            raise ValueError("ra and dec go together")


@dataclass(frozen=True, slots=True)
class HighlightRow:
    """Send ``table.highlight.row``."""

    to: Recipients = ()
    table: Template | None = None
    url: Template | None = None
    row: Template | None = None
    options: ActionOptions = _NO_OPTIONS


@dataclass(frozen=True, slots=True)
class SelectRows:
    """Send ``table.select.rowList``."""

    to: Recipients = ()
    table: Template | None = None
    url: Template | None = None
    rows: ValueTemplate | None = None
    options: ActionOptions = _NO_OPTIONS


@dataclass(frozen=True, slots=True)
class Log:
    """Write a line to the log."""

    message: Template
    level: str = "info"
    options: ActionOptions = _NO_OPTIONS

    def __post_init__(self) -> None:
        if self.level not in ("debug", "info", "warning", "error"):
            raise ValueError("level must be debug, info, warning or error")


@dataclass(frozen=True, slots=True)
class Delay:
    """Wait."""

    seconds: float
    options: ActionOptions = _NO_OPTIONS

    def __post_init__(self) -> None:
        _positive("delay", self.seconds)


@dataclass(frozen=True, slots=True)
class Exec:
    """Run a program from an argument list (never a shell); refused without ``--allow-exec``."""

    args: tuple[Template, ...]
    timeout: float | None = None
    cwd: str | None = None
    options: ActionOptions = _NO_OPTIONS

    def __post_init__(self) -> None:
        if not self.args:
            raise ValueError("exec needs a program and its arguments as a list")
        _positive("timeout", self.timeout, allow_zero=False)


Action = Union[Notify, Call, Broadcast, Forward, Reply, SendFile, PointAt, HighlightRow,
               SelectRows, Log, Delay, Exec]

# ------------------------------------------------------------------------------ rules, sets


@dataclass(frozen=True, slots=True, eq=False)
class Rule:
    """One rule: when any trigger fires and the condition holds, run the actions."""

    name: str
    triggers: tuple[Trigger, ...]
    actions: tuple[Action, ...]
    condition: Condition | None = None
    mode: Mode = Mode.SINGLE
    max: int = 10
    debounce: float | None = None
    throttle: float | None = None
    key: Template | None = None
    enabled: bool = True
    where: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a rule needs a name")
        if not self.triggers:
            raise ValueError("a rule needs at least one trigger")
        if not self.actions:
            raise ValueError("a rule needs at least one action")
        if not isinstance(self.mode, Mode):
            raise ValueError(f"mode must be a Mode, not {self.mode!r}")
        if self.max < 1:
            raise ValueError("max must be at least 1")
        _positive("debounce", self.debounce)
        _positive("throttle", self.throttle)


@dataclass(frozen=True, slots=True, eq=False)
class RuleSet:
    """Everything loaded from one or more rule files."""

    rules: tuple[Rule, ...]
    vars: Mapping[str, Any] = field(default_factory=dict)
    client: Mapping[str, str] = field(default_factory=dict)
    files: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        names = [r.name for r in self.rules]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"rule names must be unique: {', '.join(sorted(dup))}")

    def samp_metadata(self) -> dict[str, str]:
        """The SAMP metadata the engine's client declares, from ``client:`` in the file.

        Each key becomes a metadata key (SAMP 1.3 section 3.6) by `metadata_key`:
        ``name`` is ``samp.name``, ``description`` ``samp.description.text``,
        ``description_html`` ``samp.description.html``, ``icon`` ``samp.icon.url`` and
        ``documentation`` ``samp.documentation.url``; a standard key may also be written
        with or without its ``samp.`` prefix (``icon.url``); any other key with a dot is
        kept as written (``author.email``), one without gets ``samp.`` (``author`` is
        ``samp.author``). Without them, ``samp.name`` is ``sampflow`` and
        ``samp.description.text`` ``sampflow rules engine``.

        Returns
        -------
        dict of str to str
            Metadata key -> value; what `sampflow.session.RunSession` declares to the hub.

        Examples
        --------
        >>> rs = RuleSet((), client={"name": "lab", "description": "lab rules",
        ...                          "icon": "http://x/i.png"})
        >>> rs.samp_metadata()  # doctest: +NORMALIZE_WHITESPACE
        {'samp.name': 'lab', 'samp.description.text': 'lab rules',
         'samp.icon.url': 'http://x/i.png'}
        """
        meta = {"samp.name": "sampflow", "samp.description.text": "sampflow rules engine"}
        for key, value in self.client.items():
            meta[metadata_key(key)] = value
        return meta

    def uses(self, *types: type) -> bool:
        """Whether any enabled rule has an action of one of ``types``."""
        return any(isinstance(a, types) for r in self.rules if r.enabled for a in r.actions)
