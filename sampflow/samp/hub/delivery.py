"""Outbound callbacks from the hub to its clients (SAMP 1.3 section 4.2.4).

One `Deliverer` per hub, for the Standard Profile's clients (the Standard Profile hands it
their deliveries; the Web Profile queues its own for ``pullCallbacks``). Each (sender,
recipient) pair gets its own FIFO lane drained by its own task, created on demand and gone
once empty: messages from one sender to one recipient arrive in the order sent (the only
order SAMP needs), different senders reach one recipient in parallel, and a slow or dead
client only ever delays its own lanes. Callbacks are XML-RPC POSTs through one pooled
keep-alive `HttpClient` with a timeout on every request. A big message
(`sampflow.samp.xmlrpc.is_large`) is encoded on a worker thread, so that relaying it does not
hold up the loop.

Failures stay local to the one delivery that failed: whatever goes wrong (the client refused,
timed out, faulted, answered garbage, or the message could not even be encoded) is reported
through ``on_failure`` and the lane goes on with the next delivery; a failed call is answered
with an error by the core at once.

Lanes are bounded: a lane holding `MAX_QUEUE` deliveries means the recipient does not keep
up (a callback that accepts connections but never answers, say). The recipient is then
treated as dead (SAMP 1.3 section 3.4 lets a hub unregister clients it cannot reach): its
deliveries are dropped, ``on_failure`` is told with ``dead=True`` (the core unregisters it,
answers the calls it owed and tells the others with ``samp.hub.event.unregister``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from ..wire import HttpClient, ServerDisconnected
from ..xmlrpc import Fault, MalformedRequest, dumps_request, is_large, loads_response
from .core import Delivery
from .registry import ClientRecord

__all__ = ["Deliverer", "DeliveryOutcome"]

#: A delivery lane: (recipient, public id of the sender or responder).
Lane = tuple[ClientRecord, str]

log = logging.getLogger("sampflow.hub")

#: Deliveries one (sender, recipient) lane may hold before the recipient is deemed dead.
MAX_QUEUE = 5000

#: ``outcome(delivery, error, dead)``: called after every failed delivery.
DeliveryOutcome = Callable[[Delivery, str, bool], None]


class Deliverer:
    """XML-RPC callbacks to Standard Profile clients, in order per (sender, recipient) lane.

    Not one queue per recipient: each pair of sender (or responder) and recipient has its own
    lane and its own task, so one recipient receives from several senders in parallel, each
    sender's deliveries in the order submitted.

    Parameters
    ----------
    on_failure : callable
        ``on_failure(delivery, reason, dead)``, called on the event loop when a delivery
        fails; `dead` is True when the callback endpoint refused the connection, or the
        lane overflowed (`max_queue`): the recipient is then to be removed.
    timeout : float
        Seconds allowed for one callback request (connect, send and answer).
    max_queue : int
        Deliveries one lane may hold; one more and the recipient is deemed dead.
    """

    def __init__(self, on_failure: DeliveryOutcome, timeout: float = 30.0,
                 max_queue: int = MAX_QUEUE) -> None:
        self._on_failure = on_failure
        self._timeout = timeout
        self.max_queue = max_queue
        #: Recipients found overflowing, whose removal is under way (until `forget`).
        self._condemned: set[ClientRecord] = set()
        self._lanes: dict[Lane, deque[Delivery]] = {}
        self._tasks: dict[Lane, asyncio.Task[None]] = {}
        self._senders: dict[ClientRecord, set[str]] = {}
        self._http = HttpClient(user_agent="sampflow-hub")
        self._encoder: ThreadPoolExecutor | None = None  # one thread, for big messages

    @property
    def connections_opened(self) -> int:
        """Callback connections opened so far (kept-alive ones are reused, not counted)."""
        return self._http.connections_opened

    def queued(self) -> int:
        """Deliveries waiting in every lane, the ones being delivered included."""
        return sum(len(lane) for lane in self._lanes.values())

    def submit(self, delivery: Delivery) -> None:
        """Queue `delivery` in its (sender, recipient) lane; never blocks."""
        recipient = delivery.recipient
        if recipient in self._condemned:
            return  # being removed: the core answers the calls it owed
        key = (recipient, delivery.args[0])  # the sender's (or responder's) public id
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = deque()
            self._senders.setdefault(recipient, set()).add(key[1])
            self._tasks[key] = asyncio.get_running_loop().create_task(
                self._drain(key, lane), name=f"samp-deliver-{key[1]}-{recipient.public_id}")
        elif len(lane) >= self.max_queue:
            self._overflow(delivery, len(lane))
            return
        lane.append(delivery)

    def _overflow(self, delivery: Delivery, waiting: int) -> None:
        """`delivery`'s lane is full: drop it, and have the recipient removed, once."""
        self._condemned.add(delivery.recipient)
        reason = (f"{waiting} deliveries are waiting for it: it does not take them "
                  f"(the bound is {self.max_queue})")
        # Not from inside `submit`: the caller is still handing out the outputs of a request.
        asyncio.get_running_loop().call_soon(self._report, delivery, reason, True)

    def _report(self, delivery: Delivery, reason: str, dead: bool) -> None:
        try:
            self._on_failure(delivery, reason, dead)
        except Exception:  # a bug there must not stop the lane or the loop
            log.exception("handling the failed delivery of %s to %s failed", delivery.method,
                          delivery.recipient.public_id)

    def forget(self, recipient: ClientRecord) -> None:
        """Drop `recipient`'s lanes and what is still in them (it left the hub; the core has
        already answered the calls it owed)."""
        self._condemned.discard(recipient)
        for sender in self._senders.pop(recipient, ()):
            self._lanes.pop((recipient, sender), None)
            task = self._tasks.pop((recipient, sender), None)
            if task is not None:
                task.cancel()

    async def _drain(self, key: Lane, lane: deque[Delivery]) -> None:
        try:
            while lane:
                delivery = lane[0]
                try:
                    await self._deliver(delivery)
                except Exception as exc:  # a bug or an unforeseen error: this delivery only
                    log.exception("delivering %s to %s failed", delivery.method,
                                  delivery.recipient.public_id)
                    self._report(delivery, f"internal error: {type(exc).__name__}: {exc}",
                                 False)
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
            self._report(delivery, "client has no callback", False)
            return
        method = f"samp.client.{delivery.method}"
        args = (recipient.private_key, *delivery.args)
        try:
            if is_large(delivery.args[-1]):  # a big message: encoded off the loop
                if self._encoder is None:
                    self._encoder = ThreadPoolExecutor(1, thread_name_prefix="sampflow-encode")
                body = await asyncio.get_running_loop().run_in_executor(
                    self._encoder, dumps_request, method, args)
            else:
                body = dumps_request(method, args)
        except (TypeError, ValueError, OverflowError) as exc:
            self._report(delivery, f"the message cannot be encoded: {exc}", False)
            return
        try:
            status, payload = await self._http.post(url, body, timeout=self._timeout)
            if status != 200:
                raise MalformedRequest(f"HTTP {status}")
            loads_response(payload)
        except ConnectionRefusedError as exc:
            self._report(delivery, f"callback {url} refused the connection ({exc})", True)
        except TimeoutError:
            self._report(delivery, f"callback {url} timed out", False)
        except Fault as fault:
            self._report(delivery, f"client fault: {fault.faultString}", False)
        except (ServerDisconnected, MalformedRequest, OSError) as exc:
            self._report(delivery, f"callback {url} failed: {exc}", False)

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
        self._condemned.clear()
        if self._encoder is not None:
            self._encoder.shutdown(wait=False, cancel_futures=True)
            self._encoder = None
        await self._http.close()
