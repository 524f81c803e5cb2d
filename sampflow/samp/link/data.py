"""Making the data a crossing message points at reachable on the other side.

A ``file://`` URL, or an ``http://`` URL on a loopback host, means nothing on another machine.
Before a message (or a response) leaves for another hub, `DataServer.rewrite` replaces each
such URL (a whole string value, anywhere in the params or result) with an URL served by this
hub's link: ``http://ADDR:PORT/<token>/<name>``. The token is 128 bits from `secrets`, one per
file or upstream URL mentioned, and is the only way in: nothing else is served, no directory
is listed, and a file must be a regular file when it is mentioned (checked off the event loop)
and when it is served. URLs of any other form are left exactly as they are, never guessed at.

The server binds the address this machine uses to reach the NATS server (loopback when NATS
is on loopback), unless told otherwise.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import stat
from collections import OrderedDict
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import aiohttp
from aiohttp import web

__all__ = ["DataServer", "address_towards"]

log = logging.getLogger("sampflow.link.data")

_LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
#: Most files and URLs published at once; the oldest are forgotten first.
MAX_PUBLISHED = 10000
#: Bytes read from a loopback upstream per chunk.
CHUNK = 1 << 16


def address_towards(host: str) -> str:
    """The local address this machine uses to reach `host` (no packet is sent).

    >>> address_towards("127.0.0.1")
    '127.0.0.1'
    """
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect((host, 9))
            return str(probe.getsockname()[0])
    except OSError:
        return "127.0.0.1"


def _local_path(url: str) -> str | None:
    """The path of a ``file://`` URL on this machine, or None."""
    parts = urlsplit(url)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
        return None
    path = unquote(parts.path)
    return path if os.path.isabs(path) else None


def _is_loopback_http(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "http" and (parts.hostname or "") in _LOOPBACK


class DataServer:
    """Serves the files and loopback URLs that crossing messages mention.

    Parameters
    ----------
    addr : str
        Address to bind (and to put in rewritten URLs).
    port : int
        Port; 0 picks a free one.
    """

    def __init__(self, addr: str = "127.0.0.1", port: int = 0) -> None:
        self.addr = addr
        self.port = port
        self._published: OrderedDict[str, tuple[str, str]] = OrderedDict()  # token -> (kind, x)
        self._tokens: dict[tuple[str, str], str] = {}
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        #: How many requests were served (a test and log aid).
        self.served = 0

    async def start(self) -> None:
        """Start serving.

        Raises
        ------
        OSError
            If the address cannot be bound.
        """
        app = web.Application()
        app.router.add_get("/{token}/{name}", self._serve)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.addr, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def close(self) -> None:
        """Stop serving; published URLs stop working."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _publish(self, kind: str, target: str, name: str) -> str:
        token = self._tokens.get((kind, target))
        if token is None:
            token = secrets.token_urlsafe(16)
            self._tokens[(kind, target)] = token
            self._published[token] = (kind, target)
            while len(self._published) > MAX_PUBLISHED:
                _, old = self._published.popitem(last=False)
                self._tokens.pop(old, None)
        host = f"[{self.addr}]" if ":" in self.addr else self.addr
        return f"http://{host}:{self.port}/{token}/{quote(name or 'data')}"

    async def rewrite(self, value: Any) -> Any:
        """`value` with every local URL replaced by one this server serves.

        Parameters
        ----------
        value : str, list or dict
            A SAMP value (message params, or a response).

        Returns
        -------
        object
            A copy; strings that are not a ``file://`` URL of an existing regular file or a
            loopback ``http://`` URL come back unchanged.
        """
        if isinstance(value, str):
            return await self._rewrite_str(value)
        if isinstance(value, list):
            return [await self.rewrite(v) for v in value]
        if isinstance(value, dict):
            return {k: await self.rewrite(v) for k, v in value.items()}
        return value

    async def _rewrite_str(self, text: str) -> str:
        if text.startswith("file:"):
            path = _local_path(text)
            if path is None:
                return text
            loop = asyncio.get_running_loop()
            try:
                info = await loop.run_in_executor(None, os.stat, path)
            except OSError:
                return text
            if not stat.S_ISREG(info.st_mode):
                return text
            return self._publish("file", path, os.path.basename(path))
        if text.startswith("http:") and _is_loopback_http(text):
            name = os.path.basename(urlsplit(text).path)
            return self._publish("http", text, unquote(name))
        return text

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        entry = self._published.get(request.match_info["token"])
        if entry is None:
            raise web.HTTPNotFound()
        kind, target = entry
        self.served += 1
        if kind == "file":
            loop = asyncio.get_running_loop()
            try:
                info = await loop.run_in_executor(None, os.stat, target)
            except OSError:
                raise web.HTTPNotFound() from None
            if not stat.S_ISREG(info.st_mode):
                raise web.HTTPNotFound()
            log.info("served %s to %s", target, request.remote)
            return web.FileResponse(target)
        log.info("relaying %s to %s", target, request.remote)
        return await self._relay(request, target)

    async def _relay(self, request: web.Request, url: str) -> web.StreamResponse:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(sock_read=60))
        try:
            async with self._session.get(url, allow_redirects=False) as upstream:
                response = web.StreamResponse(status=upstream.status)
                kind = upstream.headers.get("Content-Type")
                if kind:
                    response.content_type = kind.split(";")[0]
                await response.prepare(request)
                async for chunk in upstream.content.iter_chunked(CHUNK):
                    await response.write(chunk)
                await response.write_eof()
                return response
        except (TimeoutError, aiohttp.ClientError) as exc:
            log.warning("could not relay %s: %s", url, exc)
            raise web.HTTPBadGateway() from None
