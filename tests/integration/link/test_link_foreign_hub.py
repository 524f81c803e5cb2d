"""``sampflow link`` joining a hub it does not run (issue 13): proxies as real SAMP clients.

Hub X is a plain ``sampflow hub`` process; ``sampflow link --lockfile X --name F`` joins it
from another process, JSAMP-bridge style (one registered client per proxy). Hub B is an
ordinary ``sampflow link`` hub. Clients on X and on B then talk across.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import samphub
from linkfed import SECRET, TEST_SHARE, Clients, Federation, NatsServer, names, wait_proxy
from samphub import Recorder


@pytest.fixture
def foreign(tmp_path: Path, nats_server: NatsServer) -> Iterator[dict[str, samphub.SampflowHub]]:
    with samphub.running_hub(tmp_path / "x" / "lock", log_dir=tmp_path / "x",
                             args=["--no-web-profile"]) as x:
        link = samphub.SampflowHub(x.lockfile, log_dir=tmp_path / "x-link", verbose=True,
                                   command=["link", nats_server.url, "--name", "F"],
                                   args=["--share", *TEST_SHARE],
                                   env={"SAMPFLOW_LINK_SECRET": SECRET})
        link.spawn()
        try:
            yield {"X": x, "link": link}
        finally:
            link.stop(check_lockfile=False)
            assert "Traceback" not in link.log_tail(1_000_000), link.log_tail()
        assert x.running()


@pytest.fixture
def fed_b(tmp_path: Path, nats_server: NatsServer) -> Iterator[Federation]:
    with Federation(tmp_path, nats_server.url, "B", share=TEST_SHARE) as federation:
        yield federation


@pytest.fixture
async def people(fed_b: Federation) -> AsyncIterator[Clients]:
    made = Clients(fed_b)
    yield made
    await made.close()


async def test_clients_of_a_joined_hub_talk_across(
        foreign: dict[str, samphub.SampflowHub], fed_b: Federation, people: Clients) -> None:
    on_x = await Recorder("x-echo", {"test.echo": {}, "samp.hub.event.*": {}}).connect(
        foreign["X"].lockfile)
    await on_x.client.declare_metadata({"samp.name": "x-echo"})
    try:
        await wait_proxy(on_x, "sampflow-link (F)")  # the bridge client
        on_b = await people.on("B", "b-echo", {"test.echo": {}})
        to_x = await wait_proxy(on_b, "x-echo (proxy@F)")
        to_b = await wait_proxy(on_x, "b-echo (proxy@B)")
        answer = await on_b.client.call_and_wait(
            to_x, {"samp.mtype": "test.echo", "samp.params": {"a": "1"}}, timeout=20)
        assert answer["samp.result"] == {"a": "1"}, answer
        answer = await on_x.client.call_and_wait(
            to_b, {"samp.mtype": "test.echo", "samp.params": {"b": "2"}}, timeout=20)
        assert answer["samp.result"] == {"b": "2"}, answer
        await on_b.client.notify(to_x, {"samp.mtype": "test.echo", "samp.params": {"n": "3"}})
        await on_x.wait_for(lambda r: any(m["samp.params"].get("n") == "3"
                                          for m in r.messages("test.echo")))
        # The proxy of B's client on X is not mirrored back to B.
        assert not [n for n in (await names(on_b)).values() if "(proxy@F)" in n
                    and "b-echo" in n]
        # B dies: its proxy leaves X within 5 s.
        fed_b["B"].kill()
        deadline = time.monotonic() + 5.0
        while [n for n in (await names(on_x)).values() if n.endswith("(proxy@B)")]:
            assert time.monotonic() < deadline, await names(on_x)
            await asyncio.sleep(0.1)
    finally:
        await on_x.close()


async def test_stopping_the_link_removes_its_clients_and_leaves_the_hub_running(
        foreign: dict[str, samphub.SampflowHub], fed_b: Federation, people: Clients) -> None:
    on_x = await Recorder("x-watch").connect(foreign["X"].lockfile)
    try:
        await people.on("B", "b-thing", {"test.echo": {}})
        await wait_proxy(on_x, "b-thing (proxy@B)")
        assert foreign["link"].stop(check_lockfile=False) == 0
        left = [n for n in (await names(on_x)).values() if "proxy@" in n or "sampflow-link" in n]
        assert left == []
        assert foreign["X"].running()
    finally:
        await on_x.close()
