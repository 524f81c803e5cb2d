"""`sampflow.samp.wire` on real loopback sockets: the HTTP/1.1 server and the keep-alive client.

Server tests drive `serve` with raw bytes written by hand through `asyncio.open_connection`,
so every framing detail (bare LF heads, chunked bodies, ``Expect: 100-continue``,
pipelining) is exactly what the test says. Client tests point `HttpClient` either at a
`serve` server or at a raw `asyncio.start_server` that misbehaves on purpose (closes after
one answer like SAO DS9, never answers, answers without ``Content-Length``...).

Everything listens on 127.0.0.1 port 0, and the fixtures close every server, connection and
client they open.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import re
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from sampflow.samp.wire import (
    HttpClient,
    HttpClientError,
    Request,
    Response,
    ServerDisconnected,
    serve,
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


# -- fixtures --------------------------------------------------------------------------------

StartServer = Callable[..., Awaitable[Any]]


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


Connect = Callable[[int], Awaitable[tuple[Reader, Writer]]]


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


@dataclass
class RawServer:
    """A hand-written server; `session` runs once per accepted connection."""

    port: int = 0
    connections: int = 0
    url: str = ""
    peers: list[Any] = field(default_factory=list)


Session = Callable[[RawServer, int, Reader, Writer], Awaitable[None]]
StartRaw = Callable[[Session], Awaitable[RawServer]]


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


# -- server ----------------------------------------------------------------------------------

async def test_post_with_content_length_reaches_handler_and_is_answered(
        start_server: StartServer, connect: Connect) -> None:
    seen: list[Request] = []

    def handler(request: Request) -> Response:
        seen.append(request)
        return Response(b"<answer/>", content_type="text/xml; charset=utf-8")

    server = await start_server(handler)
    reader, writer = await connect(server.port)
    body = b"<?xml version='1.0'?><methodCall/>"
    writer.write(request_bytes(body, path="/xmlrpc?x=1",
                               headers=("X-Mixed-Case: Some Value", "X-Rep: a", "X-Rep: b")))
    answer = await read_response(reader)

    assert answer.status_line == "HTTP/1.1 200 OK"
    assert answer.body == b"<answer/>"
    assert answer.headers["content-length"] == str(len(b"<answer/>"))
    assert answer.headers["content-type"] == "text/xml; charset=utf-8"
    date = email.utils.parsedate_to_datetime(answer.headers["date"])
    assert answer.headers["date"].endswith("GMT")
    assert abs((datetime.now(UTC) - date).total_seconds()) < 3600
    assert "connection" not in answer.headers  # HTTP/1.1 keep-alive is the default

    [request] = seen
    assert request.method == "POST"
    assert request.path == "/xmlrpc?x=1"
    assert request.body == body
    assert request.headers["x-mixed-case"] == "Some Value"
    assert request.headers["x-rep"] == "a, b"
    assert request.headers["content-length"] == str(len(body))
    assert request.headers["host"] == "127.0.0.1"
    assert all(name == name.lower() for name in request.headers)
    assert tuple(request.peer[:2]) == tuple(writer.get_extra_info("sockname")[:2])


async def test_keep_alive_then_connection_close(start_server: StartServer,
                                                connect: Connect) -> None:
    peers: list[Any] = []

    def handler(request: Request) -> Response:
        peers.append(request.peer)
        return echo(request)

    server = await start_server(handler)
    reader, writer = await connect(server.port)
    writer.write(request_bytes(b"first"))
    first = await read_response(reader)
    writer.write(request_bytes(b"second"))
    second = await read_response(reader)
    assert (first.status, first.body) == (200, b"first")
    assert (second.status, second.body) == (200, b"second")
    assert "connection" not in first.headers and "connection" not in second.headers

    writer.write(request_bytes(b"last", headers=("Connection: close",)))
    last = await read_response(reader)
    assert (last.status, last.body) == (200, b"last")
    assert last.headers["connection"].lower() == "close"
    await assert_closed(reader)
    assert len(peers) == 3 and len(set(peers)) == 1


async def test_http10_closes_unless_keep_alive_asked(start_server: StartServer,
                                                     connect: Connect) -> None:
    server = await start_server(echo)

    reader, writer = await connect(server.port)
    writer.write(request_bytes(b"one-shot", version="1.0"))
    answer = await read_response(reader)
    assert (answer.status, answer.body) == (200, b"one-shot")
    assert answer.headers["connection"].lower() == "close"
    await assert_closed(reader)

    reader, writer = await connect(server.port)
    writer.write(request_bytes(b"a", version="1.0", headers=("Connection: keep-alive",)))
    answer = await read_response(reader)
    assert (answer.status, answer.body) == (200, b"a")
    assert answer.headers["connection"].lower() == "keep-alive"
    writer.write(request_bytes(b"b", version="1.0", headers=("Connection: keep-alive",)))
    answer = await read_response(reader)
    assert (answer.status, answer.body) == (200, b"b")
    assert answer.headers["connection"].lower() == "keep-alive"


async def test_bare_lf_head_as_ds9_sends_it(start_server: StartServer,
                                            connect: Connect) -> None:
    seen: list[Request] = []

    def handler(request: Request) -> Response:
        seen.append(request)
        return Response(b"<methodResponse/>")

    server = await start_server(handler)
    reader, writer = await connect(server.port)
    body = b"<?xml version='1.0'?>\n<methodCall><methodName>samp.hub.ping</methodName>" \
           b"</methodCall>\n"
    writer.write(b"POST /xmlrpc HTTP/1.0\nHost: x\nContent-Type: text/xml\n"
                 b"Content-Length: %d\n\n%b" % (len(body), body))
    answer = await read_response(reader)
    assert (answer.status, answer.body) == (200, b"<methodResponse/>")
    [request] = seen
    assert (request.method, request.path, request.body) == ("POST", "/xmlrpc", body)
    assert request.headers["host"] == "x"
    assert request.headers["content-type"] == "text/xml"
    await assert_closed(reader)  # HTTP/1.0 without keep-alive


async def test_chunked_body_is_dechunked(start_server: StartServer, connect: Connect) -> None:
    seen: list[Request] = []
    server = await start_server(Recorder(seen))
    reader, writer = await connect(server.port)
    writer.write(request_bytes(length=False, headers=("Transfer-Encoding: chunked",)))
    for piece in (b"5\r\nhello\r\n", b"6\r\n world\r\n", b"0\r\n\r\n"):
        writer.write(piece)
        await writer.drain()
        await asyncio.sleep(0.01)
    answer = await read_response(reader)
    assert (answer.status, answer.body) == (200, b"hello world")
    assert seen[0].body == b"hello world"


async def test_expect_100_continue(start_server: StartServer, connect: Connect) -> None:
    seen: list[Request] = []
    server = await start_server(Recorder(seen))
    reader, writer = await connect(server.port)
    body = b"<methodCall/>"
    head = request_bytes(body, headers=("Expect: 100-continue",))[:-len(body)]
    writer.write(head)
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert seen == []
    writer.write(body)
    answer = await read_response(reader)
    assert (answer.status, answer.body) == (200, body)
    assert seen[0].body == body


async def test_content_length_over_max_body_gets_too_large(start_server: StartServer,
                                                           connect: Connect) -> None:
    lengths: list[int | None] = []
    seen: list[Request] = []

    def too_large(length: int | None) -> Response:
        lengths.append(length)
        return Response(b"too big, sorry", 413, "text/plain")

    server = await start_server(Recorder(seen), max_body=100, too_large=too_large)
    reader, writer = await connect(server.port)
    # the head announces 1000 bytes; send a little of the body only: the answer must not wait
    writer.write(request_bytes(b"x" * 1000)[:-990])
    answer = await read_response(reader)
    assert (answer.status, answer.body) == (413, b"too big, sorry")
    assert answer.headers["connection"].lower() == "close"
    await assert_closed(reader)
    assert lengths == [1000]
    assert seen == []


async def test_chunked_body_growing_over_max_body_gets_too_large(
        start_server: StartServer, connect: Connect) -> None:
    lengths: list[int | None] = []
    seen: list[Request] = []

    def too_large(length: int | None) -> Response:
        lengths.append(length)
        return Response(b"too big, sorry", 413, "text/plain")

    server = await start_server(Recorder(seen), max_body=100, too_large=too_large)
    reader, writer = await connect(server.port)
    chunk = b"%x\r\n%b\r\n" % (60, b"y" * 60)
    writer.write(request_bytes(length=False, headers=("Transfer-Encoding: chunked",))
                 + chunk * 3 + b"0\r\n\r\n")
    answer = await read_response(reader)
    assert (answer.status, answer.body) == (413, b"too big, sorry")
    assert answer.headers["connection"].lower() == "close"
    await assert_closed(reader)
    assert lengths == [None]
    assert seen == []


async def test_body_of_exactly_max_body_is_accepted(start_server: StartServer,
                                                    connect: Connect) -> None:
    server = await start_server(echo, max_body=100)
    reader, writer = await connect(server.port)
    writer.write(request_bytes(b"z" * 100))
    answer = await read_response(reader)
    assert (answer.status, answer.body) == (200, b"z" * 100)
    writer.write(request_bytes(length=False, headers=("Transfer-Encoding: chunked",))
                 + b"32\r\n" + b"w" * 50 + b"\r\n" + b"32\r\n" + b"w" * 50 + b"\r\n0\r\n\r\n")
    answer = await read_response(reader)
    assert (answer.status, answer.body) == (200, b"w" * 100)


async def test_garbage_gets_400_and_server_keeps_serving(start_server: StartServer,
                                                         connect: Connect) -> None:
    server = await start_server(echo)
    reader, writer = await connect(server.port)
    writer.write(b"NOT HTTP\r\n\r\n")
    answer = await read_response(reader)
    assert answer.status == 400
    assert answer.headers["connection"].lower() == "close"
    await assert_closed(reader)

    reader, writer = await connect(server.port)
    writer.write(request_bytes(b"still here"))
    answer = await read_response(reader)
    assert (answer.status, answer.body) == (200, b"still here")


async def test_pipelined_requests_answered_in_order(start_server: StartServer,
                                                    connect: Connect) -> None:
    def handler(request: Request) -> Any:
        if request.body == b"slow":
            async def later() -> Response:
                await asyncio.sleep(0.05)
                return Response(b"slow")
            return later()
        return echo(request)

    server = await start_server(handler)
    reader, writer = await connect(server.port)
    writer.write(request_bytes(b"slow") + request_bytes(b"second") + request_bytes(b"third"))
    bodies = [(await read_response(reader)).body for _ in range(3)]
    assert bodies == [b"slow", b"second", b"third"]


async def test_pipelined_backlog_beyond_queue_limit_is_all_answered(
        start_server: StartServer, connect: Connect) -> None:
    """More pipelined requests than the server queues before pausing reads (16)."""
    def handler(request: Request) -> Any:
        if request.body == b"0":
            async def later() -> Response:
                await asyncio.sleep(0.1)
                return echo(request)
            return later()
        return echo(request)

    server = await start_server(handler)
    reader, writer = await connect(server.port)
    writer.write(b"".join(request_bytes(b"%d" % i) for i in range(50)))
    bodies = [(await read_response(reader)).body for _ in range(50)]
    assert bodies == [b"%d" % i for i in range(50)]
    writer.write(request_bytes(b"after"))
    assert (await read_response(reader)).body == b"after"


async def test_handler_exception_gets_500_and_connection_survives(
        start_server: StartServer, connect: Connect) -> None:
    def handler(request: Request) -> Any:
        if request.body == b"raise":
            raise RuntimeError("handler bug")
        if request.body == b"async-raise":
            async def failing() -> Response:
                await asyncio.sleep(0)
                raise RuntimeError("async handler bug")
            return failing()
        return echo(request)

    server = await start_server(handler)
    reader, writer = await connect(server.port)
    writer.write(request_bytes(b"raise"))
    assert (await read_response(reader)).status == 500
    writer.write(request_bytes(b"fine"))
    answer = await read_response(reader)
    assert (answer.status, answer.body) == (200, b"fine")
    writer.write(request_bytes(b"async-raise"))
    assert (await read_response(reader)).status == 500
    writer.write(request_bytes(b"fine again"))
    answer = await read_response(reader)
    assert (answer.status, answer.body) == (200, b"fine again")


async def test_idle_connection_is_closed_after_idle_timeout(start_server: StartServer,
                                                            connect: Connect) -> None:
    server = await start_server(echo, idle_timeout=0.2)
    reader, _ = await connect(server.port)
    await assert_closed(reader, within=2.5)

    # the same after a request was answered
    reader, writer = await connect(server.port)
    writer.write(request_bytes(b"once"))
    assert (await read_response(reader)).body == b"once"
    await assert_closed(reader, within=2.5)


async def test_idle_timeout_spares_a_connection_waiting_for_its_answer(
        start_server: StartServer, connect: Connect) -> None:
    async def slow(request: Request) -> Response:
        await asyncio.sleep(0.5)
        return echo(request)

    server = await start_server(slow, idle_timeout=0.2)
    reader, writer = await connect(server.port)
    writer.write(request_bytes(b"worth the wait"))
    answer = await read_response(reader)
    assert (answer.status, answer.body) == (200, b"worth the wait")
    await assert_closed(reader, within=2.5)  # and idle afterwards: closed


async def test_close_with_grace_lets_inflight_request_finish(start_server: StartServer,
                                                             connect: Connect) -> None:
    started = asyncio.Event()

    async def slow(request: Request) -> Response:
        started.set()
        await asyncio.sleep(0.3)
        return Response(b"finished")

    server = await start_server(slow)
    idle_reader, _ = await connect(server.port)
    reader, writer = await connect(server.port)
    writer.write(request_bytes(b"x"))
    await asyncio.wait_for(started.wait(), WAIT)

    began = time.monotonic()
    await asyncio.wait_for(server.close(grace=5.0), WAIT + 2)
    elapsed = time.monotonic() - began
    assert elapsed < 4.0  # returned when the request was done, not after the whole grace

    answer = await read_response(reader)
    assert (answer.status, answer.body) == (200, b"finished")
    assert answer.headers["connection"].lower() == "close"
    await assert_closed(reader)
    await assert_closed(idle_reader)
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection(HOST, server.port)


# -- client ----------------------------------------------------------------------------------

async def test_client_post_reuses_one_connection(start_server: StartServer,
                                                 client: HttpClient) -> None:
    seen: list[Request] = []

    def handler(request: Request) -> Response:
        seen.append(request)
        return Response(b"re:" + request.body)

    server = await start_server(handler)
    url = f"http://{HOST}:{server.port}/xmlrpc"
    assert await client.post(url, b"one") == (200, b"re:one")
    assert await client.post(url, b"two") == (200, b"re:two")
    assert [r.body for r in seen] == [b"one", b"two"]
    assert len({r.peer for r in seen}) == 1
    assert seen[0].method == "POST" and seen[0].path == "/xmlrpc"
    assert seen[0].headers["content-type"] == "text/xml"
    assert seen[0].headers["host"] == f"{HOST}:{server.port}"


async def test_client_keep_alive_false_sends_connection_close(start_server: StartServer,
                                                              client: HttpClient) -> None:
    seen: list[Request] = []
    server = await start_server(Recorder(seen))
    url = f"http://{HOST}:{server.port}/"
    for body in (b"a", b"b"):
        assert await client.post(url, body, keep_alive=False) == (200, body)
    assert [r.headers.get("connection", "").lower() for r in seen] == ["close", "close"]
    assert len({r.peer for r in seen}) == 2


async def test_client_new_connection_when_server_says_close(start_server: StartServer,
                                                            client: HttpClient) -> None:
    seen: list[Request] = []

    def handler(request: Request) -> Response:
        seen.append(request)
        return Response(request.body, close=True)

    server = await start_server(handler)
    url = f"http://{HOST}:{server.port}/"
    for i in range(4):
        assert await client.post(url, b"%d" % i) == (200, b"%d" % i)
    assert len({r.peer for r in seen}) == 4


async def test_client_survives_server_closing_after_each_answer(raw_server: StartRaw,
                                                                client: HttpClient) -> None:
    """SAO DS9's way: HTTP/1.1, ``Content-Length``, no ``Connection: close``, then close."""
    async def ds9(raw: RawServer, n: int, reader: Reader, writer: Writer) -> None:
        _, body = await read_request(reader)
        writer.write(ok(b"re:" + body))
        await writer.drain()

    raw = await raw_server(ds9)
    for i in range(20):
        assert await client.post(raw.url, b"%d" % i, timeout=WAIT) == (200, b"re:%d" % i)
    assert raw.connections >= 20


