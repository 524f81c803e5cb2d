"""Fixtures for the `sampflow.samp.wire` tests: servers, raw connections and clients, each
closed when its test ends."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from wirekit import HOST, WAIT, Connect, RawServer, Reader, Session, StartRaw, StartServer, Writer

from sampflow.samp.wire import HttpClient, Request, serve

# -- fixtures --------------------------------------------------------------------------------



@pytest.fixture
async def start_server() -> AsyncIterator[StartServer]:
    """``await start_server(handler, **serve options)``; every server is closed afterwards."""
    servers: list[Any] = []

    async def start(handler: Callable[[Request], Any], **options: Any) -> Any:
        options.setdefault("max_body", 1 << 20)
        server = await serve(handler, HOST, 0, **options)
        servers.append(server)
        return server

    try:
        yield start
    finally:
        for server in servers:
            await server.close(grace=0.1)




@pytest.fixture
async def connect() -> AsyncIterator[Connect]:
    """``await connect(port)``: a raw loopback connection, closed after the test."""
    writers: list[Writer] = []

    async def open_(port: int) -> tuple[Reader, Writer]:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), WAIT)
        writers.append(writer)
        return reader, writer

    try:
        yield open_
    finally:
        for writer in writers:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1)


@pytest.fixture
async def client() -> AsyncIterator[HttpClient]:
    http = HttpClient()
    try:
        yield http
    finally:
        await http.close()


@pytest.fixture
async def raw_server() -> AsyncIterator[StartRaw]:
    """``await raw_server(session)``: `session(server, n, reader, writer)` for the n-th
    connection (1-based); the writer is closed when it returns. All closed afterwards."""
    servers: list[asyncio.Server] = []
    writers: list[Writer] = []
    tasks: set[asyncio.Task[Any]] = set()

    async def start(session: Session) -> RawServer:
        raw = RawServer()

        async def accepted(reader: Reader, writer: Writer) -> None:
            task = asyncio.current_task()
            assert task is not None
            tasks.add(task)
            writers.append(writer)
            raw.connections += 1
            raw.peers.append(writer.get_extra_info("peername"))
            try:
                await session(raw, raw.connections, reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(accepted, HOST, 0)
        servers.append(server)
        raw.port = server.sockets[0].getsockname()[1]
        raw.url = f"http://{HOST}:{raw.port}/xmlrpc"
        return raw

    try:
        yield start
    finally:
        for server in servers:
            server.close()
        for writer in writers:
            writer.close()
        pending = [t for t in tasks if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=2)
            for task in pending:
                task.cancel()
        for server in servers:
            await server.wait_closed()
