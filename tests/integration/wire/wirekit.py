"""Helpers shared by ``test_wire_server.py`` and ``test_wire_client.py`` (fixtures: conftest.py).

Everything listens on 127.0.0.1 port 0, and the fixtures close every server, connection and
client they open.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sampflow.samp.wire import (
    Request,
    Response,
)

HOST = "127.0.0.1"
#: Bound on any single wait in these tests: a broken server shows as a timeout, not a hang.
WAIT = 5.0

Reader = asyncio.StreamReader
Writer = asyncio.StreamWriter


# -- helpers ---------------------------------------------------------------------------------

def request_bytes(body: bytes = b"", *, path: str = "/xmlrpc", version: str = "1.1",
                  headers: tuple[str, ...] = (), length: bool = True) -> bytes:
    """A request written by hand, CRLF line ends."""
    lines = [f"POST {path} HTTP/{version}", "Host: 127.0.0.1", "Content-Type: text/xml"]
    if length:
        lines.append(f"Content-Length: {len(body)}")
    lines.extend(headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@dataclass
class Answer:
    status_line: str
    headers: dict[str, str]
    body: bytes

    @property
    def status(self) -> int:
        return int(self.status_line.split()[1])


async def read_response(reader: Reader) -> Answer:
    """One response framed by its ``Content-Length`` (the server always sends one)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
    lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            assert name.lower() not in headers, f"repeated header {name!r} in {head!r}"
            headers[name.strip().lower()] = value.strip()
    assert "content-length" in headers, head
    body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), WAIT)
    return Answer(lines[0], headers, body)


async def assert_closed(reader: Reader, within: float = WAIT) -> None:
    """The server closed the connection (EOF) and sent nothing more."""
    assert await asyncio.wait_for(reader.read(), within) == b""


async def read_request(reader: Reader) -> tuple[bytes, bytes]:
    """Server side of the raw servers: one request's head and ``Content-Length`` body."""
    head = await reader.readuntil(b"\r\n\r\n")
    match = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    body = await reader.readexactly(int(match.group(1))) if match else b""
    return head, body


def ok(body: bytes, *, extra: bytes = b"") -> bytes:
    """An HTTP/1.1 keep-alive answer with ``Content-Length``."""
    return (b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: %d\r\n%b\r\n%b"
            % (len(body), extra, body))


def echo(request: Request) -> Response:
    return Response(request.body, content_type="text/plain")


@dataclass
class Recorder:
    """A handler that keeps every request in `seen` and echoes its body."""

    seen: list[Request]

    def __call__(self, request: Request) -> Response:
        self.seen.append(request)
        return echo(request)


@dataclass
class TooLarge:
    """A ``too_large`` handler that keeps the announced length of each body it refused
    (None for a chunked one) in `lengths` and answers ``413 too big, sorry``."""

    lengths: list[int | None] = field(default_factory=list)

    def __call__(self, length: int | None) -> Response:
        self.lengths.append(length)
        return Response(b"too big, sorry", 413, "text/plain")


# -- types of the fixtures (conftest.py) ----------------------------------------------------

StartServer = Callable[..., Awaitable[Any]]
Connect = Callable[[int], Awaitable[tuple[Reader, Writer]]]


@dataclass
class RawServer:
    """A hand-written server; `session` runs once per accepted connection."""

    port: int = 0
    connections: int = 0
    url: str = ""
    peers: list[Any] = field(default_factory=list)


Session = Callable[[RawServer, int, Reader, Writer], Awaitable[None]]
StartRaw = Callable[[Session], Awaitable[RawServer]]