async def test_client_fresh_connection_closed_unanswered_raises(raw_server: StartRaw,
                                                                client: HttpClient) -> None:
    async def rude(raw: RawServer, n: int, reader: Reader, writer: Writer) -> None:
        await read_request(reader)

    raw = await raw_server(rude)
    with pytest.raises(ServerDisconnected) as caught:
        await client.post(raw.url, b"x", timeout=WAIT)
    assert caught.value.answered is False
    assert isinstance(caught.value, HttpClientError)
    assert raw.connections == 1  # a fresh connection is not retried


async def test_client_retries_once_when_reused_connection_was_closed(
        raw_server: StartRaw, client: HttpClient) -> None:
    async def session(raw: RawServer, n: int, reader: Reader, writer: Writer) -> None:
        if n == 1:
            _, body = await read_request(reader)
            writer.write(ok(b"first:" + body))
            await writer.drain()
            await read_request(reader)  # the next request on this connection: no answer
            return
        while True:
            _, body = await read_request(reader)
            writer.write(ok(b"retry:" + body))
            await writer.drain()

    raw = await raw_server(session)
    assert await client.post(raw.url, b"a", timeout=WAIT) == (200, b"first:a")
    assert await client.post(raw.url, b"b", timeout=WAIT) == (200, b"retry:b")
    assert raw.connections == 2


