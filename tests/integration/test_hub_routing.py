"""Routing over real sockets: order, isolation of slow clients, reply binding, hub events.

The hub is sampflow's `AsyncHub` on loopback, in this process; clients are sampflow's
`AsyncSAMPClient` (through `samphub.Recorder`) or raw XML-RPC endpoints where a test needs a
client that misbehaves at the HTTP level.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from samphub import Recorder, msg

from sampflow.samp.errors import SAMPHubError
from sampflow.samp.hub.server import AsyncHub
from sampflow.samp.xmlrpc import dumps_response, loads_request


@pytest.fixture
async def hub(start_hub: Any) -> AsyncHub:
    return await start_hub(client_timeout=60)


@pytest.fixture
async def recorders(hub: AsyncHub) -> AsyncIterator[list[Recorder]]:
    made: list[Recorder] = []
    yield made
    for r in made:
        await r.close()


async def new(recorders: list[Recorder], hub: AsyncHub, name: str,
              subscriptions: dict | None = None, respond: Any = None) -> Recorder:
    r = await Recorder(name, subscriptions, respond).connect(hub.lockfile)
    recorders.append(r)
    return r


class RawCallback:
    """A callback endpoint that records XML-RPC calls and answers only when `gate` is set."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.calls: list[tuple[str, tuple]] = []
        self.arrived = asyncio.Event()
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> "RawCallback":
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/"
        return self

    async def _handle(self, request: web.Request) -> web.Response:
        method, params = loads_request(await request.read())
        self.calls.append((method, params))
        self.arrived.set()
        await self.gate.wait()
        return web.Response(body=dumps_response(""), content_type="text/xml")

    async def close(self) -> None:
        self.gate.set()
        if self._runner is not None:
            await self._runner.cleanup()


# -- order ---------------------------------------------------------------------------------

async def test_notifications_from_one_sender_arrive_in_order(hub: AsyncHub,
                                                             recorders: list[Recorder]) -> None:
    sender = await new(recorders, hub, "sender")

    async def slowish(sender_id: str, msg_id: str, message: dict) -> dict:
        await asyncio.sleep(0)
        return {"samp.status": "samp.ok", "samp.result": {}}

    receiver = await new(recorders, hub, "receiver", {"test.seq": {}}, slowish)
    n = 200
    for i in range(n):
        await sender.client.notify(receiver.id, msg("test.seq", i=str(i)))
    got = await receiver.wait_messages("test.seq", n, timeout=60)
    assert [m["samp.params"]["i"] for m in got] == [str(i) for i in range(n)]


async def test_notify_all_and_calls_keep_order_per_recipient(hub: AsyncHub,
                                                             recorders: list[Recorder]) -> None:
    sender = await new(recorders, hub, "sender")
    a = await new(recorders, hub, "a", {"test.*": {}})
    b = await new(recorders, hub, "b", {"test.seq": {}})
    n = 100
    for i in range(n):
        if i % 2:
            await sender.client.notify_all(msg("test.seq", i=str(i)))
        else:
            await sender.client.call_all(f"t{i}", msg("test.seq", i=str(i)))
    for r in (a, b):
        got = await r.wait_messages("test.seq", n, timeout=60)
        assert [m["samp.params"]["i"] for m in got] == [str(i) for i in range(n)]
    await sender.wait_for(lambda s: len(s.responses) >= n, timeout=60)


# -- slow clients --------------------------------------------------------------------------

