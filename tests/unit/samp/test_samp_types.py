"""SAMP values and MType syntax, each with one home in `sampflow.samp.types`, and their users
(the rules' ``to_samp``, ``sampflow send``'s ``parse_value``, the rule model's
``check_mtype``, the rule file JSON Schema) giving the same answers."""

from __future__ import annotations

import re
from typing import Any

import jsonschema
import numpy as np
import pytest

from sampflow.cli import parse_value
from sampflow.rules.actions.base import to_samp
from sampflow.rules.model import check_mtype
from sampflow.rules.schema import json_schema
from sampflow.samp.types import (
    MTYPE_PATTERN_SYNTAX,
    MTYPE_SYNTAX,
    encode_value,
    is_samp_value,
    is_valid_mtype,
    is_valid_pattern,
)

VALUES: list[tuple[Any, Any]] = [
    ("text", "text"),
    ("", ""),
    (0, "0"),
    (-42, "-42"),
    (True, "1"),
    (False, "0"),
    (83.82, "83.82"),
    (1e-30, "1e-30"),
    (np.float64(1.5), "1.5"),      # a float subclass: its number, not its repr
    (None, ""),
    ([1, "a", None], ["1", "a", ""]),
    ((1, 2), ["1", "2"]),
    ({"row": 3, 7: True}, {"row": "3", "7": "1"}),
    ({"a": [{"b": [2.5]}]}, {"a": [{"b": ["2.5"]}]}),
]


@pytest.mark.parametrize(("value", "samp"), VALUES)
def test_encode_value(value: Any, samp: Any) -> None:
    assert encode_value(value) == samp
    assert is_samp_value(encode_value(value))
    assert to_samp(value) == samp  # what the rules' actions send


@pytest.mark.parametrize(("text", "samp"), [
    ("plain", "plain"),
    ("83.820", "83.820"),                       # not JSON-parsed: the text as typed
    ("[1, 2.50, true, null]", ["1", "2.50", "1", ""]),   # numbers keep their text
    ('{"a": {"b": false}}', {"a": {"b": "0"}}),
    ('"quoted"', "quoted"),
    ("[not json", "[not json"),
])
def test_send_parses_json_then_encodes_through_the_one_home(text: str, samp: Any) -> None:
    assert parse_value(text) == samp


MTYPES = [
    ("samp.app.ping", True, True),
    ("table.load.votable", True, True),
    ("x-samp.my_type-2", True, True),
    ("a", True, True),
    ("table.*", False, True),
    ("*", False, True),
    ("table", True, True),
    ("table.", False, False),
    ("table..load", False, False),
    (".table", False, False),
    ("tab*", False, False),
    ("*.load", False, False),
    ("table.*.votable", False, False),
    ("table load", False, False),
    ("table.lóad", False, False),
    ("", False, False),
]


@pytest.mark.parametrize(("text", "mtype", "pattern"), MTYPES)
def test_mtype_syntax_has_one_home(text: str, mtype: bool, pattern: bool) -> None:
    assert is_valid_mtype(text) is mtype
    assert is_valid_pattern(text) is pattern
    assert (re.match(MTYPE_SYNTAX, text) is not None) is mtype
    assert (re.match(MTYPE_PATTERN_SYNTAX, text) is not None) is pattern
    for is_pattern, valid in ((False, mtype), (True, pattern)):
        if valid:
            assert check_mtype(text, pattern=is_pattern) == text
        else:
            with pytest.raises(ValueError):
                check_mtype(text, pattern=is_pattern)


@pytest.mark.parametrize(("text", "mtype", "pattern"), MTYPES)
def test_the_rule_file_schema_uses_the_same_syntax(text: str, mtype: bool,
                                                   pattern: bool) -> None:
    schema = json_schema()
    doc = {"rules": [{"name": "r", "on": {"mtype": text}, "do": [{"log": "x"}]}]}
    if pattern:
        jsonschema.validate(doc, schema)
    else:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(doc, schema)
