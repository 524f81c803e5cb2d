"""Very large requests must not stall the hub for its other clients (issue 9, item 4).

The bounds are documented in `sampflow.samp.xmlrpc` (per request: `MAX_BODY_BYTES`,
`MAX_VALUES`; per value: `MAX_STRING_CHARS`). Over a bound, the request gets a fault and
the hub serves on; under them, a large body is parsed off the event loop, so that another
client's pings keep being answered meanwhile. No wall-clock threshold: the pings are compared
with the large request itself, in the same test.
"""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys
import time
import xmlrpc.client
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import samphub
from samphub import Recorder

from sampflow.samp.hub.server import AsyncHub
from sampflow.samp.xmlrpc import MAX_BODY_BYTES, MAX_VALUES, dumps_request


@pytest.fixture
async def hub(start_hub: Any) -> AsyncHub:
    return await start_hub(client_timeout=10)


async def post(session: aiohttp.ClientSession, url: str, body: bytes) -> Any:
    """`samphub.post_xmlrpc`'s value (or `xmlrpc.client.Fault`), without the status."""
    return (await samphub.post_xmlrpc(session, url, body))[1]


def metadata_body(key: str, items: int, item: str = "<value>x</value>") -> bytes:
    """``declareMetadata`` of a map holding one list of `items` values, written by hand."""
    return ("<?xml version='1.0'?><methodCall><methodName>samp.hub.declareMetadata"
            f"</methodName><params><param><value><string>{key}</string></value></param>"
            "<param><value><struct><member><name>samp.name</name><value>big</value></member>"
            "<member><name>list</name><value><array><data>" + item * items +
            "</data></array></value></member></struct></value></param></params></methodCall>"
            ).encode()


@pytest.fixture
async def pair(hub: AsyncHub) -> AsyncIterator[tuple[Recorder, Recorder]]:
    big = await Recorder("big").connect(hub.lockfile)
    other = await Recorder("other", {"test.tick": {}}).connect(hub.lockfile)
    try:
        yield big, other
    finally:
        await big.close()
        await other.close()


async def assert_serving(hub: AsyncHub, big: Recorder, other: Recorder, n: int) -> None:
    await big.client.notify(other.id, {"samp.mtype": "test.tick", "samp.params": {"n": str(n)}})
    await other.wait_for(lambda r: len(r.messages("test.tick")) == n)
    assert (await other.client.get_metadata(big.id))["samp.name"] == "big"


async def test_a_15_mb_map_of_a_million_values_gets_a_fault(
        hub: AsyncHub, session: aiohttp.ClientSession, pair: tuple[Recorder, Recorder]) -> None:
    big, other = pair
    key = big.client.private_key
    assert key is not None
    await big.client.declare_metadata({"samp.name": "big"})
    body = metadata_body(key, 1_000_000)
    assert len(body) > 15_000_000
    fault = await post(session, hub.url, body)
    assert isinstance(fault, xmlrpc.client.Fault), fault
    assert "exceeds" in fault.faultString and str(MAX_BODY_BYTES) in fault.faultString
    await assert_serving(hub, big, other, 1)


async def test_too_many_values_under_the_size_bound_get_a_fault(
        hub: AsyncHub, session: aiohttp.ClientSession, pair: tuple[Recorder, Recorder]) -> None:
    big, other = pair
    key = big.client.private_key
    assert key is not None
    await big.client.declare_metadata({"samp.name": "big"})
    body = metadata_body(key, MAX_VALUES + 1, "<value/>")
    assert len(body) < MAX_BODY_BYTES
    fault = await post(session, hub.url, body)
    assert isinstance(fault, xmlrpc.client.Fault), fault
    assert f"more than {MAX_VALUES} values" in fault.faultString
    await assert_serving(hub, big, other, 1)


async def test_a_large_request_does_not_stop_other_clients_pings(
        hub: AsyncHub, session: aiohttp.ClientSession, pair: tuple[Recorder, Recorder]) -> None:
    big, other = pair
    key = big.client.private_key
    assert key is not None
    body = metadata_body(key, 180_000, "<value><string>row-000000</string></value>")
    assert len(body) < MAX_BODY_BYTES
    ping = dumps_request("samp.hub.ping", (other.client.private_key,))
    answered: list[float] = []
    done = asyncio.Event()

    async def pinger() -> None:
        async with aiohttp.ClientSession() as own:  # its own connection
            while not done.is_set():
                assert await post(own, hub.url, ping) == ""
                answered.append(time.monotonic())

    task = asyncio.create_task(pinger())
    try:
        while len(answered) < 20:  # warmed up
            await asyncio.sleep(0.01)
        start = time.monotonic()
        assert await post(session, hub.url, body) == ""
        end = time.monotonic()
    finally:
        done.set()
        await task
    during = [t for t in answered if start <= t <= end]
    marks = [start, *during, end]
    longest_gap = max(b - a for a, b in itertools.pairwise(marks))
    # Parsed on the loop, the request would leave one gap as long as its parse, most of its
    # time; parsed off the loop, pings go on all along.
    assert len(during) >= 5, (len(during), end - start)
    assert longest_gap < (end - start) / 2, (longest_gap, end - start, len(during))
    assert (await other.client.get_metadata(big.id))["list"][:1] == ["row-000000"]


