"""An in-memory SAMP hub and clients that satisfy sampflow.rules.messenger.Messenger."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from sampflow.rules.triggers.bus import mtype_matches


class FakeHub:
    """Routes notifications and calls between FakeClients; emits samp.hub.event.* like a hub."""

    def __init__(self) -> None:
        self.hub_id = "hub"
        #: Whether the hub answers ``sampflow.hub.profile`` (sampflow's does, others do not).
        self.tells_profiles = True
        self.clients: dict[str, FakeClient] = {}
        self._ids = itertools.count(1)
        self.tasks: set[asyncio.Task[Any]] = set()
        self.log: list[tuple[str, str, str, dict[str, Any]]] = []  # (sender, recipient, kind, msg)

    def client(self, name: str, subscriptions: dict[str, dict] | None = None,
               respond: Any = None, profile: str = "standard") -> FakeClient:
        c = FakeClient(self, f"c{next(self._ids)}", name, respond)
        c.profile = profile
        self.clients[c.public_id] = c
        self._event("samp.hub.event.register", {"id": c.public_id})
        self._event("samp.hub.event.metadata", {"id": c.public_id,
                                                "metadata": {"samp.name": name}})
        if subscriptions is not None:
            c.subscriptions = dict(subscriptions)
            self._event("samp.hub.event.subscriptions", {"id": c.public_id,
                                                         "subscriptions": c.subscriptions})
        return c

    def unregister(self, c: FakeClient) -> None:
        del self.clients[c.public_id]
        self._event("samp.hub.event.unregister", {"id": c.public_id})

    def _event(self, mtype: str, params: dict[str, Any]) -> None:
        for c in list(self.clients.values()):
            if c.public_id != params["id"] and c.subscribed(mtype):
                self._deliver(self.hub_id, c, "notification", None,
                              {"samp.mtype": mtype, "samp.params": params})

    def _deliver(self, sender: str, c: FakeClient, kind: str, msg_id: str | None,
                 msg: dict[str, Any]) -> asyncio.Task[Any]:
        self.log.append((sender, c.public_id, kind, msg))
        task = asyncio.get_running_loop().create_task(c.receive(kind, sender, msg_id, msg))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def settle(self, rounds: int = 20) -> None:
        """Wait until no delivery is in flight."""
        for _ in range(rounds):
            while self.tasks:
                await asyncio.gather(*list(self.tasks), return_exceptions=True)
            await asyncio.sleep(0.01)
            if not self.tasks:
                return


class FakeClient:
    """A Messenger; ``received`` lists what it got, ``respond(msg)`` answers calls."""

    def __init__(self, hub: FakeHub, public_id: str, name: str, respond: Any) -> None:
        self.hub = hub
        self.public_id = public_id
        self.hub_id = hub.hub_id
        self.name = name
        self.subscriptions: dict[str, dict] = {}
        self.metadata = {"samp.name": name}
        self.profile = "standard"
        self.on_message: Any = None
        self.received: list[tuple[str, str, dict[str, Any]]] = []
        self.respond = respond or (lambda msg: {"samp.status": "samp.ok", "samp.result": {}})
        self.replies: list[tuple[str, dict[str, Any]]] = []

    def subscribed(self, mtype: str) -> bool:
        return any(mtype_matches(p, mtype) for p in self.subscriptions)

    async def receive(self, kind: str, sender: str, msg_id: str | None, msg: dict[str, Any]):
        self.received.append((kind, sender, msg))
        if self.on_message is not None:
            return await self.on_message(kind, sender, msg_id, msg)
        if kind == "call":
            return self.respond(msg)
        return None

    def got(self, mtype: str) -> list[dict[str, Any]]:
        return [m["samp.params"] for k, s, m in self.received if m["samp.mtype"] == mtype]

    # -- Messenger ---------------------------------------------------------------------------
    async def declare_subscriptions(self, subscriptions: dict[str, dict]) -> None:
        self.subscriptions = dict(subscriptions)
        self.hub._event("samp.hub.event.subscriptions", {"id": self.public_id,
                                                         "subscriptions": self.subscriptions})

    async def get_registered_clients(self) -> list[str]:
        return [i for i in self.hub.clients if i != self.public_id]

    async def get_metadata(self, client_id: str) -> dict:
        return dict(self.hub.clients[client_id].metadata)

    async def get_subscriptions(self, client_id: str) -> dict:
        return dict(self.hub.clients[client_id].subscriptions)

    async def get_subscribed_clients(self, mtype: str) -> dict[str, dict]:
        return {i: {} for i, c in self.hub.clients.items()
                if i != self.public_id and c.subscribed(mtype)}

    async def notify(self, recipient_id: str, message: dict) -> None:
        c = self.hub.clients.get(recipient_id)
        if c is None or not c.subscribed(message["samp.mtype"]):
            raise RuntimeError(f"{recipient_id} is not subscribed to {message['samp.mtype']}")
        self.hub._deliver(self.public_id, c, "notification", None, message)

    async def notify_all(self, message: dict) -> list[str]:
        ids = list(await self.get_subscribed_clients(message["samp.mtype"]))
        for i in ids:
            await self.notify(i, message)
        return ids

    async def call_and_wait(self, recipient_id: str, message: dict, timeout: float) -> dict:
        if recipient_id == self.hub.hub_id:
            if not self.hub.tells_profiles or message["samp.mtype"] != "sampflow.hub.profile":
                raise RuntimeError(f"the hub is not subscribed to {message['samp.mtype']}")
            who = self.hub.clients[message["samp.params"]["id"]]
            return {"samp.status": "samp.ok", "samp.result": {"profile": who.profile}}
        c = self.hub.clients[recipient_id]
        task = self.hub._deliver(self.public_id, c, "call", "m1", message)
        return await asyncio.wait_for(task, timeout)

    async def reply(self, msg_id: str, response: dict) -> None:
        self.replies.append((msg_id, response))
