"""The schema table of the rule file format: one source of truth.

The loader validates and converts YAML through these tables, and :mod:`sampflow.rules.schema`
turns the same tables into a JSON Schema. Triggers and actions are picked by the key present
(``mtype:``, ``files:``, ``notify:``, ...). The value of that key is either a mapping of the
item's fields, or a single value for its *shorthand* field; the other fields may also be written
beside the key::

    - notify: {to: DS9, mtype: image.load.fits, params: {url: "{{ file.url }}"}}
    - notify: DS9                     # the same, flat
      mtype: image.load.fits
      params: {url: "{{ file.url }}"}
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import model as m
from .events import FILE_EVENT_KINDS
from .model import CATCH_UP

__all__ = [
    "ACTIONS",
    "ACTION_OPTIONS",
    "RULE_FIELDS",
    "TOP_FIELDS",
    "TRIGGERS",
    "F",
    "ItemType",
    "K",
]


class K(enum.Enum):
    """Field kinds: how a YAML value is checked and converted."""

    STR = "string"              # plain string; {{ vars.X }} substituted at load
    PATH = "path"               # like STR, then ~ expanded
    MTYPE = "mtype"             # an MType (no wildcard)
    MTYPES = "mtype patterns"   # one MType pattern or a list
    STRLIST = "strings"         # one string or a list (globs, patterns)
    ENUM = "enum"               # one of ``choices``
    ENUMSET = "enum set"        # one or a list of ``choices``
    INT = "integer"
    BOOL = "boolean"            # true/false, yes/no, on/off
    DURATION = "duration"       # 1s, 500ms, 2m, 1h, 1m30s, or seconds
    TEMPLATE = "template"       # string, rendered per firing
    TEMPLATES = "templates"     # one template or a list
    VALUE = "value"             # any YAML value whose strings are templates
    CONDITION = "condition"     # expression, list (all), {and|or|not: ...}
    GLOBMAP = "glob map"        # mapping of strings to globs (param matches)
    STRMAP = "string map"       # mapping of strings to strings
    RETRY = "retry"             # N or {times: N, delay: DURATION}
    TRIGGERS = "triggers"       # one trigger or a list
    ACTIONS = "actions"         # one action or a list
    RULES = "rules"             # a list of rules
    VARS = "vars"               # mapping of names to default values


@dataclass(frozen=True)
class F:
    """One field: its kind, the model attribute it fills, whether it is required, its doc."""

    kind: K
    doc: str
    attr: str | None = None
    required: bool = False
    choices: tuple[str, ...] = ()
    #: For ENUM: other spellings accepted and what they mean (``yes`` -> ``all``).
    aliases: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ItemType:
    """A trigger or action type, picked by ``key`` being present."""

    key: str
    build: Callable[..., Any]
    doc: str
    fields: dict[str, F] = field(default_factory=dict)
    shorthand: str | None = None


def _hub(kind: str) -> ItemType:
    return ItemType(kind, lambda **kw: m.HubTrigger(kind, **kw),
                    f"a client whose samp.name matches {kind}"
                    if kind != "registered" else "a client appears (once it has declared its name)",
                    {kind: F(K.STRLIST, "client name globs, case-insensitive; * for any",
                             attr="clients")}, shorthand=kind)


_TO = F(K.TEMPLATES, "recipients: samp.name globs (case-insensitive) or public ids")
_TO_OPT = F(K.TEMPLATES, "recipients (default: every client subscribed to the MType)", attr="to")
_HOLD = F(K.DURATION, "wait up to this long for a recipient that is not registered "
          "(default 2h; 0 fails at once)")
_TABLE = F(K.TEMPLATE, "table-id (default: the incoming message's)")
_URL = F(K.TEMPLATE, "table URL (default: the incoming message's)")

TRIGGERS: dict[str, ItemType] = {
    t.key: t for t in [
        ItemType("mtype", m.MTypeTrigger, "a SAMP message", {
            "mtype": F(K.MTYPES, "MType or pattern (table.*, *), or a list", attr="mtypes"),
            "from": F(K.STRLIST, "sender samp.name globs, case-insensitive; they never match "
                      "a web page unless profile says web", attr="senders"),
            "profile": F(K.ENUMSET, "how the sender is connected: standard (desktop tools), "
                         "web (browser pages, Web Profile), any; default: any without from, "
                         "standard with from", attr="profiles", choices=m.SENDER_PROFILES),
            "params": F(K.GLOBMAP, "params whose values must match these globs"),
        }, shorthand="mtype"),
        _hub("registered"), _hub("unregistered"), _hub("metadata"), _hub("subscriptions"),
        ItemType("files", m.FilesTrigger, "a file in a folder is complete", {
            "files": F(K.PATH, "the folder to watch", attr="path"),
            "patterns": F(K.STRLIST, "file name globs (case-insensitive), default *"),
            "ignore": F(K.STRLIST, "file name globs to ignore"),
            "recursive": F(K.BOOL, "watch sub-folders too"),
            "events": F(K.ENUMSET, "which events fire (default created, moved)",
                        choices=FILE_EVENT_KINDS),
            "settle": F(K.DURATION, "quiet time before a file counts as complete (default 1s)"),
            "poll": F(K.DURATION, "poll every N instead of OS events (network file systems)"),
            "catch_up": F(K.ENUM, "at start, send files the ledger has not seen sent: new "
                          "(default: those that arrived since the rule's first run), all "
                          "(also those there before it), none", choices=CATCH_UP,
                          aliases=(("yes", "all"), ("true", "all"), ("on", "all"),
                                   ("no", "none"), ("false", "none"), ("off", "none"))),
        }, shorthand="files"),
        ItemType("every", m.TimerTrigger, "a periodic timer",
                 {"every": F(K.DURATION, "the period")}, shorthand="every"),
    ]
}

ACTION_OPTIONS: dict[str, F] = {
    "continue_on_error": F(K.BOOL, "go on with the next action if this one fails"),
    "retry": F(K.RETRY, "retry N times (or {times: N, delay: 2s}) before failing"),
}

ACTIONS: dict[str, ItemType] = {
    t.key: t for t in [
        ItemType("notify", m.Notify, "send a notification", {
            "to": F(K.TEMPLATES, _TO.doc, required=True),
            "mtype": F(K.MTYPE, "the MType", required=True),
            "params": F(K.VALUE, "samp.params; strings are templates"),
            "hold": _HOLD,
        }, shorthand="to"),
        ItemType("call", m.Call, "call and wait for the response", {
            "to": F(K.TEMPLATES, _TO.doc, required=True),
            "mtype": F(K.MTYPE, "the MType", required=True),
            "params": F(K.VALUE, "samp.params; strings are templates"),
            "timeout": F(K.DURATION, "how long to wait (default 10s)"),
            "as": F(K.STR, "name the response: responses.NAME", attr="name"),
            "hold": _HOLD,
        }, shorthand="to"),
        ItemType("broadcast", m.Broadcast, "notify every subscribed client", {
            "broadcast": F(K.MTYPE, "the MType", attr="mtype"),
            "mtype": F(K.MTYPE, "the MType"),
            "params": F(K.VALUE, "samp.params; strings are templates"),
            "except": F(K.TEMPLATES, "clients to leave out; `sender` is the incoming sender",
                        attr="except_"),
        }, shorthand="broadcast"),
        ItemType("forward", m.Forward, "pass the incoming message on unchanged", {
            "to": F(K.TEMPLATES, "recipients (default: every subscribed client but the sender)"),
            "except": F(K.TEMPLATES, "clients to leave out", attr="except_"),
        }, shorthand="to"),
        ItemType("reply", m.Reply, "set the reply to the incoming call", {
            "status": F(K.ENUM, "ok, warning or error", choices=("ok", "warning", "error")),
            "result": F(K.VALUE, "samp.result"),
            "error": F(K.TEMPLATE, "samp.errortxt"),
        }, shorthand="status"),
        ItemType("send_file", m.SendFile, "send a FITS image, FITS table or VOTable by content", {
            "to": _TO_OPT,
            "path": F(K.TEMPLATE, "the file (default: the triggering file)"),
            "name": F(K.TEMPLATE, "the name shown (default: the file name)"),
            "confirm": F(K.BOOL, "send the load as a call and wait for the response, so a "
                         "file the recipient rejects is recorded failed with its error text"),
            "timeout": F(K.DURATION, "with confirm: how long to wait for the response "
                         "(default 60s)"),
            "hold": _HOLD,
        }, shorthand="to"),
        ItemType("point_at", m.PointAt, "send coord.pointAt.sky", {
            "to": _TO_OPT,
            "ra": F(K.TEMPLATE, "RA: degrees or 12:30:45 / 12h30m45s"),
            "dec": F(K.TEMPLATE, "Dec: degrees or +12:30:45"),
            "table": _TABLE, "url": _URL,
            "row": F(K.TEMPLATE, "0-based row (default: the incoming message's)"),
        }, shorthand="to"),
        ItemType("highlight_row", m.HighlightRow, "send table.highlight.row", {
            "to": _TO_OPT, "table": _TABLE, "url": _URL,
            "row": F(K.TEMPLATE, "0-based row (default: the incoming message's)"),
        }, shorthand="to"),
        ItemType("select_rows", m.SelectRows, "send table.select.rowList", {
            "to": _TO_OPT, "table": _TABLE, "url": _URL,
            "rows": F(K.VALUE, "list of 0-based rows (default: the incoming row-list)"),
        }, shorthand="to"),
        ItemType("log", m.Log, "write a log line", {
            "log": F(K.TEMPLATE, "the message", attr="message"),
            "level": F(K.ENUM, "debug, info, warning or error",
                       choices=("debug", "info", "warning", "error")),
        }, shorthand="log"),
        ItemType("delay", m.Delay, "wait", {"delay": F(K.DURATION, "how long", attr="seconds")},
                 shorthand="delay"),
        ItemType("exec", m.Exec, "run a program (argument list; needs --allow-exec)", {
            "exec": F(K.TEMPLATES, "program and arguments, as a list", attr="args"),
            "timeout": F(K.DURATION, "kill it after this long"),
            "cwd": F(K.PATH, "working directory"),
        }, shorthand="exec"),
    ]
}

RULE_FIELDS: dict[str, F] = {
    "name": F(K.STR, "what the rule does, shown in logs and traces", required=True),
    "description": F(K.STR, "free text"),
    "on": F(K.TRIGGERS, "when: one trigger or a list", attr="triggers", required=True),
    "if": F(K.CONDITION, "only if: expression, list (all), or {and|or|not: ...}",
            attr="condition"),
    "do": F(K.ACTIONS, "what: one action or a list", attr="actions", required=True),
    "mode": F(K.ENUM, "while running: single (default), restart, queued (default with key), "
              "parallel", choices=tuple(x.value for x in m.Mode)),
    "max": F(K.INT, "queued/parallel limit (default 10)"),
    "debounce": F(K.DURATION, "wait until events stop for this long, then run once"),
    "throttle": F(K.DURATION, "run at most once per this long; later events are dropped"),
    "key": F(K.TEMPLATE, "template; runs with the same key are serialised, others parallel"),
    "enabled": F(K.BOOL, "false to switch the rule off"),
}

TOP_FIELDS: dict[str, F] = {
    "client": F(K.STRMAP, "the engine's SAMP metadata: name, description, description_html, "
                "icon, documentation (samp.* keys), or any metadata key"),
    "vars": F(K.VARS, "variables with defaults; use {{ vars.NAME }}; --set NAME=VALUE"),
    "rules": F(K.RULES, "the rules", required=True),
}
