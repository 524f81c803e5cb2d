"""A keep-alive HTTP/1.1 client for XML-RPC POSTs, on `asyncio.Protocol`.

`HttpClient.post` sends one POST and returns the status and body. Connections are pooled per
(host, port) and reused while the server keeps them alive; a server that answers with
``Connection: close`` (JSAMP's callback servers do, on every request) simply gets a new
connection each time. A pooled connection that the server closed while it sat idle is
noticed and dropped; if the close races with a new request, so that the request meets a
closed connection before any byte of an answer, it is sent once more on a fresh connection
(as browsers do for stale keep-alive connections). Host names are resolved once a minute, not
once a request; each of a name's addresses is tried in turn, the last that worked first.

Responses are parsed by httptools' ``HttpResponseParser``, with the same leniency the server
side has for requests: status and header lines may end with a bare LF (SAO DS9's Tcl HTTP
server sends them). A response with neither ``Content-Length`` nor chunked coding ends when
the server closes the connection.
"""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import httptools

__all__ = ["HttpClient", "HttpClientError", "ServerDisconnected"]

#: Seconds a resolved host name is reused.
_DNS_TTL = 60.0


class HttpClientError(OSError):
    """An HTTP exchange failed: a malformed answer, or a bad URL."""


class ServerDisconnected(HttpClientError):
    """The server closed the connection before the whole answer arrived.

    Attributes
    ----------
    answered : bool
        Whether any byte of an answer had arrived.
    """

    def __init__(self, message: str, answered: bool) -> None:
        super().__init__(message)
        self.answered = answered


@dataclass(slots=True, frozen=True)
class _Target:
    host: str
    port: int
    path: bytes
    host_header: bytes


