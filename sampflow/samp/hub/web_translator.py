"""The Web Profile's URL translator (SAMP 1.3 section 5.4.3).

A web page cannot read most URLs a desktop client sends it (the browser's same-origin rules,
``file:`` URLs). ``samp.webhub.register`` therefore gives each web client a translator prefix,
``http://127.0.0.1:21012/translator/<token>?``: the page appends a URL to it and the hub
fetches the resource for it. The token is per client and is not its private key.

What is served:

- only URLs that a trusted client mentioned before any web client did (`UrlControl`), only to
  the origin the client registered from, and always the URL as the trusted client gave it:
  the page's request is only used to look it up (by `url_key`: split, then decoded once);
- for ``file:`` URLs, exactly the path `file_path` names, and only when it is a regular file
  reached without symbolic links: `os.lstat` must say ``S_ISREG``, the path must be its own
  `os.path.realpath`, and it is opened with ``O_NOFOLLOW | O_NONBLOCK`` and checked again
  with `os.fstat` (same file, still regular). FIFOs, devices, sockets and directories are
  never opened. Files are read off the event loop, in chunks;
- ``http:`` and ``https:`` URLs are fetched without following redirects.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import mimetypes
import os
import re
import stat
from urllib.parse import unquote, urlsplit

import aiohttp
from aiohttp import web

from .registry import ClientRecord
from .web_consent import normalise_origin
from .web_policy import UrlControl, file_path

__all__ = ["UrlTranslator"]

log = logging.getLogger("sampflow.hub.web")

_ORIGIN = re.compile(r"^(null|[a-z][a-z0-9+.-]*://[^\s/?#]{1,253})$", re.IGNORECASE)


def _request_origin(request: web.Request) -> str | None:
    origin = request.headers.get("Origin")
    if origin is None:
        return None
    return origin if _ORIGIN.match(origin) else ""


class UrlTranslator:
    """Serves ``/translator/{token}?<url>`` for the registered web clients.

    Parameters
    ----------
    urls : UrlControl
        Which URLs may be served.
    """

    def __init__(self, urls: UrlControl) -> None:
        self.urls = urls
        self._records: dict[str, ClientRecord] = {}
        self._session: aiohttp.ClientSession | None = None

    def add(self, token: str, record: ClientRecord) -> None:
        """Give web client `record` the translator `token`."""
        self._records[token] = record

    def remove(self, token: str) -> None:
        """Forget `token` (its client left)."""
        self._records.pop(token, None)

    async def close(self) -> None:
        """Close the HTTP client session used for ``http:`` URLs."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """The aiohttp handler of ``GET /translator/{token}``."""
        record = self._records.get(request.match_info["token"])
        if record is None:
            return web.Response(status=404, text="unknown translator\n")
        origin = _request_origin(request)
        registered = record.info.get("origin")
        if origin and (registered is None
                       or normalise_origin(origin) != normalise_origin(registered)):
            return web.Response(status=403, text="origin differs from the registered one\n")
        raw = request.rel_url.raw_query_string
        target = raw if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", raw) else unquote(raw)
        # The page may read the answer, refusals included (they say why), from its own origin.
        headers = {"Access-Control-Allow-Origin": origin, "Vary": "Origin"} if origin else {}
        offered = self.urls.lookup(target)
        if offered is None:
            log.warning("translator refused %s to web client %s: not offered by a desktop client",
                        target[:200], record.public_id)
            return web.Response(status=403, text="that URL was not offered to web clients\n",
                                headers=headers)
        scheme = urlsplit(offered).scheme.lower()
        if scheme == "file":
            path = file_path(offered)
            if path is None:
                return web.Response(status=404, text="remote file URLs are not served\n",
                                    headers=headers)
            return await self._serve_file(request, path, headers)
        if scheme in ("http", "https"):
            return await self._proxy(request, offered, headers)
        return web.Response(status=501, text=f"cannot translate {scheme} URLs\n",
                            headers=headers)

    async def _serve_file(self, request: web.Request, path: str,
                          headers: dict[str, str]) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        opening = loop.run_in_executor(None, open_regular_file, path)
        try:
            fd, size = await asyncio.shield(opening)
        except _Refused as exc:
            log.warning("translator refused %s: %s", path[:200], exc.reason)
            return web.Response(status=exc.status, text=f"{exc.reason}\n", headers=headers)
        except asyncio.CancelledError:  # the page went away: close what is being opened
            opening.add_done_callback(_close_opened)
            raise
        reading: asyncio.Future[bytes] | None = None
        try:
            response = web.StreamResponse(headers=headers)
            kind, encoding = mimetypes.guess_type(path)
            response.content_type = (kind if kind and not encoding  # x.fits.gz: gzip bytes
                                     else "application/octet-stream")
            response.content_length = size
            await response.prepare(request)
            offset = 0
            while offset < size:
                reading = loop.run_in_executor(None, os.pread, fd, min(CHUNK, size - offset),
                                               offset)
                chunk = await asyncio.shield(reading)
                if not chunk:
                    break  # the file shrank meanwhile; the short answer shows it
                await response.write(chunk)
                offset += len(chunk)
            await response.write_eof()
            return response
        finally:
            if reading is not None and not reading.done():  # never close under a read
                reading.add_done_callback(lambda _: os.close(fd))
            else:
                os.close(fd)

    async def _proxy(self, request: web.Request, target: str,
                     headers: dict[str, str]) -> web.StreamResponse:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=10, sock_read=60))
        try:
            async with self._session.get(target, allow_redirects=False) as upstream:
                response = web.StreamResponse(status=upstream.status, headers=headers)
                response.content_type = upstream.content_type
                await response.prepare(request)
                async for chunk in upstream.content.iter_chunked(65536):
                    await response.write(chunk)
                await response.write_eof()
                return response
        except (TimeoutError, aiohttp.ClientError) as exc:
            return web.Response(status=502, text=f"could not fetch: {exc}\n", headers=headers)


#: Bytes read from a file per step.
CHUNK = 1 << 16


def _close_opened(future: asyncio.Future[tuple[int, int]]) -> None:
    if not future.cancelled() and future.exception() is None:
        os.close(future.result()[0])


class _Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


def open_regular_file(path: str) -> tuple[int, int]:
    """Open `path` for the translator: a regular file, reached without symbolic links.

    Blocking (file system calls); run it off the event loop.

    Parameters
    ----------
    path : str
        An absolute path.

    Returns
    -------
    (int, int)
        A read-only file descriptor (the caller closes it) and the file's size in bytes.

    Raises
    ------
    _Refused
        With HTTP status 404 if there is no such file, 403 if it is a symbolic link, goes
        through one, is not a regular file (FIFO, device, socket, directory) or changed
        between the checks and the opening.
    """
    if not os.path.isabs(path):
        raise _Refused(404, "not an absolute path")
    try:
        before = os.lstat(path)
    except (OSError, ValueError):
        raise _Refused(404, "no such file") from None
    if stat.S_ISLNK(before.st_mode):
        raise _Refused(403, "symbolic links are not served")
    if not stat.S_ISREG(before.st_mode):
        raise _Refused(403, "only regular files are served")
    if os.path.realpath(path) != os.path.normpath(path):
        raise _Refused(403, "paths through symbolic links are not served")
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _Refused(403, "symbolic links are not served") from None
        raise _Refused(404, "cannot open the file") from None
    try:
        now = os.fstat(fd)
        if not stat.S_ISREG(now.st_mode) or (now.st_dev, now.st_ino) != (before.st_dev,
                                                                           before.st_ino):
            raise _Refused(403, "the file changed while it was being opened")
    except BaseException:
        os.close(fd)
        raise
    return fd, now.st_size
