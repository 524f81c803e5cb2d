"""The Standard Profile's HTTP layer (`sampflow.samp.wire`) over real loopback sockets.

Raw cases write bytes by hand with `asyncio.open_connection`, as the odd clients do (SAO DS9's
bare-LF heads, HTTP/1.0, pipelining); client cases use `HttpClient` against our server and
against small hand-written servers that misbehave the ways real callback servers do.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from sampflow.samp.wire import HttpClient, HttpClientError, Request, Response, ServerDisconnected, serve
from sampflow.samp.wire.server import HttpServer

HOST = "127.0.0.1"


class Echo:
    """A handler that records requests and answers ``<path>:<body>``; async for /slow."""

    def __init__(self) -> None:
        self.requests: list[Request] = []

    def __call__(self, request: Request) -> Any:
        self.requests.append(request)
        if request.path == "/boom":
            raise RuntimeError("boom")
        if request.path == "/aboom":
            async def fail() -> Response:
                raise RuntimeError("async boom")
            return fail()
        if request.path.startswith("/slow"):
            async def slow() -> Response:
                await asyncio.sleep(float(request.path.rpartition("/")[2] or 0.05))
                return Response(b"slow:" + request.body)
            return slow()
        return Response(request.path.encode() + b":" + request.body,
                        close=request.path == "/close")


@pytest.fixture
async def served() -> AsyncIterator[tuple[HttpServer, Echo]]:
    echo = Echo()
    server = await serve(echo, HOST, 0, max_body=1000,
                         too_large=lambda n: Response(f"too large {n}".encode()))
    try:
        yield server, echo
    finally:
        await server.close(grace=0)


@pytest.fixture
async def client() -> AsyncIterator[HttpClient]:
    http = HttpClient()
    try:
        yield http
    finally:
        await http.close()


async def read_response(reader: asyncio.StreamReader) -> tuple[bytes, dict[str, str], bytes]:
    """One response: (status line, headers, body) using Content-Length."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in
               (ln.partition(":") for ln in lines[1:] if ln)}
    body = await asyncio.wait_for(reader.readexactly(int(headers.get("content-length", 0))), 5)
    return lines[0].encode(), headers, body