async def test_client_retries_only_once(raw_server: StartRaw, client: HttpClient) -> None:
    async def session(raw: RawServer, n: int, reader: Reader, writer: Writer) -> None:
        if n == 1:
            _, body = await read_request(reader)
            writer.write(ok(body))
            await writer.drain()
        await read_request(reader)  # then: read a request and close without answering

    raw = await raw_server(session)
    assert await client.post(raw.url, b"a", timeout=WAIT) == (200, b"a")
    with pytest.raises(ServerDisconnected) as caught:
        await client.post(raw.url, b"b", timeout=WAIT)
    assert caught.value.answered is False
    assert raw.connections == 2  # the reused one, then one retry


async def test_client_no_retry_after_partial_answer(raw_server: StartRaw,
                                                    client: HttpClient) -> None:
    async def session(raw: RawServer, n: int, reader: Reader, writer: Writer) -> None:
        _, body = await read_request(reader)
        writer.write(ok(body))
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")
        await writer.drain()

    raw = await raw_server(session)
    assert await client.post(raw.url, b"a", timeout=WAIT) == (200, b"a")
    with pytest.raises(ServerDisconnected) as caught:
        await client.post(raw.url, b"b", timeout=WAIT)
    assert caught.value.answered is True
    assert raw.connections == 1


