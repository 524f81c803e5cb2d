"""SAO DS9's callback answers, read by the hub's wire client (issue 9, item 1).

DS9's Tcl HTTP server ends its response lines with a bare LF. The hub runs in this process
(`AsyncHub`, its own lockfile) so that its log records can be captured and its outbound
connections counted; DS9 runs for real under Xvfb. 50 calls and 50 notifications must all
be delivered with no delivery warning.

Keep-alive: DS9's server (``/usr/share/saods9/library/xmlrpc.tcl``, ``doRequest``) closes
its socket after every answer although it says ``HTTP/1.1`` and no ``Connection: close``, so
no client can reuse a connection to DS9. What the hub can and must do is keep each kept-alive
connection until the server closes it, and then waste nothing: one connection per delivery,
no failed attempt. Reuse of bare-LF connections that a server does keep alive is tested in
``tests/integration/wire/test_wire_client.py``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import peers as peerlib
import pytest

from sampflow.samp.client.aio import AsyncSAMPClient
from sampflow.samp.hub.server import AsyncHub

pytestmark = pytest.mark.peer

ROUNDS = 50


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[AsyncHub]:
    hub = AsyncHub(lockfile=tmp_path / "samp.lock")
    await hub.start()
    try:
        yield hub
    finally:
        await hub.stop(grace=0.5)


@pytest.fixture
async def ds9(peers: peerlib.PeerLauncher, hub: AsyncHub) -> peerlib.PeerHandle:
    # The launcher blocks until DS9 has registered: run it off the loop the hub serves on.
    assert hub.lockfile is not None
    return await asyncio.to_thread(peers.ds9, SimpleNamespace(lockfile=Path(hub.lockfile)))


def message(mtype: str, **params: str) -> dict[str, Any]:
    return {"samp.mtype": mtype, "samp.params": params}


async def test_ds9_answers_are_read_over_kept_alive_connections(
        hub: AsyncHub, ds9: peerlib.PeerHandle, caplog: pytest.LogCaptureFixture) -> None:
    client = AsyncSAMPClient("ds9-wire-test")
    await client.connect(lockfile=str(hub.lockfile))
    try:
        caplog.set_level(logging.INFO, logger="sampflow")
        opened_before = hub.service.deliverer.connections_opened
        for i in range(ROUNDS):
            response = await client.call_and_wait(
                ds9.public_id, message("ds9.get", cmd="version"), 30)
            assert response["samp.status"] == "samp.ok", (i, response)
            await client.notify(ds9.public_id, message("ds9.set", cmd="frame 1"))
        # The notifications are delivered in order behind the calls: one more call after
        # them proves the lane drained, and DS9 still answers.
        response = await client.call_and_wait(ds9.public_id, message("samp.app.ping"), 30)
        assert response["samp.status"] == "samp.ok", response
        opened = hub.service.deliverer.connections_opened - opened_before
    finally:
        await client.disconnect()
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [], [r.getMessage() for r in warnings]
    # 2 * ROUNDS + 1 deliveries, each on a connection DS9 then closes (see above). A pooled
    # connection whose close had not arrived yet may be tried and, unanswered, sent again on
    # a new one (`HttpClient`'s stale keep-alive retry): a few of those at most.
    deliveries = 2 * ROUNDS + 1
    assert deliveries <= opened <= deliveries + 5, opened
