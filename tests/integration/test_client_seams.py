"""The client's public seams over real sockets: `AsyncSAMPClient.open` / `request` / `close`
(what `SAMPHubProxy` and ``sampflow run`` use), `SAMPIntegratedClient.run_blocking` (the one
way from the blocking facade to the asyncio client) and `lockfile_helpers.hub_answers`."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sampflow.samp import SAMPHubServer, SAMPIntegratedClient
from sampflow.samp.client.aio import AsyncSAMPClient
from sampflow.samp.errors import SAMPClientError, SAMPHubError, SAMPProxyError
from sampflow.samp.lockfile_helpers import hub_answers

pytestmark = pytest.mark.timeout(120)


async def test_open_request_close_talk_to_the_hub_without_registering(start_hub: Any) -> None:
    hub = await start_hub()
    client = AsyncSAMPClient(callable=False)
    with pytest.raises(SAMPClientError):
        await client.request("samp.hub.ping")  # not opened yet
    await client.open(hub.params)
    try:
        assert await client.request("samp.hub.ping") == ""
        with pytest.raises(SAMPProxyError):  # a wrong secret is the hub's fault to answer
            await client.request("samp.hub.register", "not-the-secret")
        with pytest.raises(SAMPProxyError):
            await client.request("samp.hub.getRegisteredClients", "no-such-key", timeout=5)
        assert not client.is_connected
    finally:
        await client.close()
    await client.close()  # twice is fine
    with pytest.raises(SAMPClientError):
        await client.request("samp.hub.ping")  # closed


async def test_open_refuses_hub_parameters_without_a_url() -> None:
    client = AsyncSAMPClient(callable=False)
    with pytest.raises(SAMPHubError, match="samp.hub.xmlrpc.url"):
        await client.open({"samp.secret": "x"})
    await client.close()


async def test_close_forgets_the_registration_without_unregistering(start_hub: Any) -> None:
    """What ``sampflow run`` does when the hub has gone: the hub is not asked."""
    hub = await start_hub()
    watcher = AsyncSAMPClient("watcher", callable=False)
    gone = AsyncSAMPClient("gone", callable=False)
    await watcher.connect(hub.params)
    await gone.connect(hub.params)
    try:
        gone_id = gone.public_id
        await gone.close()
        assert not gone.is_connected
        assert gone_id in await watcher.get_registered_clients()  # still registered
    finally:
        await watcher.disconnect()


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[SAMPIntegratedClient, SAMPIntegratedClient]]:
    """Two integrated clients, ``a`` and ``b``, on a hub of their own."""
    hub = SAMPHubServer(lockfile=str(tmp_path / "lock"), web_profile=False)
    hub.start()
    a, b = SAMPIntegratedClient("a"), SAMPIntegratedClient("b")
    try:
        a.connect(hub=hub)
        b.connect(hub=hub)
        yield a, b
    finally:
        a.disconnect()
        b.disconnect()
        hub.stop()


def test_run_blocking_runs_several_hub_calls_at_once(
        pair: tuple[SAMPIntegratedClient, SAMPIntegratedClient]) -> None:
    a, b = pair
    ids = [a.get_public_id(), b.get_public_id()]

    async def names(client: AsyncSAMPClient) -> list[str]:
        maps = await asyncio.gather(*(client.get_metadata(i) for i in ids))
        return [m["samp.name"] for m in maps]

    assert a.run_blocking(names) == ["a", "b"]
    assert a.run_blocking(lambda client: client.get_metadata(ids[1])) == b.get_metadata(ids[1])


def test_run_blocking_needs_a_connection_and_refuses_the_loop_thread(
        pair: tuple[SAMPIntegratedClient, SAMPIntegratedClient]) -> None:
    with pytest.raises(SAMPClientError, match="not connected"):
        SAMPIntegratedClient("idle").run_blocking(lambda client: client.ping())
    a, _ = pair

    async def nested(client: AsyncSAMPClient) -> None:
        a.run_blocking(lambda c: c.ping())  # from the loop thread: would deadlock

    with pytest.raises(SAMPClientError, match="event-loop thread"):
        a.run_blocking(nested)


def test_hub_answers_tells_a_running_hub_from_a_stopped_one(tmp_path: Path) -> None:
    server = SAMPHubServer(lockfile=str(tmp_path / "lock"), web_profile=False)
    server.start()
    url = server.params["samp.hub.xmlrpc.url"]
    try:
        assert hub_answers(url)
        answers: list[bool] = []
        worker = threading.Thread(target=lambda: answers.append(hub_answers(url, 5.0)))
        worker.start()
        worker.join(30)
        assert answers == [True]
    finally:
        server.stop()
    assert not hub_answers(url, 2.0)
