"""Outbound callbacks from the hub to its clients (SAMP 1.3 section 4.2.4).

One `Deliverer` per hub. Each recipient gets its own FIFO queue drained by its own task, so
messages from one sender to one recipient arrive in the order sent, and a slow or dead
client only ever delays its own queue. Standard Profile callbacks are XML-RPC POSTs over a
pooled aiohttp session with keep-alive and a timeout on every request; Web Profile
callbacks go to the sink the Web Profile transport installs (its pull queues).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import aiohttp

from ..xmlrpc import Fault, MalformedRequest, dumps_request, loads_response
from .core import Delivery
from .registry import ClientRecord, Profile

__all__ = ["Deliverer", "DeliveryOutcome"]

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
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=min(timeout, 10.0))
        self._queues: dict[ClientRecord, asyncio.Queue[Delivery]] = {}
        self._tasks: dict[ClientRecord, asyncio.Task[None]] = {}
        self._session: aiohttp.ClientSession | None = None
        #: Where Web Profile deliveries go; set by the Web Profile transport.
        self.web_sink: Callable[[Delivery], None] | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=30, force_close=False)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                skip_auto_headers=("User-Agent",),
                headers={"Content-Type": "text/xml"},
            )
        return self._session

    def submit(self, delivery: Delivery) -> None:
        """Queue `delivery` for its recipient; never blocks."""
        recipient = delivery.recipient
        if recipient.profile is Profile.WEB:
            if self.web_sink is not None:
                self.web_sink(delivery)
            return
        queue = self._queues.get(recipient)
        if queue is None:
            queue = self._queues[recipient] = asyncio.Queue()
            self._tasks[recipient] = asyncio.get_running_loop().create_task(
                self._drain(recipient, queue), name=f"samp-deliver-{recipient.public_id}"
            )
        queue.put_nowait(delivery)

    def forget(self, recipient: ClientRecord) -> None:
        """Drop `recipient`'s queue and what is still in it (it left the hub; the core has
        already answered the calls it owed)."""
        self._queues.pop(recipient, None)
        task = self._tasks.pop(recipient, None)
        if task is not None:
            task.cancel()

    async def _drain(self, recipient: ClientRecord, queue: asyncio.Queue[Delivery]) -> None:
        while True:
            delivery = await queue.get()
            await self._deliver(delivery)
            queue.task_done()

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
            async with self._get_session().post(url, data=body) as response:
                payload = await response.read()
            if response.status != 200:
                raise MalformedRequest(f"HTTP {response.status}")
            loads_response(payload)
        except (aiohttp.ClientConnectorError, ConnectionRefusedError) as exc:
            self._on_failure(delivery, f"callback {url} refused the connection ({exc})", True)
        except asyncio.TimeoutError:
            self._on_failure(delivery, f"callback {url} timed out", False)
        except Fault as fault:
            self._on_failure(delivery, f"client fault: {fault.faultString}", False)
        except (aiohttp.ClientError, MalformedRequest, OSError) as exc:
            self._on_failure(delivery, f"callback {url} failed: {exc}", False)

    async def flush(self, timeout: float) -> None:
        """Wait up to `timeout` seconds for every queue to empty (used before shutdown)."""
        joins = [asyncio.ensure_future(q.join()) for q in self._queues.values()]
        if joins:
            _, late = await asyncio.wait(joins, timeout=timeout)
            for join in late:
                join.cancel()

    async def close(self) -> None:
        """Cancel every delivery task and close the HTTP session."""
        for task in self._tasks.values():
            task.cancel()
        self._tasks.clear()
        self._queues.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None
