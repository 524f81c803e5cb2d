"""`sampflow.samp.wire`'s keep-alive `HttpClient` on real loopback sockets.

The client is pointed either at a `serve` server or at a raw `asyncio.start_server` that
misbehaves on purpose (closes after one answer like SAO DS9, never answers, answers without
``Content-Length``...).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest
from wirekit import (
    HOST,
    WAIT,
    RawServer,
    Reader,
    Recorder,
    StartRaw,
    StartServer,
    Writer,
    echo,
    ok,
    read_request,
)

from sampflow.samp.wire import (
    HttpClient,
    HttpClientError,
    Request,
    Response,
    ServerDisconnected,
)

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


def lf_ok(body: bytes) -> bytes:
    """SAO DS9's answer, byte for byte in form: bare-LF line ends (its ``xmlrpc.tcl``)."""
    return (b"HTTP/1.1 200 OK\nContent-Type: text/xml\nContent-length: %d\n\n%b"
            % (len(body), body))


def answering(answer: Callable[[bytes], bytes], *, keep_alive: bool) -> Any:
    """A raw server session answering each request with `answer` of ``re:`` + its body;
    after one answer it returns (the server closes) unless `keep_alive`."""
    async def session(raw: RawServer, n: int, reader: Reader, writer: Writer) -> None:
        while True:
            _, body = await read_request(reader)
            writer.write(answer(b"re:" + body))
            await writer.drain()
            if not keep_alive:
                return

    return session


async def assert_echoed(client: HttpClient, url: str, n: int) -> None:
    """POST bodies ``0`` to ``n - 1`` in turn; each must come back as ``re:`` + itself."""
    for i in range(n):
        assert await client.post(url, b"%d" % i, timeout=WAIT) == (200, b"re:%d" % i)


@pytest.mark.parametrize("answer", [ok, lf_ok], ids=["crlf", "bare-lf"])
async def test_client_survives_server_closing_after_each_answer(
        raw_server: StartRaw, client: HttpClient, answer: Any) -> None:
    """SAO DS9's way: HTTP/1.1, ``Content-Length``, no ``Connection: close``, then close;
    DS9's own server also answers in bare LF."""
    raw = await raw_server(answering(answer, keep_alive=False))
    await assert_echoed(client, raw.url, 20)
    assert raw.connections == client.connections_opened >= 20


async def test_client_reads_bare_lf_answers_over_one_kept_alive_connection(
        raw_server: StartRaw, client: HttpClient) -> None:
    """Issue 9 item 1: bare-LF answers parse, and the connection is kept and reused."""
    raw = await raw_server(answering(lf_ok, keep_alive=True))
    await assert_echoed(client, raw.url, 50)
    assert raw.connections == 1
    assert client.connections_opened == 1


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