async def raw(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(HOST, port)


def post(path: str, body: bytes, *extra: str, version: str = "1.1", eol: str = "\r\n") -> bytes:
    head = [f"POST {path} HTTP/{version}", f"Host: {HOST}", "Content-Type: text/xml",
            f"Content-Length: {len(body)}", *extra, "", ""]
    return eol.join(head).encode() + body


async def closed(reader: asyncio.StreamReader) -> bool:
    return await asyncio.wait_for(reader.read(100), 5) == b""


# -- server -------------------------------------------------------------------------------------
async def test_post_is_answered_with_framing_headers(served: tuple[HttpServer, Echo]) -> None:
    server, echo = served
    reader, writer = await raw(server.port)
    writer.write(post("/xmlrpc", b"<x/>", "X-Thing: Yes"))
    status, headers, body = await read_response(reader)
    writer.close()
    assert status == b"HTTP/1.1 200 OK"
    assert body == b"/xmlrpc:<x/>"
    assert headers["content-length"] == str(len(body))
    assert headers["content-type"].startswith("text/xml")
    assert "date" in headers
    [request] = echo.requests
    assert (request.method, request.path, request.body) == ("POST", "/xmlrpc", b"<x/>")
    assert request.headers["x-thing"] == "Yes"


async def test_keep_alive_then_connection_close(served: tuple[HttpServer, Echo]) -> None:
    server, _ = served
    reader, writer = await raw(server.port)
    for n in range(2):
        writer.write(post("/a", str(n).encode()))
        assert (await read_response(reader))[2] == f"/a:{n}".encode()
    writer.write(post("/a", b"last", "Connection: close"))
    _, headers, body = await read_response(reader)
    assert (body, headers["connection"]) == (b"/a:last", "close")
    assert await closed(reader)
    writer.close()


async def test_http_10(served: tuple[HttpServer, Echo]) -> None:
    server, _ = served
    reader, writer = await raw(server.port)
    writer.write(post("/old", b"1", version="1.0"))
    assert (await read_response(reader))[2] == b"/old:1"
    assert await closed(reader)
    writer.close()
    reader, writer = await raw(server.port)
    for n in range(2):
        writer.write(post("/old", b"k", "Connection: keep-alive", version="1.0"))
        _, headers, body = await read_response(reader)
        assert (body, headers["connection"]) == (b"/old:k", "keep-alive")
    writer.close()


async def test_bare_lf_head_as_ds9_sends_it(served: tuple[HttpServer, Echo]) -> None:
    server, echo = served
    reader, writer = await raw(server.port)
    writer.write(post("/xmlrpc", b"<ds9/>", version="1.0", eol="\n"))
    assert (await read_response(reader))[2] == b"/xmlrpc:<ds9/>"
    assert echo.requests[0].headers["content-type"] == "text/xml"
    writer.close()


async def test_chunked_body_is_dechunked(served: tuple[HttpServer, Echo]) -> None:
    server, echo = served
    reader, writer = await raw(server.port)
    writer.write(b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
    assert (await read_response(reader))[2] == b"/c:abcde"
    writer.close()


async def test_expect_100_continue(served: tuple[HttpServer, Echo]) -> None:
    server, _ = served
    reader, writer = await raw(server.port)
    writer.write(b"POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                 b"Expect: 100-continue\r\n\r\n")
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert interim.startswith(b"HTTP/1.1 100 Continue")
    writer.write(b"body")
    assert (await read_response(reader))[2] == b"/e:body"
    writer.close()


async def test_body_over_the_bound_gets_too_large_and_a_close(
        served: tuple[HttpServer, Echo]) -> None:
    server, echo = served
    reader, writer = await raw(server.port)
    writer.write(post("/big", b"x" * 1001))
    assert (await read_response(reader))[2] == b"too large 1001"
    assert await closed(reader)
    writer.close()
    reader, writer = await raw(server.port)  # chunked: found while reading
    writer.write(b"POST /big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
                 b"".join(b"1f4\r\n" + b"y" * 500 + b"\r\n" for _ in range(3)))
    assert (await read_response(reader))[2] == b"too large None"
    assert await closed(reader)
    writer.close()
    assert echo.requests == []


async def test_garbage_gets_400_and_the_server_goes_on(served: tuple[HttpServer, Echo]) -> None:
    server, _ = served
    reader, writer = await raw(server.port)
    writer.write(b"NOT HTTP AT ALL\r\n\r\n")
    status, _, _ = await read_response(reader)
    assert status.startswith(b"HTTP/1.1 400")
    assert await closed(reader)
    writer.close()
    reader, writer = await raw(server.port)
    writer.write(post("/ok", b""))
    assert (await read_response(reader))[2] == b"/ok:"
    writer.close()


async def test_pipelined_requests_are_answered_in_order(served: tuple[HttpServer, Echo]) -> None:
    server, _ = served
    reader, writer = await raw(server.port)
    writer.write(post("/slow/0.05", b"1") + post("/fast", b"2") + post("/slow/0", b"3"))
    bodies = [(await read_response(reader))[2] for _ in range(3)]
    assert bodies == [b"slow:1", b"/fast:2", b"slow:3"]
    writer.close()


async def test_failing_handlers_get_500_and_the_connection_lives(
        served: tuple[HttpServer, Echo]) -> None:
    server, _ = served
    reader, writer = await raw(server.port)
    for path in ("/boom", "/aboom"):
        writer.write(post(path, b""))
        assert (await read_response(reader))[0].startswith(b"HTTP/1.1 500")
    writer.write(post("/after", b""))
    assert (await read_response(reader))[2] == b"/after:"
    writer.close()


async def test_idle_connections_are_closed_busy_ones_are_not() -> None:
    echo = Echo()
    server = await serve(echo, HOST, 0, max_body=1000, idle_timeout=0.2)
    try:
        reader, writer = await raw(server.port)
        assert await closed(reader)  # idle: closed by the server
        writer.close()
        reader, writer = await raw(server.port)
        writer.write(post("/slow/0.6", b"w"))
        assert (await read_response(reader))[2] == b"slow:w"  # outlived the idle timeout
        writer.close()
    finally:
        await server.close(grace=0)


async def test_close_lets_a_request_in_flight_finish(served: tuple[HttpServer, Echo]) -> None:
    server, _ = served
    reader, writer = await raw(server.port)
    writer.write(post("/slow/0.2", b"f"))
    await asyncio.sleep(0.05)
    await server.close(grace=2)
    _, headers, body = await read_response(reader)
    assert (body, headers["connection"]) == (b"slow:f", "close")
    writer.close()


# -- client -------------------------------------------------------------------------------------
async def test_client_posts_and_reuses_its_connection(served: tuple[HttpServer, Echo],
                                                      client: HttpClient) -> None:
    server, echo = served
    url = f"http://{HOST}:{server.port}/xmlrpc"
    assert await client.post(url, b"1") == (200, b"/xmlrpc:1")
    assert await client.post(url, b"2") == (200, b"/xmlrpc:2")
    assert len({r.peer for r in echo.requests}) == 1
    assert echo.requests[0].headers["content-type"] == "text/xml"


async def test_client_follows_connection_close(served: tuple[HttpServer, Echo],
                                               client: HttpClient) -> None:
    server, echo = served
    for n in range(3):
        assert await client.post(f"http://{HOST}:{server.port}/close", b"%d" % n) == \
            (200, b"/close:%d" % n)
    assert len({r.peer for r in echo.requests}) == 3


async def start_raw_server(answer: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any]
                           ) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(answer, HOST, 0)
    return server, server.sockets[0].getsockname()[1]


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(int(ln.split(b":")[1]) for ln in head.split(b"\r\n")
                  if ln.lower().startswith(b"content-length"))
    return await reader.readexactly(length)


async def test_client_survives_a_server_that_silently_closes(client: HttpClient) -> None:
    """SAO DS9 answers HTTP/1.1 with no ``Connection: close``, then closes."""
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        body = await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()

    server, port = await start_raw_server(answer)
    try:
        for n in range(20):
            assert await client.post(f"http://{HOST}:{port}/", b"%d" % n, timeout=5) == \
                (200, b"%d" % n)
    finally:
        server.close()


async def test_client_raises_when_the_server_closes_without_answering(
        client: HttpClient) -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.close()

    server, port = await start_raw_server(answer)
    try:
        with pytest.raises(ServerDisconnected) as info:
            await client.post(f"http://{HOST}:{port}/", b"x", timeout=5)
        assert info.value.answered is False
    finally:
        server.close()


async def test_client_reads_a_close_delimited_body(client: HttpClient) -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/xml\r\n\r\nall of it")
        await writer.drain()
        writer.close()

    server, port = await start_raw_server(answer)
    try:
        assert await client.post(f"http://{HOST}:{port}/", b"x", timeout=5) == (200, b"all of it")
    finally:
        server.close()


async def test_client_times_out(client: HttpClient) -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)

    server, port = await start_raw_server(answer)
    try:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(client.post(f"http://{HOST}:{port}/", b"x", timeout=0.2), 10)
    finally:
        server.close()


async def test_client_errors(client: HttpClient) -> None:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port = sock.getsockname()[1]
    with pytest.raises(ConnectionRefusedError):
        await client.post(f"http://{HOST}:{port}/", b"x", timeout=5)
    with pytest.raises(HttpClientError):
        await client.post("ftp://example.org/", b"x")
    await client.close()
    with pytest.raises(HttpClientError):
        await client.post(f"http://{HOST}:{port}/", b"x")


async def test_client_resolves_host_names(served: tuple[HttpServer, Echo],
                                          client: HttpClient) -> None:
    server, _ = served
    assert await client.post(f"http://localhost:{server.port}/n", b"1", timeout=5) == \
        (200, b"/n:1")
