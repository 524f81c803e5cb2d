"""Trigger platform for SAMP messages:
``on: {mtype: PATTERN, from: GLOB, profile: standard|web|any, params: {K: GLOB}}``.

A ``samp.name`` is whatever a client says it is, and a web page (Web Profile, SAMP 1.3
section 5) may call itself ``topcat``. So ``from:`` globs match only senders that are not
web pages, unless the trigger says ``profile: web`` (or ``any``): a rule written for a
desktop tool does not relay what a browser page sends in its name. Without ``from:`` and
``profile:``, every sender matches. The sender's profile comes from the hub
(``SampMessage.sender_profile``); hubs other than sampflow's cannot tell (None), and then only
the default and ``any`` match.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import Any

from ...samp.names import client_matches
from ..events import Event, SampMessage
from ..model import MTypeTrigger
from .bus import EventBus

__all__ = ["attach", "matches", "profile_matches"]

#: Profiles the hub reports that count as ``standard``: desktop tools and the hub itself.
_STANDARD = ("standard", "hub")


def profile_matches(config: MTypeTrigger, profile: str | None) -> bool:
    """Whether a sender connected through ``profile`` may fire ``config``.

    Parameters
    ----------
    config : MTypeTrigger
        The trigger; its ``profiles`` (empty for the default) and ``senders``.
    profile : str or None
        ``"standard"``, ``"web"``, ``"hub"``, ``"link"`` (a proxy of a client of a linked
        hub, which may be a web page there: it matches ``from:`` only through a ``NAME@HUB``
        pattern), or None when the hub cannot tell.

    Examples
    --------
    >>> t = MTypeTrigger(("table.*",), senders=("topcat",))
    >>> profile_matches(t, "standard"), profile_matches(t, "web"), profile_matches(t, None)
    (True, False, True)
    >>> web = MTypeTrigger(("table.*",), senders=("topcat",), profiles=frozenset({"web"}))
    >>> profile_matches(web, "web"), profile_matches(web, "standard")
    (True, False)
    >>> profile_matches(MTypeTrigger(("table.*",)), "web")   # no from: any sender
    True
    """
    wanted = config.profiles
    if not wanted:
        if profile == "link":  # a proxy of another hub's client: only when named as such
            return not config.senders or any("@" in p for p in config.senders)
        return not config.senders or profile is None or profile in _STANDARD
    if "any" in wanted:
        return True
    if profile in _STANDARD:
        return "standard" in wanted
    return profile == "web" and "web" in wanted


def matches(config: MTypeTrigger, msg: SampMessage) -> bool:
    """Whether the sender and params of ``msg`` satisfy ``config`` (the MType is the index's job).

    ``from:`` patterns pick the sender by the one name rule (`sampflow.samp.names`): its
    exact public id, or its ``samp.name`` as a case-insensitive glob (a sender with no known
    name matches only ``*``); ``NAME@HUB`` matches the proxy of client ``NAME`` of linked hub
    ``HUB`` (``*@desk3``: anything from desk3). The sender's profile must suit the trigger
    (`profile_matches`).
    """
    if not profile_matches(config, msg.sender_profile):
        return False
    if config.senders and not any(client_matches(p, msg.sender_id, msg.sender_name)
                                  for p in config.senders):
        return False
    for key, pattern in config.params:
        value = msg.params.get(key)
        if not isinstance(value, str) or not fnmatch.fnmatchcase(value, pattern):
            return False
    return True


def attach(config: MTypeTrigger, fire: Callable[[Event], Any], bus: EventBus
           ) -> Callable[[], None]:
    """Listen on ``bus`` for messages matching ``config``; returns the detach function."""

    def listener(event: Event) -> Any:
        if isinstance(event, SampMessage) and matches(config, event):
            return fire(event)
        return None

    removers = [bus.on_mtype(p, listener) for p in config.mtypes]

    def detach() -> None:
        for r in removers:
            r()
    return detach