async def test_client_reads_close_delimited_body(raw_server: StartRaw,
                                                 client: HttpClient) -> None:
    payload = bytes(range(256)) * 800  # 200 kB, several reads

    async def session(raw: RawServer, n: int, reader: Reader, writer: Writer) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/xml\r\n\r\n")
        for start in range(0, len(payload), 50_000):
            writer.write(payload[start:start + 50_000])
            await writer.drain()
            await asyncio.sleep(0.005)

    raw = await raw_server(session)
    status, body = await client.post(raw.url, b"x", timeout=WAIT)
    assert status == 200
    assert body == payload
    assert await client.post(raw.url, b"again", timeout=WAIT) == (200, payload)
    assert raw.connections == 2


async def test_client_reads_chunked_answer(raw_server: StartRaw, client: HttpClient) -> None:
    async def session(raw: RawServer, n: int, reader: Reader, writer: Writer) -> None:
        while True:
            await read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"4\r\nabcd\r\n3\r\nefg\r\n0\r\n\r\n")
            await writer.drain()

    raw = await raw_server(session)
    assert await client.post(raw.url, b"x", timeout=WAIT) == (200, b"abcdefg")
    assert await client.post(raw.url, b"y", timeout=WAIT) == (200, b"abcdefg")
    assert raw.connections == 1


