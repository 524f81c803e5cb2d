"""The one rule for naming a client (`sampflow.samp.names`), as a table of cases, and every
place the rules engine names a client giving that rule's answer: ``to:`` and ``registered()``
(the client directory), ``from:`` (message triggers), ``registered:`` and the other hub event
triggers, and the expressions' ``clients()`` and ``match()``. (``sampflow send --to`` and
`find_client_id` are checked against a real hub in tests/integration/test_client_names.py.)"""

from __future__ import annotations

from typing import Any

import pytest

from sampflow.rules.clients import ClientDirectory
from sampflow.rules.events import HubEvent, SampMessage
from sampflow.rules.expr import build_namespace, compile_condition, compile_template
from sampflow.rules.model import HubTrigger, MTypeTrigger
from sampflow.rules.triggers import hub as hub_trigger
from sampflow.rules.triggers import samp as samp_trigger
from sampflow.rules.triggers.bus import EventBus
from sampflow.samp.names import client_matches, glob_matches, select_clients

# (pattern, public id, samp.name or None, picked?)
CASES = [
    # samp.name, whole and case-insensitive: what TOPCAT, DS9 and Aladin users type
    ("topcat", "c1", "topcat", True),
    ("TOPCAT", "c1", "topcat", True),
    ("Aladin", "c2", "Aladin", True),
    ("aladin", "c2", "Aladin", True),
    ("SAOImageDS9", "c3", "SAOImageDS9", True),
    ("saoimageds9", "c3", "SAOImageDS9", True),
    ("SAOImage*", "c3", "SAOImageDS9", True),
    ("*ds9", "c3", "SAOImageDS9", True),
    ("aladin*", "c2", "Aladin", True),
    ("top?at", "c1", "topcat", True),
    ("[st]opcat", "c1", "topcat", True),
    # never a substring: DS9's samp.name is SAOImageDS9, so a bare "ds9" does not pick it
    ("ds9", "c3", "SAOImageDS9", False),
    ("topcat", "c4", "topcat-2", False),
    ("topcat", "c5", "my topcat", False),
    ("Aladin", "c1", "topcat", False),
    # public ids: exactly, case and all; never globbed
    ("c3", "c3", "Aladin", True),
    ("C3", "c3", "Aladin", False),
    ("c*", "c3", "Aladin", False),
    ("c3", "c33", "Aladin", False),
    # NAME@HUB: the link's proxy of client NAME of hub HUB
    ("SAOImageDS9@desk3", "c9", "SAOImageDS9 (proxy@desk3)", True),
    ("saoimageds9@DESK3", "c9", "SAOImageDS9 (proxy@desk3)", True),
    ("*@desk3", "c9", "SAOImageDS9 (proxy@desk3)", True),
    ("*@desk*", "c9", "topcat (proxy@desk12)", True),
    ("SAOImageDS9@desk4", "c9", "SAOImageDS9 (proxy@desk3)", False),
    ("SAOImageDS9", "c9", "SAOImageDS9 (proxy@desk3)", False),
    ("SAOImageDS9@desk3", "c3", "SAOImageDS9", False),
    ("topcat (proxy@A)", "c9", "topcat (proxy@A)", True),
    # a client with no samp.name: its id, or a glob that matches the empty name
    ("*", "c6", None, True),
    ("c6", "c6", None, True),
    ("a*", "c6", None, False),
    ("*", "c6", "", True),
    ("*", "c1", "topcat", True),
]


@pytest.mark.parametrize(("pattern", "client_id", "name", "picked"), CASES)
def test_client_matches(pattern: str, client_id: str, name: str | None, picked: bool) -> None:
    assert client_matches(pattern, client_id, name) is picked


@pytest.mark.parametrize(("text", "pattern", "expected"), [
    ("m31.FITS", "*.fits", True),
    ("SAOImageDS9", "saoimage*", True),
    ("SAOImageDS9", "ds9", False),
    ("", "*", True),
    ("", "?", False),
])
def test_glob_matches(text: str, pattern: str, expected: bool) -> None:
    assert glob_matches(text, pattern) is expected


CLIENTS = {"hub": "Hub", "c1": "topcat", "c2": "SAOImageDS9", "c3": "c1", "c4": None,
           "c5": "TOPCAT"}


@pytest.mark.parametrize(("pattern", "ids"), [
    ("topcat", ["c1", "c5"]),        # every client of that name, in the order given
    ("c1", ["c1"]),                  # a public id picks that client alone (not c3, named c1)
    ("c3", ["c3"]),
    ("*", ["hub", "c1", "c2", "c3", "c4", "c5"]),
    ("saoimage*", ["c2"]),
    ("ds9", []),
    ("nobody", []),
])
def test_select_clients(pattern: str, ids: list[str]) -> None:
    assert select_clients(pattern, CLIENTS) == ids


# ------------------------------------------------- the rules engine gives the same answers

@pytest.mark.parametrize(("pattern", "client_id", "name", "picked"), CASES)
def test_the_directory_finds_what_the_rule_picks(pattern: str, client_id: str,
                                                 name: str | None, picked: bool) -> None:
    directory = ClientDirectory()
    directory.add(client_id, name)
    assert directory.find(pattern) == ([client_id] if picked else [])
    assert directory.is_registered(pattern) is picked
    assert directory.names(pattern) == ([name] if picked and name else [])


@pytest.mark.parametrize(("pattern", "client_id", "name", "picked"), CASES)
def test_from_picks_what_the_rule_picks(pattern: str, client_id: str, name: str | None,
                                        picked: bool) -> None:
    trigger = MTypeTrigger(("test.*",), senders=(pattern,))
    message = SampMessage("notification", client_id, name, "test.go", {})
    assert samp_trigger.matches(trigger, message) is picked


@pytest.mark.parametrize(("pattern", "client_id", "name", "picked"), CASES)
def test_hub_event_triggers_pick_what_the_rule_picks(pattern: str, client_id: str,
                                                     name: str | None, picked: bool) -> None:
    bus = EventBus()
    fired: list[Any] = []
    detach = hub_trigger.attach(HubTrigger("unregistered", (pattern,)), fired.append, bus)
    event = HubEvent("unregistered", client_id, name)
    bus.publish(event)
    detach()
    bus.publish(event)
    assert fired == ([event] if picked else [])


@pytest.mark.parametrize(("pattern", "client_id", "name", "picked"), CASES)
def test_expressions_pick_what_the_rule_picks(pattern: str, client_id: str, name: str | None,
                                              picked: bool) -> None:
    directory = ClientDirectory()
    directory.add(client_id, name)
    ns = build_namespace(None, variables={"p": pattern}, hub=directory)
    assert compile_condition("registered(vars.p)").check(ns) is picked
    assert compile_template("{{ clients(vars.p) }}").render(ns) == (
        [name] if picked and name else [])


def test_match_is_the_name_half_of_the_rule() -> None:
    ns = build_namespace(None, variables={"n": "SAOImageDS9"})
    assert compile_condition("match(vars.n, 'saoimage*')").check(ns)
    assert not compile_condition("match(vars.n, 'ds9')").check(ns)
    assert client_matches("saoimage*", "c1", "SAOImageDS9")
