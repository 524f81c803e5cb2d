"""Outbound callbacks from the hub to its clients (SAMP 1.3 section 4.2.4).

One `Deliverer` per hub. Each (sender, recipient) pair gets its own FIFO lane drained by its
own task, created on demand and gone once empty: messages from one sender to one recipient
arrive in the order sent (the only order SAMP needs), different senders reach one recipient
in parallel, and a slow or dead client only ever delays its own lanes. Standard Profile
callbacks are XML-RPC POSTs through one pooled keep-alive `HttpClient` with a timeout on
every request; Web Profile callbacks go to the sink the Web Profile transport installs (its
pull queues).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable

from ..wire import HttpClient, ServerDisconnected
from ..xmlrpc import Fault, MalformedRequest, dumps_request, loads_response
from .core import Delivery
from .registry import ClientRecord, Profile

__all__ = ["Deliverer", "DeliveryOutcome"]

#: A delivery lane: (recipient, public id of the sender or responder).
Lane = tuple[ClientRecord, str]

log = logging.getLogger("sampflow.hub")

#: ``outcome(delivery, error, dead)``: called after every failed delivery.
DeliveryOutcome = Callable[[Delivery, str, bool], None]


class Deliverer:
    """Per-recipient ordered delivery of `Delivery` objects.

    Parameters
    ----------
    on_failure : callable
        ``on_failure(delivery, reason, dead)``, called on the event loop when a delivery
        fails; `dead` is True when the callback endpoint refused the connection.
    timeout : float
        Seconds allowed for one callback request (connect, send and answer).
    """

    def __init__(self, on_failure: DeliveryOutcome, timeout: float = 30.0) -> None:
        self._on_failure = on_failure
        self._timeout = timeout
        self._lanes: dict[Lane, deque[Delivery]] = {}
        self._tasks: dict[Lane, asyncio.Task[None]] = {}
        self._senders: dict[ClientRecord, set[str]] = {}
        self._http = HttpClient(user_agent="sampflow-hub")
        #: Where Web Profile deliveries go; set by the Web Profile transport.
        self.web_sink: Callable[[Delivery], None] | None = None
        #: Profile -> sink for clients that an attached profile hosts (`profiles.attach`).
        self.sinks: dict[Profile, Callable[[Delivery], None]] = {}

    def submit(self, delivery: Delivery) -> None:
        """Queue `delivery` in its (sender, recipient) lane; never blocks."""
        recipient = delivery.recipient
        sink = self.sinks.get(recipient.profile)
        if sink is not None:
            sink(delivery)
            return
        if recipient.profile is Profile.WEB:
            if self.web_sink is not None:
                self.web_sink(delivery)
            return
        key = (recipient, delivery.args[0])  # the sender's (or responder's) public id
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = deque()
            self._senders.setdefault(recipient, set()).add(key[1])
            self._tasks[key] = asyncio.get_running_loop().create_task(
                self._drain(key, lane), name=f"samp-deliver-{key[1]}-{recipient.public_id}")
        lane.append(delivery)

    def forget(self, recipient: ClientRecord) -> None:
        """Drop `recipient`'s lanes and what is still in them (it left the hub; the core has
        already answered the calls it owed)."""
        for sender in self._senders.pop(recipient, ()):
            self._lanes.pop((recipient, sender), None)
            task = self._tasks.pop((recipient, sender), None)
            if task is not None:
                task.cancel()

    async def _drain(self, key: Lane, lane: deque[Delivery]) -> None:
        try:
            while lane:
                await self._deliver(lane[0])
                lane.popleft()
        finally:
            # An empty lane goes away (no await since the loop test, so nothing was added);
            # a cancelled one was already removed by `forget`.
            if self._tasks.get(key) is asyncio.current_task():
                del self._tasks[key], self._lanes[key]
                senders = self._senders.get(key[0])
                if senders is not None:
                    senders.discard(key[1])
                    if not senders:
                        del self._senders[key[0]]

    async def _deliver(self, delivery: Delivery) -> None:
        recipient = delivery.recipient
        url = recipient.callback
        if not url:
            self._on_failure(delivery, "client has no callback", False)
            return
        body = dumps_request(
            f"samp.client.{delivery.method}", (recipient.private_key, *delivery.args)
        )
        try:
            status, payload = await self._http.post(url, body, timeout=self._timeout)
            if status != 200:
                raise MalformedRequest(f"HTTP {status}")
            loads_response(payload)
        except ConnectionRefusedError as exc:
            self._on_failure(delivery, f"callback {url} refused the connection ({exc})", True)
        except TimeoutError:
            self._on_failure(delivery, f"callback {url} timed out", False)
        except Fault as fault:
            self._on_failure(delivery, f"client fault: {fault.faultString}", False)
        except (ServerDisconnected, MalformedRequest, OSError) as exc:
            self._on_failure(delivery, f"callback {url} failed: {exc}", False)

    async def flush(self, timeout: float) -> None:
        """Wait up to `timeout` seconds for every lane to empty (used before shutdown)."""
        tasks = list(self._tasks.values())
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)

    async def close(self) -> None:
        """Cancel every delivery task and close the HTTP connections."""
        for task in self._tasks.values():
            task.cancel()
        self._tasks.clear()
        self._lanes.clear()
        self._senders.clear()
        await self._http.close()
