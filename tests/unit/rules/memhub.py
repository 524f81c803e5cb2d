"""The real sans-I/O hub core (`sampflow.samp.hub.core.HubCore`) wired to in-memory clients.

No sockets and no XML-RPC: each client verb calls the core directly, and the core's outputs are
acted on at once, as a transport would. A `Delivery` is recorded in the recipient's `received`
list when the hub hands it out and then handled by a task on the loop (the recipient's
``on_message``, or its ``respond`` for calls); a call's response goes back through
`HubCore.reply`; a `SyncResponse` wakes the ``call_and_wait`` that waits for it. So routing,
subscriptions with wildcards, hub events, the hub's own answers (``samp.app.ping``,
``sampflow.hub.profile``) and errors are the real hub's.

`MemoryClient` satisfies :class:`sampflow.rules.messenger.Messenger`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from sampflow.samp.hub.core import PROFILE_MTYPE, ClientGone, Delivery, HubCore, SyncResponse
from sampflow.samp.hub.registry import ClientRecord, Profile

__all__ = ["MemoryClient", "MemoryHub"]

Respond = Callable[[dict[str, Any]], dict[str, Any]]
OK: dict[str, Any] = {"samp.status": "samp.ok", "samp.result": {}}


class MemoryHub:
    """A `HubCore` and the in-memory clients registered with it.

    Attributes
    ----------
    core : HubCore
        The hub itself.
    clients : dict
        Public id -> `MemoryClient`, for the clients registered now.
    log : list
        ``(sender_id, recipient_id, kind, message)`` for every notification and call the
        hub delivered, in order.
    """

    def __init__(self) -> None:
        self.core = HubCore()
        self.hub_id = self.core.hub.public_id
        self.clients: dict[str, MemoryClient] = {}
        self.log: list[tuple[str, str, str, dict[str, Any]]] = []
        self.tasks: set[asyncio.Task[Any]] = set()
        self._waiters: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._quiet: list[Callable[[], Awaitable[None]]] = []

    @property
    def tells_profiles(self) -> bool:
        """Whether the hub answers ``sampflow.hub.profile`` (sampflow's hub does; set False to
        act as another hub, which is not subscribed to it)."""
        return self.core.hub.subscription_for(PROFILE_MTYPE) is not None

    @tells_profiles.setter
    def tells_profiles(self, value: bool) -> None:
        subs: dict[str, dict[str, Any]] = {"samp.app.ping": {}}
        if value:
            subs[PROFILE_MTYPE] = {}
        self.core.registry.set_subscriptions(self.core.hub, subs)

    def client(self, name: str, subscriptions: dict[str, dict[str, Any]] | None = None,
               respond: Respond | None = None, profile: str = "standard") -> MemoryClient:
        """Register a client named `name` (metadata ``samp.name``), callable, with
        `subscriptions` if given; `respond(message)` answers its calls when it has no
        ``on_message``. `profile` is ``standard`` or ``web``."""
        record = self.core.register(Profile(profile))
        c = MemoryClient(self, record, name, respond)
        self.clients[record.public_id] = c
        if record.profile is Profile.WEB:
            self.core.allow_callbacks(record.private_key, True)
        else:
            self.core.set_callback(record.private_key, f"memory://{record.public_id}")
        self.flush()
        self.core.declare_metadata(record.private_key, {"samp.name": name})
        self.flush()
        if subscriptions is not None:
            self.core.declare_subscriptions(record.private_key, dict(subscriptions))
            self.flush()
        return c

    def unregister(self, c: MemoryClient) -> None:
        """``samp.hub.unregister`` for `c`."""
        self.core.unregister(c.private_key)
        self.flush()

    def when_quiet(self, wait: Callable[[], Awaitable[None]]) -> None:
        """Have `settle` also await `wait()` (an engine's ``wait_idle``)."""
        self._quiet.append(wait)

    async def delivered(self) -> None:
        """Wait until every delivery made so far (and those they made) has been handled."""
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)

    async def settle(self) -> None:
        """Wait until no delivery is being handled and every `when_quiet` waiter is done, and
        nothing new was delivered meanwhile."""
        while True:
            await self.delivered()
            for wait in self._quiet:
                await wait()
            if not self.tasks:
                return

    def flush(self) -> None:
        """Act on the core's outputs, as a transport must after every verb."""
        for out in self.core.take_outputs():
            if isinstance(out, Delivery):
                self._deliver(out)
            elif isinstance(out, SyncResponse):
                fut = self._waiters.pop(out.msg_id, None)
                if fut is not None and not fut.done():
                    fut.set_result(out.response)
            elif isinstance(out, ClientGone):
                self.clients.pop(out.client.public_id, None)

    def _deliver(self, delivery: Delivery) -> None:
        c = self.clients.get(delivery.recipient.public_id)
        if c is None:
            return
        if delivery.method == "receiveNotification":
            sender, message = delivery.args
            kind, msg_id = "notification", None
        elif delivery.method == "receiveCall":
            sender, msg_id, message = delivery.args
            kind = "call"
        else:  # receiveResponse: these clients only use callAndWait
            return
        self.log.append((sender, delivery.recipient.public_id, kind, message))
        c.received.append((kind, sender, message))
        task = asyncio.get_running_loop().create_task(c.handle(kind, sender, msg_id, message))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def wait_response(self, msg_id: str, within: float) -> dict[str, Any]:
        """The response to ``callAndWait`` `msg_id`; expires it in the core on timeout."""
        fut = self._waiters.setdefault(msg_id, asyncio.get_running_loop().create_future())
        self.flush()  # the hub may have answered already
        try:
            return await asyncio.wait_for(fut, within)
        except TimeoutError:
            self._waiters.pop(msg_id, None)
            self.core.expire(msg_id)
            raise