class _Connection(asyncio.Protocol):
    """One client connection; one request at a time."""

    def __init__(self, pool: list[_Connection] | None) -> None:
        self.pool = pool  # the idle list this connection returns to, if any
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        # SAO DS9's Tcl HTTP server ends its status and header lines with LF alone; accept
        # that, as the server side does for requests (RFC 9112 section 2.2 allows it).
        self.parser.set_dangerous_leniencies(lenient_optional_cr_before_lf=True,
                                             lenient_optional_lf_after_cr=True)
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.status = 0
        self.body: list[bytes] = []
        self.answered = False
        self.headers_done = False
        self.framed = False  # Content-Length or chunked: the end is known without a close
        self.keep_alive = False
        self.closed = False
        self.idle_since = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.pool is not None and self in self.pool:
            self.pool.remove(self)
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        if self.headers_done and not self.framed:  # the close ends the body (RFC 9112 6.3)
            waiter.set_result((self.status, b"".join(self.body)))
            return
        waiter.set_exception(ServerDisconnected(
            "the server closed the connection before answering" if not self.answered else
            "the server closed the connection in the middle of its answer", self.answered))

    def data_received(self, data: bytes) -> None:
        self.answered = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(HttpClientError(f"malformed HTTP answer: {exc}"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        lname = name.lower()
        if lname == b"content-length" or (lname == b"transfer-encoding" and
                                          b"chunked" in value.lower()):
            self.framed = True

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.headers_done = True

    def on_body(self, chunk: bytes) -> None:
        self.body.append(chunk)

    def on_message_complete(self) -> None:
        if 100 <= self.status < 200 and self.status != 101:
            # An interim answer (RFC 9110 section 15.2, e.g. 100 Continue): the final one follows.
            self.status = 0
            self.body = []
            self.headers_done = self.framed = False
            return
        self.keep_alive = self.parser.should_keep_alive()
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result((self.status, b"".join(self.body)))

    def _fail(self, exc: Exception) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)
        self.close()

    def send(self, data: bytes) -> asyncio.Future[tuple[int, bytes]]:
        self.status = 0
        self.body = []
        self.answered = self.headers_done = self.framed = self.keep_alive = False
        self.waiter = asyncio.get_running_loop().create_future()
        assert self.transport is not None
        self.transport.write(data)
        return self.waiter

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class HttpClient:
    """POSTs over pooled keep-alive connections.

    Parameters
    ----------
    idle_timeout : float
        Seconds an unused pooled connection is kept (closed on the next use after that).
    max_idle : int
        Idle connections kept per (host, port).
    user_agent : str
        The ``User-Agent`` value.
    """

    def __init__(self, *, idle_timeout: float = 30.0, max_idle: int = 8,
                 user_agent: str = "sampflow") -> None:
        self.idle_timeout = idle_timeout
        self.max_idle = max_idle
        self._agent = user_agent.encode("latin-1")
        self._idle: dict[tuple[str, int], list[_Connection]] = {}
        self._targets: dict[str, _Target] = {}
        self._addresses: dict[tuple[str, int], tuple[float, list[str]]] = {}
        self._busy: set[_Connection] = set()
        self.closed = False
        #: Connections opened so far (keep-alive reuse keeps this low).
        self.connections_opened = 0

    def _target(self, url: str) -> _Target:
        target = self._targets.get(url)
        if target is None:
            parts = urlsplit(url)
            if parts.scheme != "http" or not parts.hostname:
                raise HttpClientError(f"not an http:// URL: {url!r}")
            port = parts.port or 80
            path = parts.path or "/"
            if parts.query:
                path += "?" + parts.query
            host_header = parts.netloc.rpartition("@")[2]
            target = _Target(parts.hostname, port, path.encode("latin-1"),
                             host_header.encode("idna"))
            if len(self._targets) > 4096:
                self._targets.clear()
            self._targets[url] = target
        return target

    async def _addresses_of(self, host: str, port: int) -> list[str]:
        """`host`'s addresses, the last one that worked first; cached for `_DNS_TTL` s."""
        key = (host, port)
        cached = self._addresses.get(key)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
            addresses = [host]  # a literal address: nothing to resolve
        except OSError:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM)
            addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
            if not addresses:
                raise HttpClientError(f"cannot resolve {host}") from None
        self._addresses[key] = (now + _DNS_TTL, addresses)
        return addresses

    def _take_idle(self, key: tuple[str, int]) -> _Connection | None:
        pool = self._idle.get(key)
        now = time.monotonic()
        while pool:
            conn = pool.pop()
            if not conn.closed and now - conn.idle_since < self.idle_timeout:
                return conn
            conn.close()
        return None

    async def _connect(self, target: _Target, pooled: bool) -> _Connection:
        addresses = await self._addresses_of(target.host, target.port)
        pool = self._idle.setdefault((target.host, target.port), []) if pooled else None
        loop = asyncio.get_running_loop()
        error: OSError | None = None
        for address in addresses:  # ``localhost`` may be ::1 and 127.0.0.1: try each
            try:
                _, conn = await loop.create_connection(lambda: _Connection(pool),
                                                       address, target.port)
            except OSError as exc:
                error = exc
                continue
            self.connections_opened += 1
            if address is not addresses[0]:
                addresses.remove(address)
                addresses.insert(0, address)
            return conn
        assert error is not None
        raise error

    def _request(self, target: _Target, body: bytes, keep_alive: bool) -> bytes:
        return b"".join((
            b"POST ", target.path, b" HTTP/1.1\r\nHost: ", target.host_header,
            b"\r\nUser-Agent: ", self._agent,
            b"\r\nContent-Type: text/xml\r\nContent-Length: %d\r\n" % len(body),
            b"" if keep_alive else b"Connection: close\r\n",
            b"\r\n", body))

    async def post(self, url: str, body: bytes, *, timeout: float | None = 30.0,
                   keep_alive: bool = True) -> tuple[int, bytes]:
        """POST `body` (an XML-RPC document) to `url`.

        Parameters
        ----------
        url : str
            An ``http://`` URL.
        body : bytes
            The request body, sent as ``text/xml``.
        timeout : float or None
            Seconds allowed for the whole exchange (connecting included); None waits
            forever.
        keep_alive : bool
            Reuse pooled connections and pool this one; False sends ``Connection: close``.

        Returns
        -------
        status : int
            The HTTP status code.
        body : bytes
            The response body.

        Raises
        ------
        ConnectionRefusedError
            If nothing listens at the URL's address (an `OSError`).
        TimeoutError
            If `timeout` seconds pass first.
        ServerDisconnected
            If the server closed the connection without a (whole) answer.
        HttpClientError
            If the URL is not ``http://`` or the answer is not HTTP.
        OSError
            For other socket errors.
        """
        if self.closed:
            raise HttpClientError("the HTTP client is closed")
        target = self._target(url)
        if timeout is None:
            return await self._exchange(target, body, keep_alive)
        async with asyncio.timeout(timeout):
            return await self._exchange(target, body, keep_alive)

    async def _exchange(self, target: _Target, body: bytes, keep_alive: bool
                        ) -> tuple[int, bytes]:
        data = self._request(target, body, keep_alive)
        key = (target.host, target.port)
        conn = self._take_idle(key) if keep_alive else None
        if conn is not None:
            try:
                return await self._send(conn, data, key, keep_alive)
            except ServerDisconnected as exc:
                if exc.answered:
                    raise
                # a kept-alive connection the server had closed: once more, on a new one
        conn = await self._connect(target, keep_alive)
        return await self._send(conn, data, key, keep_alive)

    async def _send(self, conn: _Connection, data: bytes, key: tuple[str, int],
                    keep_alive: bool) -> tuple[int, bytes]:
        self._busy.add(conn)
        try:
            result = await conn.send(data)
        except BaseException:
            conn.close()
            raise
        finally:
            self._busy.discard(conn)
        if keep_alive and conn.keep_alive and not conn.closed and not self.closed:
            pool = self._idle.setdefault(key, [])
            if len(pool) < self.max_idle:
                conn.idle_since = time.monotonic()
                pool.append(conn)
                return result
        conn.close()
        return result

    async def close(self) -> None:
        """Close every connection, idle or busy; later `post` calls raise."""
        self.closed = True
        for pool in self._idle.values():
            for conn in list(pool):
                conn.close()
        self._idle.clear()
        for conn in list(self._busy):
            conn.close()
        self._busy.clear()
        await asyncio.sleep(0)
