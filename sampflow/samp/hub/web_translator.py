"""The Web Profile's URL translator (SAMP 1.3 section 5.4.3).

A web page cannot read most URLs a desktop client sends it (the browser's same-origin rules,
``file:`` URLs). ``samp.webhub.register`` therefore gives each web client a translator prefix,
``http://127.0.0.1:21012/translator/<token>?``: the page appends a URL to it and the hub
fetches the resource for it. The token is per client and is not its private key. Only URLs
that a trusted client mentioned (`UrlControl`) are served, only to the origin the client
registered from; ``file:`` URLs must name a local regular file; ``http:`` and ``https:`` ones
are fetched without following redirects.
"""

from __future__ import annotations

import logging
import os
import re
from urllib.parse import unquote, urlsplit

import aiohttp
from aiohttp import web

from .registry import ClientRecord
from .web_consent import normalise_origin
from .web_policy import UrlControl

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
        if origin and (registered is None or normalise_origin(origin) != normalise_origin(registered)):
            return web.Response(status=403, text="origin differs from the registered one\n")
        raw = request.rel_url.raw_query_string
        target = raw if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", raw) else unquote(raw)
        if not self.urls.allows(target):
            log.warning("translator refused %s to web client %s: not offered by a desktop client",
                        target[:200], record.public_id)
            return web.Response(status=403, text="that URL was not offered to web clients\n")
        headers = {"Access-Control-Allow-Origin": origin, "Vary": "Origin"} if origin else {}
        parts = urlsplit(target)
        scheme = parts.scheme.lower()
        if scheme == "file":
            if parts.netloc not in ("", "localhost"):
                return web.Response(status=404, text="remote file URLs are not served\n")
            path = unquote(parts.path)
            if not os.path.isfile(path):
                return web.Response(status=404, text="no such file\n")
            return web.FileResponse(path, headers=headers)
        if scheme in ("http", "https"):
            return await self._proxy(request, target, headers)
        return web.Response(status=501, text=f"cannot translate {scheme} URLs\n")

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