class MemoryClient:
    """A registered client: a :class:`~sampflow.rules.messenger.Messenger` over `MemoryHub`.

    ``received`` lists ``(kind, sender_id, message)`` of what the hub delivered to it.
    """

    def __init__(self, hub: MemoryHub, record: ClientRecord, name: str,
                 respond: Respond | None) -> None:
        self.hub = hub
        self.record = record
        self.private_key = record.private_key
        self.public_id: str | None = record.public_id
        self.hub_id: str | None = hub.hub_id
        self.name = name
        self.on_message: Any = None
        self.received: list[tuple[str, str, dict[str, Any]]] = []
        self.respond: Respond = respond or (lambda msg: dict(OK))

    @property
    def subscriptions(self) -> dict[str, Any]:
        """What the client declared, as the hub holds it."""
        return self.record.subscriptions

    def got(self, mtype: str) -> list[dict[str, Any]]:
        """The params of every message with `mtype` delivered to this client."""
        return [m.get("samp.params", {}) for _, _, m in self.received
                if m.get("samp.mtype") == mtype]

    async def handle(self, kind: str, sender: str, msg_id: str | None,
                     message: dict[str, Any]) -> None:
        """Run the handler for one delivery; reply to a call through the hub."""
        try:
            if self.on_message is not None:
                response = await self.on_message(kind, sender, msg_id, message)
            else:
                response = self.respond(message) if kind == "call" else None
        except Exception as exc:
            response = {"samp.status": "samp.error", "samp.error": {"samp.errortxt": str(exc)}}
        if kind == "call" and msg_id is not None and self.public_id in self.hub.clients:
            await self.reply(msg_id, response if response is not None else dict(OK))

    def _done(self) -> None:
        self.hub.flush()

    # -- Messenger -----------------------------------------------------------------------------
    async def declare_subscriptions(self, subscriptions: dict[str, dict[str, Any]]) -> None:
        self.hub.core.declare_subscriptions(self.private_key, dict(subscriptions))
        self._done()

    async def get_registered_clients(self) -> list[str]:
        return self.hub.core.get_registered_clients(self.private_key)

    async def get_metadata(self, client_id: str) -> dict[str, Any]:
        return dict(self.hub.core.get_metadata(self.private_key, client_id))

    async def get_subscriptions(self, client_id: str) -> dict[str, Any]:
        return dict(self.hub.core.get_subscriptions(self.private_key, client_id))

    async def get_subscribed_clients(self, mtype: str) -> dict[str, dict[str, Any]]:
        return self.hub.core.get_subscribed_clients(self.private_key, mtype)

    async def notify(self, recipient_id: str, message: dict[str, Any]) -> None:
        self.hub.core.notify(self.private_key, recipient_id, message)
        self._done()

    async def notify_all(self, message: dict[str, Any]) -> list[str]:
        ids = self.hub.core.notify_all(self.private_key, message)
        self._done()
        return ids

    async def call_and_wait(self, recipient_id: str, message: dict[str, Any],
                            timeout: float) -> dict[str, Any]:  # noqa: ASYNC109 (Messenger's)
        msg_id = self.hub.core.call_and_wait(self.private_key, recipient_id, message)
        return await self.hub.wait_response(msg_id, timeout)

    async def reply(self, msg_id: str, response: dict[str, Any]) -> None:
        self.hub.core.reply(self.private_key, msg_id, response)
        self._done()
