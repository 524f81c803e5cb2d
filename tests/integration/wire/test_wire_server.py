"""`sampflow.samp.wire`'s HTTP/1.1 server on real loopback sockets.

The tests drive `serve` with raw bytes written by hand through `asyncio.open_connection`, so
every framing detail (bare LF heads, chunked bodies, ``Expect: 100-continue``, pipelining) is
exactly what the test says.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from wirekit import (
    HOST,
    WAIT,
    Connect,
    Recorder,
    StartServer,
    TooLarge,
    assert_closed,
    echo,
    read_response,
    request_bytes,
)

from sampflow.samp.wire import (
    Request,
    Response,
)

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
    too_large = TooLarge()
    seen: list[Request] = []
    server = await start_server(Recorder(seen), max_body=100, too_large=too_large)
    reader, writer = await connect(server.port)
    # the head announces 1000 bytes; send a little of the body only: the answer must not wait
    writer.write(request_bytes(b"x" * 1000)[:-990])
    answer = await read_response(reader)
    assert (answer.status, answer.body) == (413, b"too big, sorry")
    assert answer.headers["connection"].lower() == "close"
    await assert_closed(reader)
    assert too_large.lengths == [1000]
    assert seen == []


async def test_too_large_answer_reaches_a_client_still_sending_its_body(
        start_server: StartServer, connect: Connect) -> None:
    """The close lingers: the rest of the body is read and dropped, so the client's writes
    do not meet a reset and it can read the answer (RFC 9112 section 9.6)."""
    server = await start_server(echo, max_body=100,
                                too_large=lambda n: Response(b"too big", 413, "text/plain"))
    reader, writer = await connect(server.port)
    body = b"z" * (8 * 1024 * 1024)
    writer.write(request_bytes(body)[:-len(body)])
    for offset in range(0, len(body), 1 << 20):  # the server has answered by now
        await asyncio.sleep(0.01)
        writer.write(body[offset:offset + (1 << 20)])
        await asyncio.wait_for(writer.drain(), WAIT)
    answer = await read_response(reader)
    assert (answer.status, answer.body) == (413, b"too big")
    await assert_closed(reader)


async def test_chunked_body_growing_over_max_body_gets_too_large(
        start_server: StartServer, connect: Connect) -> None:
    too_large = TooLarge()
    seen: list[Request] = []
    server = await start_server(Recorder(seen), max_body=100, too_large=too_large)
    reader, writer = await connect(server.port)
    chunk = b"%x\r\n%b\r\n" % (60, b"y" * 60)
    writer.write(request_bytes(length=False, headers=("Transfer-Encoding: chunked",))
                 + chunk * 3 + b"0\r\n\r\n")
    answer = await read_response(reader)
    assert (answer.status, answer.body) == (413, b"too big, sorry")
    assert answer.headers["connection"].lower() == "close"
    await assert_closed(reader)
    assert too_large.lengths == [None]
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
