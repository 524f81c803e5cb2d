"""JSON Schema of the rule file format (``sampflow schema``), generated from the same tables
(:mod:`sampflow.rules.spec`) that the loader validates with.

Editors (VS Code's YAML extension, for one) use it for completion and hover help::

    # yaml-language-server: $schema=sampflow-rules.schema.json
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..samp.types import MTYPE_PATTERN_SYNTAX, MTYPE_SYNTAX
from .spec import ACTION_OPTIONS, ACTIONS, RULE_FIELDS, TOP_FIELDS, TRIGGERS, F, ItemType, K

__all__ = ["dumps", "json_schema"]

_STR: dict[str, Any] = {"type": "string"}
_VARREF = {"type": "string", "pattern": r"\{\{.*\}\}"}
_DURATION = {"oneOf": [{"type": "number", "minimum": 0},
                       {"type": "string",
                        "pattern": r"^\s*((\d+(\.\d*)?|\.\d+)\s*(ms|s|m|h|d)?\s*)+$"},
                       _VARREF]}


def _one_or_many(item: Mapping[str, Any]) -> dict[str, Any]:
    return {"oneOf": [dict(item), {"type": "array", "items": dict(item)}]}


def _field(spec: F) -> dict[str, Any]:
    k = spec.kind
    out: dict[str, Any]
    if k in (K.STR, K.PATH, K.TEMPLATE):
        out = dict(_STR)
    elif k is K.MTYPE:
        out = {"type": "string", "pattern": MTYPE_SYNTAX}
    elif k is K.MTYPES:
        out = _one_or_many({"type": "string", "pattern": MTYPE_PATTERN_SYNTAX})
    elif k in (K.STRLIST, K.TEMPLATES):
        out = _one_or_many(_STR)
    elif k is K.ENUM:
        out = {"oneOf": [{"enum": [*spec.choices, *(a for a, _ in spec.aliases)]}, _VARREF]}
    elif k is K.ENUMSET:
        out = _one_or_many({"enum": list(spec.choices)})
    elif k is K.INT:
        out = {"oneOf": [{"type": "integer"}, _VARREF]}
    elif k is K.BOOL:
        out = {"oneOf": [{"type": "boolean"}, {"enum": ["yes", "no", "on", "off"]}, _VARREF]}
    elif k is K.DURATION:
        out = dict(_DURATION)
    elif k is K.VALUE:
        out = {}
    elif k is K.CONDITION:
        out = {"$ref": "#/$defs/condition"}
    elif k in (K.GLOBMAP, K.STRMAP):
        out = {"type": "object", "additionalProperties": {"type": "string"}}
    elif k is K.RETRY:
        out = {"oneOf": [{"type": "integer", "minimum": 0},
                         {"type": "object", "additionalProperties": False,
                          "properties": {"times": {"type": "integer", "minimum": 0},
                                         "delay": dict(_DURATION)}}]}
    elif k is K.TRIGGERS:
        out = _one_or_many({"$ref": "#/$defs/trigger"})
    elif k is K.ACTIONS:
        out = _one_or_many({"$ref": "#/$defs/action"})
    elif k is K.RULES:
        out = {"type": "array", "items": {"$ref": "#/$defs/rule"}}
    elif k is K.VARS:
        out = {"type": "object"}
    else:  # pragma: no cover
        raise AssertionError(k)
    if spec.doc:
        out["description"] = spec.doc
    return out


def _item(t: ItemType, extra: Mapping[str, F]) -> dict[str, Any]:
    fields = {**t.fields, **extra}
    props = {name: _field(spec) for name, spec in fields.items() if name != t.key}
    inner = {"type": "object", "additionalProperties": False, "properties": dict(props)}
    short = fields.get(t.shorthand or "", None)
    key_forms: list[dict[str, Any]] = [inner, {"type": "null"}]
    if short is not None:
        key_forms.insert(0, _field(short))
    props[t.key] = {"description": t.doc, "anyOf": key_forms}
    return {"type": "object", "description": t.doc, "required": [t.key],
            "additionalProperties": False, "properties": props}


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a rule file, as a dict."""
    rule_props = {name: _field(spec) for name, spec in RULE_FIELDS.items()}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://sampflow.invalid/rules.schema.json",
        "title": "sampflow rule file",
        "type": "object",
        "additionalProperties": False,
        "required": [n for n, s in TOP_FIELDS.items() if s.required],
        "properties": {name: _field(spec) for name, spec in TOP_FIELDS.items()},
        "$defs": {
            "rule": {"type": "object", "additionalProperties": False,
                     "required": [n for n, s in RULE_FIELDS.items() if s.required],
                     "properties": rule_props},
            "trigger": {"oneOf": [_item(t, {}) for t in TRIGGERS.values()]},
            "action": {"oneOf": [_item(t, ACTION_OPTIONS) for t in ACTIONS.values()]},
            "condition": {"oneOf": [
                {"type": "string", "description": "an expression, e.g. params.row|int > 3"},
                {"type": "array", "items": {"$ref": "#/$defs/condition"},
                 "description": "all of these"},
                {"type": "object", "additionalProperties": False, "minProperties": 1,
                 "maxProperties": 1, "properties": {
                     "and": {"type": "array", "items": {"$ref": "#/$defs/condition"}},
                     "or": {"type": "array", "items": {"$ref": "#/$defs/condition"}},
                     "not": {"$ref": "#/$defs/condition"}}},
            ]},
        },
    }


def dumps(indent: int = 2) -> str:
    """The JSON Schema as text."""
    return json.dumps(json_schema(), indent=indent)
