"""Fixtures for the integration tests: sampflow hubs in this process, on real sockets."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from samphub import SampflowHub, running_hub

from sampflow.samp.hub.server import AsyncHub
from sampflow.samp.hub.sync import SAMPHubServer

StartHub = Callable[..., Awaitable[AsyncHub]]


@pytest.fixture
async def start_hub(tmp_path: Path) -> AsyncIterator[StartHub]:
    """``await start_hub(**AsyncHub options)``: a running hub with its own lockfile in
    `tmp_path`; every hub started is stopped after the test."""
    hubs: list[AsyncHub] = []

    async def start(**options: Any) -> AsyncHub:
        hub = AsyncHub(lockfile=tmp_path / f"lock{len(hubs) or ''}", **options)
        await hub.start()
        hubs.append(hub)
        return hub

    yield start
    for hub in reversed(hubs):
        await hub.stop(grace=0.5)


@pytest.fixture
async def hub(start_hub: StartHub) -> AsyncHub:
    """A running hub with default options (modules may override with other options)."""
    return await start_hub()


@pytest.fixture
def hub_process(tmp_path: Path) -> Iterator[SampflowHub]:
    """``sampflow hub --no-web-profile`` as a process on a temporary lockfile (its log in
    ``tmp_path/hub``), stopped by PID after the test."""
    (tmp_path / "hub").mkdir()
    with running_hub(tmp_path / "hub" / "lock", log_dir=tmp_path / "hub",
                     args=["--no-web-profile"]) as h:
        yield h


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """An ``aiohttp`` client session for requests written by hand (`samphub.post_xmlrpc`);
    each request may take two minutes."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as s:
        yield s


@pytest.fixture
def hub_server(tmp_path: Path) -> Iterator[SAMPHubServer]:
    """A running `SAMPHubServer` (the astropy-compatible blocking hub, Standard Profile only)
    on a lockfile in `tmp_path`, stopped after the test."""
    server = SAMPHubServer(lockfile=str(tmp_path / "lock"), web_profile=False)
    server.start()
    try:
        yield server
    finally:
        server.stop()