async def test_client_skips_interim_100_continue(raw_server: StartRaw,
                                                 client: HttpClient) -> None:
    """RFC 9110 section 15.2: a client MUST be able to parse 1xx responses it did not expect
    before the final one."""
    async def session(raw: RawServer, n: int, reader: Reader, writer: Writer) -> None:
        while True:
            _, body = await read_request(reader)
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b"final:" + body))
            await writer.drain()

    raw = await raw_server(session)
    assert await client.post(raw.url, b"a", timeout=WAIT) == (200, b"final:a")
    assert await client.post(raw.url, b"b", timeout=WAIT) == (200, b"final:b")


async def test_client_timeout(raw_server: StartRaw, client: HttpClient) -> None:
    hung_up = asyncio.Event()

    async def silent(raw: RawServer, n: int, reader: Reader, writer: Writer) -> None:
        await read_request(reader)
        await reader.read()  # until the client gives up and closes
        hung_up.set()

    raw = await raw_server(silent)
    began = time.monotonic()
    with pytest.raises(TimeoutError):
        await client.post(raw.url, b"x", timeout=0.2)
    assert time.monotonic() - began < 3.0
    await asyncio.wait_for(hung_up.wait(), WAIT)  # the timed-out connection was closed


async def test_client_connection_refused(client: HttpClient) -> None:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port = probe.getsockname()[1]
    with pytest.raises(ConnectionRefusedError):
        await client.post(f"http://{HOST}:{port}/", b"x", timeout=WAIT)


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/x", "https://127.0.0.1:1/", "http:///nohost",
                                 "127.0.0.1:8000/xmlrpc"])
