"""What actions work with: the firing's context and the engine's outbox.

All outgoing SAMP traffic goes through :class:`Outbox`, which resolves recipients by name,
records every message for loop prevention and for the trace, and in a dry run sends nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ...samp.types import encode_value
from ..clients import ClientDirectory
from ..errors import ActionError, NotConnected, RecipientMissing
from ..events import Event, SampMessage
from ..expr import Template
from ..guard import EchoGuard
from ..messenger import Messenger
from ..model import Rule
from ..services import RuleServices
from ..trace import FiringRecord

__all__ = ["ActionContext", "Outbox", "WaitHook", "human_duration", "to_samp"]

log = logging.getLogger("sampflow.rules")


def to_samp(value: Any) -> Any:
    """Make ``value`` a SAMP value: `sampflow.samp.types.encode_value` (strings, lists and
    string-keyed maps; numbers as decimal strings, booleans ``"1"``/``"0"``, ``None`` ``""``).

    Examples
    --------
    >>> to_samp({"row": 3, "ok": True, "list": [1.5, None]})
    {'row': '3', 'ok': '1', 'list': ['1.5', '']}
    """
    return encode_value(value)


class Outbox:
    """Sends on behalf of actions; see the module docstring."""

    def __init__(self, messenger: Messenger | None, directory: ClientDirectory,
                 guard: EchoGuard, *, dry_run: bool = False) -> None:
        self.messenger = messenger
        self.directory = directory
        self.guard = guard
        self.dry_run = dry_run
        self._lanes: dict[str, asyncio.Lock] = {}

    @property
    def own_ids(self) -> set[str]:
        """The engine's own id and the hub's: never recipients of broadcasts."""
        if self.messenger is None:
            return set()
        return {i for i in (self.messenger.public_id, self.messenger.hub_id) if i}

    async def resolve(self, to: Iterable[Template], ns: dict[str, Any], *, mtype: str,
                      exclude: Iterable[Template] = (), required: bool = False,
                      subscribed: bool = False) -> list[str]:
        """Recipient ids: ``to`` rendered and looked up by name (or, if empty, every client
        subscribed to ``mtype``), minus ``exclude``, the engine and the hub.

        Parameters
        ----------
        to, exclude : iterable of Template
            Recipients and clients to leave out (``samp.name`` globs, public ids, ``sender``).
        ns : dict
            The firing's namespace.
        mtype : str
            The MType to be sent.
        required : bool
            Raise when the result would be empty.
        subscribed : bool
            Count a client named in `to` only if it is subscribed to `mtype` (a client that
            has registered but not yet declared its subscriptions is not there yet).

        Returns
        -------
        list of str
            Public ids, without duplicates, in order.

        Raises
        ------
        RecipientMissing
            If a name in `to` matches no (subscribed) client, or `required` and none is left.
        """
        to = tuple(to)
        ids: list[str] = []
        check = subscribed and self.messenger is not None
        if to:
            for pattern in self._names(to, ns):
                found = await self._lookup(pattern, ns)
                if check:
                    found = [i for i in found
                             if self.directory.is_client_subscribed(i, mtype)]
                if not found:
                    raise RecipientMissing(pattern, mtype if check else None)
                ids.extend(found)
        elif self.messenger is not None:
            ids = list(await self.messenger.get_subscribed_clients(mtype))
        skip = set(self.own_ids)
        for pattern in self._names(exclude, ns):
            skip.update(await self._lookup(pattern, ns, refresh=False))
        out = list(dict.fromkeys(i for i in ids if i not in skip))
        if required and not out:
            raise RecipientMissing("*", mtype)
        return out

    def lane(self, recipient_id: str) -> asyncio.Lock:
        """The lock that makes confirmed loads to one recipient go one at a time.

        DS9 and TOPCAT load one file at a time anyway; queueing here rather than in the hub
        keeps at most one load per recipient in flight, so a killed engine re-sends at most
        one file per recipient at its next start.
        """
        lock = self._lanes.get(recipient_id)
        if lock is None:
            lock = self._lanes[recipient_id] = asyncio.Lock()
        return lock

    def names(self, to: Iterable[Template], ns: dict[str, Any]) -> list[str]:
        """The recipients of `to` as written after rendering (``["*"]`` when `to` is empty)."""
        return self._names(tuple(to), ns) or ["*"]

    def _require_hub(self) -> None:
        if not self.dry_run and self.messenger is None:
            raise NotConnected("not connected to a SAMP hub: nothing was sent")

    @staticmethod
    def _names(templates: Iterable[Template], ns: dict[str, Any]) -> list[str]:
        names: list[str] = []
        for t in templates:
            v = t.render(ns)
            names.extend(str(x) for x in (v if isinstance(v, (list, tuple)) else [v]))
        return names

    async def _lookup(self, pattern: str, ns: dict[str, Any], refresh: bool = True) -> list[str]:
        sender = ns.get("sender")
        if pattern == "sender":
            return [sender.id] if sender is not None else []
        if self.messenger is None:  # dry run without a hub: keep the names
            return [pattern]
        return (await self.directory.resolve(pattern) if refresh
                else self.directory.find(pattern))

    async def notify(self, record: FiringRecord, action: str, to: str, mtype: str,
                     params: Any) -> None:
        """Send a notification (or, in a dry run, record that it would be sent)."""
        self._require_hub()
        msg = {"samp.mtype": mtype, "samp.params": to_samp(params)}
        entry = self._entry(action, to, msg)
        t0 = time.perf_counter()
        self.guard.note_sent(mtype, msg["samp.params"], record.event.get("sender_id"))
        try:
            if not self.dry_run and self.messenger is not None:
                await self.messenger.notify(to, msg)
        except Exception as exc:
            entry["error"] = str(exc)
            raise ActionError(f"notify {entry['to_name'] or to} with {mtype}: {exc}") from exc
        finally:
            entry["duration_ms"] = round((time.perf_counter() - t0) * 1000, 3)
            record.sent.append(entry)

    async def call(self, record: FiringRecord, action: str, to: str, mtype: str, params: Any,
                   timeout: float) -> dict[str, Any]:
        """Call and wait; returns the response map (``samp.ok`` in a dry run)."""
        self._require_hub()
        msg = {"samp.mtype": mtype, "samp.params": to_samp(params)}
        entry = self._entry(action, to, msg)
        t0 = time.perf_counter()
        self.guard.note_sent(mtype, msg["samp.params"], record.event.get("sender_id"))
        try:
            if self.dry_run or self.messenger is None:
                response: dict[str, Any] = {"samp.status": "samp.ok", "samp.result": {}}
            else:
                response = await self.messenger.call_and_wait(to, msg, timeout)
            entry["response"] = response
            return response
        except Exception as exc:
            entry["error"] = str(exc) or type(exc).__name__
            raise ActionError(f"call {entry['to_name'] or to} with {mtype}: "
                              f"{entry['error']}") from exc
        finally:
            entry["duration_ms"] = round((time.perf_counter() - t0) * 1000, 3)
            record.sent.append(entry)

    def _entry(self, action: str, to: str, msg: dict[str, Any]) -> dict[str, Any]:
        name = self.directory.name_of(to)
        if self.dry_run:
            log.info("dry run: would send %s to %s: %s", msg["samp.mtype"], name or to,
                     msg["samp.params"])
        return {"action": action, "to": to, "to_name": name, "mtype": msg["samp.mtype"],
                "params": msg["samp.params"], "dry_run": self.dry_run}


def human_duration(seconds: float) -> str:
    """``7200`` -> ``'2h'``, ``90`` -> ``'1m30s'``, ``0.5`` -> ``'0.5s'`` (for log lines).

    >>> human_duration(7200), human_duration(90), human_duration(0.5)
    ('2h', '1m30s', '0.5s')
    """
    if seconds < 60:
        return f"{seconds:g}s"
    out, rest = "", int(round(seconds))
    for unit, size in (("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            out += f"{rest // size}{unit}"
            rest %= size
    return out


#: ``on_wait(ctx, reason, hold_until)``: an action starts waiting for a recipient (``reason``
#: says for what, ``hold_until`` is a Unix time), or stops (both None).
WaitHook = Callable[["ActionContext", "str | None", "float | None"], None]


@dataclass
class ActionContext:
    """One firing as its actions see it.

    ``ns`` is the expression namespace (actions add ``response``, ``result`` and
    ``responses``); ``reply`` is the response a ``reply`` action set for the incoming call.
    ``on_wait`` is told when an action waits for a recipient (the engine records it in the
    delivery ledger and says so on the log). ``services`` is what else of the engine an
    action may use (:class:`~sampflow.rules.services.RuleServices`).
    """

    rule: Rule
    event: Event
    ns: dict[str, Any]
    record: FiringRecord
    outbox: Outbox
    services: RuleServices
    reply: dict[str, Any] | None = None
    notes: dict[str, Any] = field(default_factory=dict)
    on_wait: WaitHook | None = None

    async def _reconnected(self, within: float) -> None:
        """Wait up to `within` seconds for the engine to be connected again (the hub went
        away: a held send waits for the hub as it waits for its recipient).

        Raises
        ------
        NotConnected
            If it is not connected by then.
        """
        if within > 0:
            try:
                await asyncio.wait_for(self.services.ready.wait(), within)
            except TimeoutError:
                pass
        if self.outbox.messenger is None:
            raise NotConnected("not connected to a SAMP hub: nothing was sent")

    async def recipients(self, to: Iterable[Template], mtype: str, hold: float, *,
                         exclude: Iterable[Template] = (), required: bool = True) -> list[str]:
        """Resolve recipients as `Outbox.resolve` does, waiting up to `hold` seconds for one
        that is not registered (or not subscribed to `mtype`) yet: the ``hold:`` option.

        The wait is woken by the hub's registration and subscription events; `on_wait` is
        told when it starts and ends. A dry run neither waits nor checks subscriptions.

        Parameters
        ----------
        to, exclude : iterable of Template
            As for `Outbox.resolve`.
        mtype : str
            The MType to be sent; recipients must be subscribed to it.
        hold : float
            Seconds to wait in all; 0 fails at once.
        required : bool
            Whether an empty result (no client subscribed at all) is missing too.

        Returns
        -------
        list of str
            Public ids.

        Raises
        ------
        RecipientMissing
            If the recipients are still missing when `hold` runs out.
        """
        to, exclude = tuple(to), tuple(exclude)
        if self.outbox.dry_run:  # report what would be sent now; never wait for anyone
            return await self.outbox.resolve(to, self.ns, mtype=mtype, exclude=exclude,
                                             required=required)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + hold
        waiting = False
        try:
            while True:
                if self.outbox.messenger is None:
                    await self._reconnected(deadline - loop.time())
                try:
                    return await self.outbox.resolve(to, self.ns, mtype=mtype, exclude=exclude,
                                                     required=required, subscribed=True)
                except RecipientMissing as exc:
                    left = deadline - loop.time()
                    if left <= 0 or self.outbox.messenger is None:
                        if waiting:
                            raise RecipientMissing(exc.pattern, exc.mtype) from None
                        raise
                    if not waiting:
                        waiting = True
                        if self.on_wait is not None:
                            self.on_wait(self, f"{exc} (held up to {human_duration(hold)})",
                                         time.time() + left)
                    try:
                        await self.outbox.directory.wait_for(
                            exc.pattern, exc.mtype or mtype, left,
                            exclude=self.outbox.own_ids)
                    except TimeoutError:
                        pass
        except asyncio.CancelledError:
            waiting = False  # the engine is stopping: the file stays waiting for next time
            raise
        finally:
            if waiting and self.on_wait is not None:
                self.on_wait(self, None, None)

    def message(self) -> SampMessage:
        """The incoming SAMP message, or ActionError if the rule was not fired by one."""
        if not isinstance(self.event, SampMessage):
            raise ActionError("this action needs a rule fired by a SAMP message")
        return self.event