SINK = r"""
import socketserver, sys, threading

LOCK = threading.Lock()

BODY = (b"<?xml version='1.0'?><methodResponse><params><param><value></value></param>"
        b"</params></methodResponse>")
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: %d\r\n\r\n%b" % (
    len(BODY), BODY)

class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        while True:
            length = 0
            while (line := self.rfile.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            if not line:
                return
            self.rfile.read(length)
            with LOCK:
                print(length, flush=True)
            self.wfile.write(ANSWER)

server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
print(server.server_address[1], flush=True)
server.serve_forever()
"""


class Sink:
    """A callback server in a process of its own (so that it loads neither the hub nor this
    test's loop): reads each request whole, answers it without parsing it, and prints the
    size of each request it got."""

    def __init__(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", SINK], stdout=subprocess.PIPE,
                                        text=True)
        assert self.process.stdout is not None
        self.url = f"http://127.0.0.1:{int(self.process.stdout.readline())}/"
        self.sizes: list[int] = []

    def wait_for(self, count: int) -> None:
        assert self.process.stdout is not None
        while len(self.sizes) < count:
            line = self.process.stdout.readline()
            assert line, "the sink exited"
            self.sizes.append(int(line))

    def close(self) -> None:
        self.process.kill()
        self.process.wait(10)
        if self.process.stdout is not None:
            self.process.stdout.close()


@pytest.fixture
def sink() -> Iterator[Sink]:
    started = Sink()
    try:
        yield started
    finally:
        started.close()


async def register_sink(session: aiohttp.ClientSession, url: str, secret: str,
                        callback: str, mtype: str) -> None:
    """Register a raw client whose callback is `callback`, subscribed to `mtype`."""
    reg = await post(session, url, xmlrpc.client.dumps((secret,), "samp.hub.register").encode())
    key = reg["samp.private-key"]
    for method, arg in (("samp.hub.setXmlrpcCallback", callback),
                        ("samp.hub.declareSubscriptions", {mtype: {}})):
        assert await post(session, url, xmlrpc.client.dumps((key, arg), method).encode()) == ""


async def pings_during(url: str, key: str, work: Any) -> tuple[list[float], float, float]:
    """Ping the hub at `url` on a connection of its own while `work()` runs; returns the
    answer times during it, its start (or the instant `work` returns, if any) and end."""
    ping = dumps_request("samp.hub.ping", (key,))
    answered: list[float] = []
    done = asyncio.Event()

    async def pinger() -> None:
        async with aiohttp.ClientSession() as own:
            while not done.is_set():
                assert await post(own, url, ping) == ""
                answered.append(time.monotonic())

    task = asyncio.create_task(pinger())
    try:
        while len(answered) < 20:
            await asyncio.sleep(0.01)
        start = time.monotonic()
        start = await work() or start
        end = time.monotonic()
    finally:
        done.set()
        await task
    return [t for t in answered if start <= t <= end], start, end


def assert_no_stall(during: list[float], start: float, end: float) -> None:
    marks = [start, *during, end]
    longest_gap = max(b - a for a, b in itertools.pairwise(marks))
    assert len(during) >= 5, (len(during), end - start)
    assert longest_gap < (end - start) / 2, (longest_gap, end - start, len(during))


@pytest.fixture
def hub_process(tmp_path: Path) -> Iterator[samphub.SampflowHub]:
    """``sampflow hub`` in a process of its own: this test's loop then only measures."""
    with samphub.running_hub(tmp_path / "samp.lock", log_dir=tmp_path / "hub") as hub:
        yield hub


SUBSCRIBERS = 60


async def test_relaying_and_answering_large_values_does_not_stop_other_clients_pings(
        hub_process: samphub.SampflowHub, session: aiohttp.ClientSession, sink: Sink) -> None:
    """A large notification to many subscribers, then ``getMetadata`` of a large map: each
    is a big value to encode, which must happen off the hub's loop."""
    url = hub_process.url
    big = await Recorder("big").connect(hub_process.lockfile)
    other = await Recorder("other").connect(hub_process.lockfile)
    try:
        key, other_key = big.client.private_key, other.client.private_key
        assert key is not None and other_key is not None
        for _ in range(SUBSCRIBERS):
            await register_sink(session, url, hub_process.secret, sink.url, "test.big")
        rows = [f"row-{i:06d}" for i in range(20_000)]  # encoded once per subscriber

        async def fan_out() -> None:
            await big.client.notify_all({"samp.mtype": "test.big",
                                         "samp.params": {"rows": rows}})
            await asyncio.wait_for(asyncio.to_thread(sink.wait_for, SUBSCRIBERS), 60)

        assert_no_stall(*await pings_during(url, other_key, fan_out))
        body = metadata_body(key, 120_000, "<value><string>row-000000</string></value>")
        assert await post(session, url, body) == ""
        get = dumps_request("samp.hub.getMetadata", (other_key, big.id))
        got: list[bytes] = []

        async def get_metadata() -> None:
            async with session.post(url, data=get) as r:
                got.append(await r.read())

        assert_no_stall(*await pings_during(url, other_key, get_metadata))
        value = (await asyncio.to_thread(xmlrpc.client.loads, got[0]))[0][0]
        assert len(value["list"]) == 120_000
    finally:
        await big.close()
        await other.close()