async def test_client_rejects_non_http_url(client: HttpClient, url: str) -> None:
    with pytest.raises(HttpClientError):
        await client.post(url, b"x", timeout=WAIT)


async def test_client_closed_refuses_posts(start_server: StartServer) -> None:
    server = await start_server(echo)
    url = f"http://{HOST}:{server.port}/"
    http = HttpClient()
    try:
        assert await http.post(url, b"x", timeout=WAIT) == (200, b"x")
    finally:
        await http.close()
    with pytest.raises(HttpClientError):
        await http.post(url, b"y", timeout=WAIT)


async def test_client_resolves_localhost(start_server: StartServer,
                                         client: HttpClient) -> None:
    server = await start_server(echo)  # 127.0.0.1 only
    url = f"http://localhost:{server.port}/xmlrpc"
    assert await client.post(url, b"by name", timeout=WAIT) == (200, b"by name")
    assert await client.post(url, b"again", timeout=WAIT) == (200, b"again")


async def test_client_tries_every_address_of_a_name(start_server: StartServer,
                                                     client: HttpClient,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Where /etc/hosts maps localhost to ::1 too (most desktops), the resolver lists ::1
    first; a server on 127.0.0.1 only must still be reached, as a browser or aiohttp would."""
    server = await start_server(echo)  # 127.0.0.1 only: ::1 refuses
    loop = asyncio.get_running_loop()
    real = loop.getaddrinfo

    async def ipv6_first(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "localhost":
            return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", port, 0, 0)),
                    (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
        return await real(host, port, *args, **kwargs)

    monkeypatch.setattr(loop, "getaddrinfo", ipv6_first)
    url = f"http://localhost:{server.port}/xmlrpc"
    assert await client.post(url, b"by name", timeout=WAIT) == (200, b"by name")
