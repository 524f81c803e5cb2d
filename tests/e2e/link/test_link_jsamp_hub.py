"""``sampflow link`` joined to JSAMP's own hub (a hub in another process, issue 13).

The link registers one real client per proxy on JSAMP's hub (JSAMP-bridge style). A client
of JSAMP's hub and a client of an ordinary linked sampflow hub call each other, and JSAMP's
hubtester then passes against JSAMP's hub with the link's bridge and proxy clients on it
(the proxies must not break conformance).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import peers as peerlib
import pytest
import samphub
from linkfed import SECRET, TEST_SHARE, Clients, Federation, NatsServer, wait_proxy
from samphub import Recorder

pytestmark = [pytest.mark.peer, pytest.mark.timeout(420)]


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    with NatsServer(tmp_path / "nats") as server:
        yield server


@pytest.fixture
def linked_jsamp_hub(peers: peerlib.PeerLauncher, tmp_path: Path,
                     nats_server: NatsServer) -> Iterator[peerlib.HubHandle]:
    hub = peers.jsamp_hub(tmp_path / "jsamp.lock")
    link = samphub.SampflowHub(hub.lockfile, log_dir=tmp_path / "link", verbose=True,
                               command=["link", nats_server.url, "--name", "J"],
                               args=["--no-web-profile", "--share", *TEST_SHARE],
                               env={"SAMPFLOW_LINK_SECRET": SECRET})
    link.spawn()
    try:
        yield hub
    finally:
        link.stop(check_lockfile=False)
    assert "Traceback" not in link.log_tail(1_000_000), link.log_tail()


@pytest.fixture
def hub_b(tmp_path: Path, nats_server: NatsServer) -> Iterator[Federation]:
    with Federation(tmp_path, nats_server.url, "B", share=TEST_SHARE) as federation:
        yield federation


async def test_jsamp_hub_clients_talk_across_and_hubtester_passes_with_proxies(
        linked_jsamp_hub: peerlib.HubHandle, hub_b: Federation,
        run_jsamp: Callable[..., Any]) -> None:
    people = Clients(hub_b)
    on_j = await Recorder("j-echo", {"test.echo": {}}).connect(linked_jsamp_hub.lockfile)
    try:
        await on_j.client.declare_metadata({"samp.name": "j-echo"})
        on_b = await people.on("B", "b-echo", {"test.echo": {}})
        to_j = await wait_proxy(on_b, "j-echo (proxy@J)", timeout=60)
        to_b = await wait_proxy(on_j, "b-echo (proxy@B)", timeout=60)
        answer = await on_b.client.call_and_wait(
            to_j, {"samp.mtype": "test.echo", "samp.params": {"a": "1"}}, timeout=30)
        assert answer["samp.result"] == {"a": "1"}, answer
        answer = await on_j.client.call_and_wait(
            to_b, {"samp.mtype": "test.echo", "samp.params": {"b": "2"}}, timeout=30)
        assert answer["samp.result"] == {"b": "2"}, answer
        # hubtester wants no other client subscribed to its own test.echo: b-echo moves to
        # table loading and ping, and its proxy on JSAMP's hub follows.
        await on_b.client.declare_subscriptions({"table.load.votable": {},
                                                 "samp.app.ping": {}})
        async with asyncio.timeout(30):
            while "test.echo" in await on_j.client.get_subscriptions(to_b):
                await asyncio.sleep(0.1)
        await on_j.close()
        # b-echo stays on B (and keeps answering: this loop runs on), so its proxy sits on
        # JSAMP's hub while hubtester runs, and answers hubtester's pings from B.
        code, out, err = await asyncio.to_thread(run_jsamp, "hubtester",
                                                 hub=linked_jsamp_hub, timeout=240)
        assert code == 0, (f"hubtester failed ({code}):\n{out[-4000:]}\n{err[-4000:]}\n"
                           f"{hub_b.logs()}")
    finally:
        await people.close()
        if on_j.client.is_connected:
            await on_j.close()