async def test_a_client_that_does_not_answer_does_not_stall_the_others(
        hub: AsyncHub, recorders: list[Recorder]) -> None:
    sender = await new(recorders, hub, "sender")
    fast = await new(recorders, hub, "fast", {"test.tick": {}})
    slow = await new(recorders, hub, "slow", {"test.tick": {}})
    stuck = await RawCallback().start()
    try:
        # The slow client's callback endpoint accepts requests but does not answer them.
        await slow.client.hub("setXmlrpcCallback", stuck.url)
        n = 50
        for i in range(n):
            await sender.client.notify_all(msg("test.tick", i=str(i)))
        got = await fast.wait_messages("test.tick", n, timeout=60)
        assert [m["samp.params"]["i"] for m in got] == [str(i) for i in range(n)]
        # A call to the fast client completes while the slow one still holds its first message.
        await new(recorders, hub, "pinger", {"samp.app.ping": {}})
        response = await sender.client.call_and_wait(fast.id, msg("test.tick", i="x"), 30)
        assert response["samp.status"] == "samp.ok"
        await asyncio.wait_for(stuck.arrived.wait(), 30)
        assert len(stuck.calls) == 1
        # Released, the slow client gets every message, in order.
        stuck.gate.set()
        for _ in range(600):
            if len(stuck.calls) >= n:
                break
            await asyncio.sleep(0.05)
        ticks = [p[2]["samp.params"]["i"] for m, p in stuck.calls
                 if m == "samp.client.receiveNotification"]
        assert ticks == [str(i) for i in range(n)]
    finally:
        await stuck.close()


async def test_a_slow_handler_does_not_stall_call_and_wait_to_others(
        hub: AsyncHub, recorders: list[Recorder]) -> None:
    release = asyncio.Event()

    async def sleepy(sender_id: str, msg_id: str, message: dict) -> dict:
        await release.wait()
        return {"samp.status": "samp.ok", "samp.result": {"who": "slow"}}

    caller = await new(recorders, hub, "caller")
    slow = await new(recorders, hub, "slow", {"test.work": {}}, sleepy)
    fast = await new(recorders, hub, "fast", {"test.work": {}})
    pending = asyncio.ensure_future(caller.client.call_and_wait(slow.id, msg("test.work"), 120))
    try:
        await slow.wait_messages("test.work")
        for i in range(20):
            response = await caller.client.call_and_wait(fast.id, msg("test.work", i=str(i)), 30)
            assert response["samp.result"] == {"i": str(i)}
        assert not pending.done()
        release.set()
        assert (await asyncio.wait_for(pending, 30))["samp.result"] == {"who": "slow"}
    finally:
        release.set()
        pending.cancel()


# -- replies bound to their recipient (item 8) ---------------------------------------------

async def test_reply_from_the_wrong_client_is_refused_and_the_real_reply_arrives(
        hub: AsyncHub, recorders: list[Recorder]) -> None:
    held: asyncio.Queue[str] = asyncio.Queue()

    async def hold(sender_id: str, msg_id: str, message: dict) -> None:
        await held.put(msg_id)
        return None  # replies later, by hand

    caller = await new(recorders, hub, "caller")
    target = await new(recorders, hub, "target", {"test.q": {}}, hold)
    intruder = await new(recorders, hub, "intruder", {"test.q": {}})

    # Asynchronous call.
    await caller.client.call(target.id, "tag-1", msg("test.q"))
    msg_id = await asyncio.wait_for(held.get(), 15)
    forged = {"samp.status": "samp.ok", "samp.result": {"from": "intruder"}}
    with pytest.raises(SAMPHubError):
        await intruder.client.reply(msg_id, forged)
    with pytest.raises(SAMPHubError):
        await caller.client.reply(msg_id, forged)
    await target.client.reply(msg_id, {"samp.status": "samp.ok",
                                       "samp.result": {"from": "target"}})
    [(responder, tag, response)] = await caller.wait_for(lambda c: c.responses)
    assert (responder, tag, response["samp.result"]) == (target.id, "tag-1", {"from": "target"})
    with pytest.raises(SAMPHubError):
        await target.client.reply(msg_id, forged)  # answered already

    # Synchronous call.
    waiting = asyncio.ensure_future(caller.client.call_and_wait(target.id, msg("test.q"), 60))
    msg_id = await asyncio.wait_for(held.get(), 15)
    with pytest.raises(SAMPHubError):
        await intruder.client.reply(msg_id, forged)
    assert not waiting.done()
    await target.client.reply(msg_id, {"samp.status": "samp.ok",
                                       "samp.result": {"from": "target"}})
    assert (await asyncio.wait_for(waiting, 15))["samp.result"] == {"from": "target"}
    assert len(caller.responses) == 1  # nothing forged arrived


