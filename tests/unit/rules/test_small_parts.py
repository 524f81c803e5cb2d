"""Doctests of the rules modules, the MType index and the echo guard."""

from __future__ import annotations

import doctest
import importlib

import pytest

from sampflow.rules.events import HubEvent, SampMessage
from sampflow.rules.guard import EchoGuard
from sampflow.rules.triggers.bus import EventBus

MODULES = ["sampflow.rules.expr", "sampflow.rules.loader", "sampflow.rules.model",
           "sampflow.rules.guard", "sampflow.rules.actions.base",
           "sampflow.rules.actions.tables"]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.failed == 0 and result.attempted > 0


def test_bus_index_matches_on_atom_boundaries_in_order() -> None:
    bus = EventBus()
    seen: list[str] = []
    for p in ("table.*", "*", "table.load.votable", "tablefoo.*", "table.load.*"):
        bus.on_mtype(p, lambda e, p=p: seen.append(p))
    bus.on_hub("registered", lambda e: seen.append("hub"))
    bus.publish(SampMessage("notification", "c1", None, "table.load.votable", {}))
    assert seen == ["table.*", "*", "table.load.votable", "table.load.*"]
    seen.clear()
    bus.publish(HubEvent("registered", "c2", "x"))
    assert seen == ["hub"]
    assert bus.mtype_patterns() == {"table.*", "*", "table.load.votable", "tablefoo.*",
                                    "table.load.*"}


def test_echo_guard_window() -> None:
    now = [0.0]
    g = EchoGuard(2.0, clock=lambda: now[0])
    g.note_sent("a.b", {"x": "1"})
    assert g.is_echo("a.b", {"x": "1"}, "c1")          # our own message coming back
    assert not g.is_echo("a.b", {"x": "2"}, "c1")
    assert not g.is_echo("a.b", {"x": "2"}, "c1")      # same sender repeating: heard
    assert g.is_echo("a.b", {"x": "2"}, "c9")          # another peer's re-broadcast
    now[0] = 5.0
    assert not g.is_echo("a.b", {"x": "1"}, "c1")      # window passed
    assert not EchoGuard(0).is_echo("a.b", {}, "c")
