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
import time
import xmlrpc.client
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from samphub import Recorder

from sampflow.samp.hub.server import AsyncHub
from sampflow.samp.xmlrpc import MAX_BODY_BYTES, MAX_VALUES, dumps_request


@pytest.fixture
async def hub(start_hub: Any) -> AsyncHub:
    return await start_hub(client_timeout=10)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as s:
        yield s


async def post(session: aiohttp.ClientSession, url: str, body: bytes) -> Any:
    async with session.post(url, data=body, headers={"Content-Type": "text/xml"}) as r:
        payload = await r.read()
    try:
        return xmlrpc.client.loads(payload.decode("utf-8"))[0][0]
    except xmlrpc.client.Fault as fault:
        return fault


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