async def test_call_and_wait_timeout_is_a_fault_and_a_late_reply_is_dropped_once(
        hub: AsyncHub, recorders: list[Recorder]) -> None:
    """The late reply is no error (issue 11, as astropy's hub); a second one is refused."""
    held: asyncio.Queue[str] = asyncio.Queue()

    async def hold(sender_id: str, msg_id: str, message: dict) -> None:
        await held.put(msg_id)
        return None

    caller = await new(recorders, hub, "caller")
    target = await new(recorders, hub, "target", {"test.q": {}}, hold)
    with pytest.raises(SAMPHubError, match="(?i)within|time"):
        await asyncio.wait_for(caller.client.call_and_wait(target.id, msg("test.q"), 1), 30)
    msg_id = held.get_nowait()
    await target.client.reply(msg_id, {"samp.status": "samp.ok", "samp.result": {}})
    with pytest.raises(SAMPHubError):
        await target.client.reply(msg_id, {"samp.status": "samp.ok", "samp.result": {}})
    await caller.client.ping()
    assert caller.responses == []


# -- the hub as a client ---------------------------------------------------------------------

async def test_hub_answers_samp_app_ping(hub: AsyncHub, recorders: list[Recorder]) -> None:
    a = await new(recorders, hub, "a")
    response = await a.client.call_and_wait(a.client.hub_id, msg("samp.app.ping"), 10)
    assert response["samp.status"] == "samp.ok"
    await a.client.call(a.client.hub_id, "ping-tag", msg("samp.app.ping"))
    [(responder, tag, response)] = await a.wait_for(lambda r: r.responses)
    assert (responder, tag, response["samp.status"]) == (a.client.hub_id, "ping-tag", "samp.ok")
    meta = await a.client.get_metadata(a.client.hub_id)
    assert meta["samp.name"].startswith("sampflow")


async def test_hub_events_reach_subscribed_clients(hub: AsyncHub,
                                                   recorders: list[Recorder]) -> None:
    watcher = await new(recorders, hub, "watcher", {"samp.hub.event.*": {}})
    deaf = await new(recorders, hub, "deaf", {"test.other": {}})
    c = await new(recorders, hub, "newcomer", {"test.x": {"k": "v"}})
    cid = c.id
    await c.close()
    recorders.remove(c)
    events = await watcher.wait_for(
        lambda w: (lambda ev: ev if ev and ev[-1] == ("samp.hub.event.unregister", cid) else None)(
            [(m["samp.mtype"], m["samp.params"].get("id")) for m in w.messages()
             if m["samp.params"].get("id") == cid]))
    assert events == [("samp.hub.event.register", cid), ("samp.hub.event.metadata", cid),
                      ("samp.hub.event.subscriptions", cid),
                      ("samp.hub.event.unregister", cid)]
    sub_event = watcher.messages("samp.hub.event.subscriptions")[-1]
    assert sub_event["samp.params"]["subscriptions"] == {"test.x": {"k": "v"}}
    meta_event = watcher.messages("samp.hub.event.metadata")[-1]
    assert meta_event["samp.params"]["metadata"]["samp.name"] == "newcomer"
    assert all(sender == watcher.client.hub_id for _, sender, _, _ in watcher.received)
    assert deaf.messages() == []


async def test_client_whose_callback_refuses_connections_is_removed(
        hub: AsyncHub, recorders: list[Recorder]) -> None:
    watcher = await new(recorders, hub, "watcher", {"samp.hub.event.unregister": {}})
    sender = await new(recorders, hub, "sender")
    ghost = await new(recorders, hub, "ghost", {"test.x": {}})
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead_url = f"http://127.0.0.1:{s.getsockname()[1]}/"
    await ghost.client.hub("setXmlrpcCallback", dead_url)
    response = await asyncio.wait_for(
        sender.client.call_and_wait(ghost.id, msg("test.x"), 60), 30)
    assert response["samp.status"] == "samp.error"
    await watcher.wait_for(lambda w: any(m["samp.params"] == {"id": ghost.id}
                                         for m in w.messages("samp.hub.event.unregister")))
    assert ghost.id not in await sender.client.get_registered_clients()
    with pytest.raises(SAMPHubError):
        await sender.client.notify(ghost.id, msg("test.x"))
