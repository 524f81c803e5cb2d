"""A small HTTP/1.1 server on `asyncio.Protocol` for XML-RPC requests.

Each connection parses with httptools' ``HttpRequestParser`` and hands every complete request
to the handler as a `Request`. The handler returns a `Response`, or an awaitable of one when
it has to wait (the hub's ``callAndWait``): a plain return is written at once, with no task.
Requests on one connection are answered in order, one at a time; a client that pipelines more
than `MAX_QUEUED` requests is paused until the backlog drains.

Behaviour at the edges:

- a body larger than ``max_body`` (announced by ``Content-Length`` or found while reading a
  chunked one) gets the handler's ``too_large`` response, and the connection is closed
  (lingering: the rest of the body is read and discarded, within bounds, so that the client
  gets the answer);
- a request that is not HTTP gets ``400 Bad Request`` and the connection is closed; nothing
  else is affected;
- header lines ending with a bare LF are accepted (SAO DS9's Tcl XML-RPC client sends them);
- ``Expect: 100-continue`` is answered before the body is read;
- an idle keep-alive connection is closed after ``idle_timeout`` seconds;
- a handler that raises gets ``500``, logged; the connection stays usable.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any

import httptools

__all__ = ["Request", "Response", "Handler", "serve", "MAX_QUEUED"]

log = logging.getLogger("sampflow.wire")

#: Complete requests one connection may have waiting before reading from it pauses.
MAX_QUEUED = 16
#: After an early answer (a body too large, bad HTTP), how long and how many more bytes the
#: connection is read and discarded before it is closed.
LINGER_SECONDS = 2.0
LINGER_BYTES = 32 * 1024 * 1024

_REASONS = {100: "Continue", 200: "OK", 400: "Bad Request", 404: "Not Found",
            405: "Method Not Allowed", 413: "Content Too Large", 500: "Internal Server Error"}


@dataclass(slots=True)
class Request:
    """One HTTP request, complete with its body.

    Attributes
    ----------
    method : str
        ``POST``, ``GET``, ...
    path : str
        The request target as sent (``/xmlrpc``).
    headers : dict of str to str
        Header fields, names in lower case; repeated fields joined with ``", "``.
    body : bytes
        The body (chunked transfer coding already removed).
    peer : tuple or None
        The client's socket address.
    """

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    peer: Any = None


@dataclass(slots=True)
class Response:
    """What a handler answers: by default an empty ``200`` XML body on a connection kept
    alive.

    Attributes
    ----------
    body : bytes
        The response body (its length is sent as ``Content-Length``).
    status : int
        HTTP status code.
    content_type : str
        The ``Content-Type`` value (XML-RPC's ``text/xml`` by default).
    close : bool
        Whether to close the connection once this response is sent (``Connection: close``).
    """

    body: bytes = b""
    status: int = 200
    content_type: str = "text/xml; charset=utf-8"
    close: bool = False


Handler = Callable[[Request], "Response | Awaitable[Response]"]


class _Date:
    """The ``Date`` header value (RFC 9110 section 6.6.1), formatted once a second."""

    __slots__ = ("second", "value")

    def __init__(self) -> None:
        self.second = -1
        self.value = b""

    def now(self) -> bytes:
        second = int(time.time())
        if second != self.second:
            self.second = second
            self.value = formatdate(second, usegmt=True).encode("ascii")
        return self.value


_DATE = _Date()


def render(response: Response, keep_alive: bool, version_10: bool) -> bytes:
    """The bytes of `response`: status line, headers and body, for one ``write``."""
    head = [b"HTTP/1.1 %d %s\r\nDate: %s\r\nServer: sampflow\r\nContent-Type: %s\r\n"
            b"Content-Length: %d\r\n" % (response.status,
                                         _REASONS.get(response.status, "Unknown").encode(),
                                         _DATE.now(), response.content_type.encode("latin-1"),
                                         len(response.body))]
    if not keep_alive:
        head.append(b"Connection: close\r\n")
    elif version_10:
        head.append(b"Connection: keep-alive\r\n")
    head.append(b"\r\n")
    head.append(response.body)
    return b"".join(head)


@dataclass(slots=True)
class _Pending:
    request: Request
    keep_alive: bool
    version_10: bool


class _Connection(asyncio.Protocol):
    """One server-side connection; httptools calls the ``on_*`` methods while parsing."""

    def __init__(self, server: "_Server") -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        # DS9 ends header lines with LF alone; llhttp accepts that only with these two set.
        self.parser.set_dangerous_leniencies(lenient_optional_cr_before_lf=True,
                                             lenient_optional_lf_after_cr=True)
        self.peer: Any = None
        self.queue: deque[_Pending] = deque()
        self.busy = False
        self.task: asyncio.Future[Response] | None = None  # the answer being awaited
        self.paused = False
        self.closed = False
        self.idle: asyncio.TimerHandle | None = None
        self.last = time.monotonic()
        self.refused = False  # answered early (too large, bad HTTP): ignore the rest
        self.url = b""
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.size = 0

    # -- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.peer = transport.get_extra_info("peername")
        self.server.connections.add(self)
        self._arm_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.connections.discard(self)
        if self.idle is not None:
            self.idle.cancel()
            self.idle = None
        self.queue.clear()

    def data_received(self, data: bytes) -> None:
        if self.refused:  # lingering after an early answer: discard, within bounds
            self.size += len(data)
            if self.size > LINGER_BYTES and self.transport is not None:
                self.transport.close()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse(Response(b"upgrades are not supported\n", 400, "text/plain"))
        except httptools.HttpParserError as exc:
            if not self.refused:
                log.debug("bad HTTP from %s: %s", self.peer, exc)
                self._refuse(Response(b"bad HTTP request\n", 400, "text/plain"))

    # -- httptools callbacks ---------------------------------------------------------------
    def on_message_begin(self) -> None:
        self.last = time.monotonic()
        self.url = b""
        self.headers = {}
        self.body = []
        self.size = 0

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        old = self.headers.get(key)
        self.headers[key] = text if old is None else f"{old}, {text}"

    def on_headers_complete(self) -> None:
        length = self.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.server.max_body:
            self._too_large(int(length))
            return
        # 100 Continue only where it cannot overtake an answer still owed on this connection.
        if self.headers.get("expect", "").lower() == "100-continue" and self.transport and \
                not self.busy and not self.queue and self.parser.get_http_version() == "1.1":
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, chunk: bytes) -> None:
        if self.refused:
            return
        self.size += len(chunk)
        if self.size > self.server.max_body:
            self._too_large(None)
            return
        self.body.append(chunk)

    def on_message_complete(self) -> None:
        if self.refused:
            return
        parser = self.parser
        request = Request(parser.get_method().decode("ascii", "replace"),
                          self.url.decode("latin-1"), self.headers,
                          b"".join(self.body) if len(self.body) != 1 else self.body[0],
                          self.peer)
        self.body = []
        self.queue.append(_Pending(request, parser.should_keep_alive(),
                                   parser.get_http_version() == "1.0"))
        if not self.busy:
            self._next()
        elif len(self.queue) > MAX_QUEUED and not self.paused and self.transport:
            self.paused = True
            self.transport.pause_reading()

    # -- answering -------------------------------------------------------------------------
    def _next(self) -> None:
        """Answer queued requests in order until one has to wait or the queue is empty."""
        while self.queue and not self.closed:
            pending = self.queue.popleft()
            try:
                result = self.server.handler(pending.request)
            except Exception:
                log.exception("HTTP handler failed for %s %s", pending.request.method,
                              pending.request.path)
                result = Response(b"internal error\n", 500, "text/plain")
            if isinstance(result, Response):
                self._write(result, pending)
                continue
            self.busy = True
            task = self.task = asyncio.ensure_future(result)
            task.add_done_callback(functools.partial(self._finished, pending=pending))
            return
        self.busy = False
        self.task = None
        self.last = time.monotonic()
        if self.paused and self.transport is not None and not self.closed:
            self.paused = False
            self.transport.resume_reading()

    def _finished(self, task: asyncio.Future[Response], pending: _Pending) -> None:
        if task.cancelled():
            response = Response(b"cancelled\n", 500, "text/plain", close=True)
        elif task.exception() is not None:
            exc = task.exception()
            log.error("HTTP handler failed for %s %s", pending.request.method,
                      pending.request.path, exc_info=exc)
            response = Response(b"internal error\n", 500, "text/plain")
        else:
            response = task.result()
        self._write(response, pending)
        self._next()

    def _write(self, response: Response, pending: _Pending) -> None:
        if self.closed or self.transport is None:
            return
        keep_alive = pending.keep_alive and not response.close and not self.server.closing
        self.transport.write(render(response, keep_alive, pending.version_10))
        if not keep_alive:
            self.closed = True
            self.queue.clear()
            self.transport.close()

    def _refuse(self, response: Response) -> None:
        """Answer at once, before the request is complete, and close.

        The close lingers (RFC 9112 section 9.6): the write side is shut at once, and what
        the client still sends is read and discarded for up to `LINGER_SECONDS` or
        `LINGER_BYTES`, so that a client still writing its body reads the answer instead of
        meeting a reset connection.
        """
        self.refused = True
        self.queue.clear()
        if self.transport is not None and not self.closed:
            self.transport.write(render(response, False, False))
            self.closed = True
            self.size = 0
            if self.transport.can_write_eof():
                self.transport.write_eof()
                if self.idle is not None:
                    self.idle.cancel()
                self.idle = asyncio.get_running_loop().call_later(
                    LINGER_SECONDS, self.transport.close)
            else:
                self.transport.close()

    def _too_large(self, length: int | None) -> None:
        self._refuse(self.server.too_large(length))

    def _arm_idle(self, delay: float | None = None) -> None:
        """One timer per connection, re-armed when it fires (not once per request)."""
        if self.server.idle_timeout and self.transport is not None and not self.closed:
            self.idle = asyncio.get_running_loop().call_later(
                self.server.idle_timeout if delay is None else delay, self._idle_check)

    def _idle_check(self) -> None:
        self.idle = None
        if self.closed or self.transport is None:
            return
        quiet = time.monotonic() - self.last
        if self.busy or self.queue or quiet < self.server.idle_timeout:
            self._arm_idle(None if self.busy or self.queue
                           else self.server.idle_timeout - quiet)
            return
        self.closed = True
        self.transport.close()


@dataclass
class _Server:
    handler: Handler
    max_body: int
    too_large: Callable[[int | None], Response]
    idle_timeout: float
    connections: set[_Connection] = field(default_factory=set)
    closing: bool = False


class HttpServer:
    """A listening server made by `serve`.

    Attributes
    ----------
    port : int
        The port bound (useful when 0 was asked for).
    """

    def __init__(self, server: asyncio.Server, state: _Server) -> None:
        self._server = server
        self._state = state
        self.port: int = server.sockets[0].getsockname()[1]

    async def close(self, grace: float = 1.0) -> None:
        """Stop accepting, let requests in progress finish for up to `grace` seconds, then
        close every connection."""
        self._state.closing = True
        self._server.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while tasks := {c.task for c in self._state.connections if c.task is not None}:
            left = deadline - loop.time()
            if left <= 0:
                break
            await asyncio.wait(tasks, timeout=left)  # a pipelined request may follow one
        for connection in list(self._state.connections):
            if connection.transport is not None:
                connection.transport.close()
        await self._server.wait_closed()


async def serve(handler: Handler, host: str, port: int, *, max_body: int,
                too_large: Callable[[int | None], Response] | None = None,
                backlog: int = 1024, idle_timeout: float = 75.0) -> HttpServer:
    """Listen on `host`:`port` and answer each request with `handler`.

    Parameters
    ----------
    handler : callable
        ``handler(request) -> Response`` or an awaitable of one; called on the event loop.
    host : str
        Address to bind (``127.0.0.1`` for a hub).
    port : int
        Port to bind; 0 picks a free one.
    max_body : int
        Largest request body accepted, in bytes.
    too_large : callable, optional
        ``too_large(content_length or None) -> Response`` for a body over `max_body`; the
        default is ``413``.
    backlog : int
        Listen backlog (connections waiting to be accepted).
    idle_timeout : float
        Seconds an idle keep-alive connection is kept open; 0 keeps it until the client
        closes it.

    Returns
    -------
    HttpServer
        The listening server; ``await server.close()`` stops it.

    Raises
    ------
    OSError
        If the address cannot be bound.
    """
    if too_large is None:
        def too_large(length: int | None) -> Response:
            return Response(b"request body too large\n", 413, "text/plain")
    state = _Server(handler, max_body, too_large, idle_timeout)
    server = await asyncio.get_running_loop().create_server(
        lambda: _Connection(state), host, port, backlog=backlog, reuse_address=True)
    return HttpServer(server, state)
