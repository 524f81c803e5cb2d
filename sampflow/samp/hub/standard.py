"""The Standard Profile transport (SAMP 1.3 section 4): XML-RPC over HTTP on loopback.

`StandardProfile` is an aiohttp application: each POST is one XML-RPC ``methodCall``. It
parses the body with the safe codec, checks the secret on ``samp.hub.register``, hands every
other ``samp.hub.*`` method to the `HubService`, and turns any refusal into an XML-RPC fault
with a message that says why. A bad request never disturbs other clients: each request is
independent, and nothing but the core's state is shared.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from aiohttp import web

from ..errors import ProtocolError
from ..xmlrpc import MAX_BODY_BYTES, MalformedRequest, dumps_fault, dumps_response, loads_request
from .registry import Profile
from .service import HubService, hub_call

__all__ = ["StandardProfile", "StandardRunner"]

log = logging.getLogger("sampflow.hub")

PREFIX = "samp.hub."
XML = "text/xml"

#: Methods only the Standard Profile has (section 4.2.4), in the form of `COMMON_METHODS`.
STANDARD_ONLY_METHODS = {"setXmlrpcCallback": (2, hub_call("set_callback"))}


class _BareLFRequestHandler(web.RequestHandler):
    """aiohttp's request handler, accepting header lines that end with a bare LF.

    SAO DS9's Tcl XML-RPC client writes ``POST /xmlrpc HTTP/1.0\\n...``, which aiohttp's parser
    refuses (400). The first line of a connection tells: if it ends with CRLF nothing is ever
    touched again; otherwise each LF in the request head gets its CR, and the rest (the body,
    and everything after: such clients speak HTTP/1.0, one request per connection) passes as
    it is.
    """

    __slots__ = ("_lf_mode", "_lf_prev", "_lf_blank")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lf_mode: bool | None = None  # None: undecided; True: fixing the head; False: off
        self._lf_prev = 0
        self._lf_blank = False

    def data_received(self, data: bytes) -> None:
        if self._lf_mode is None:
            eol = data.find(b"\n")
            if eol < 0:
                super().data_received(data)
                return
            self._lf_mode = eol == 0 or data[eol - 1] != 13
        if self._lf_mode:
            data = self._fix_head(data)
        super().data_received(data)

    def _fix_head(self, data: bytes) -> bytes:
        out = bytearray()
        prev, blank = self._lf_prev, self._lf_blank
        for i, byte in enumerate(data):
            if byte == 10:
                if prev != 13:
                    out.append(13)
                out.append(10)
                if blank:  # the empty line: end of the head
                    self._lf_mode = False
                    out += data[i + 1:]
                    break
                blank = True
            else:
                out.append(byte)
                if byte != 13:
                    blank = False
            prev = byte
        self._lf_prev, self._lf_blank = prev, blank
        return bytes(out)


class _BareLFServer(web.Server):
    def __call__(self) -> web.RequestHandler:
        return _BareLFRequestHandler(self, loop=self._loop, **self._kwargs)


class StandardRunner(web.AppRunner):
    """`web.AppRunner` for the Standard Profile: also serves clients that end header lines
    with a bare LF (SAO DS9), see `_BareLFRequestHandler`."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _BareLFServer
        return server


class StandardProfile:
    """Serves the Standard Profile hub API for one `HubService`.

    Parameters
    ----------
    service : HubService
        The hub to serve.
    max_body : int
        Largest request body accepted, in bytes; larger ones get a fault.
    """

    def __init__(self, service: HubService, *, max_body: int = MAX_BODY_BYTES) -> None:
        self.service = service
        self.max_body = max_body

    def app(self) -> web.Application:
        """An aiohttp application answering XML-RPC POSTs on any path."""
        app = web.Application(client_max_size=self.max_body + 1)
        app.router.add_post("/{tail:.*}", self.handle)
        app.router.add_get("/{tail:.*}", self._get)
        return app

    async def _get(self, request: web.Request) -> web.Response:
        return web.Response(text="sampflow SAMP hub: Standard Profile XML-RPC; POST here.\n")

    async def handle(self, request: web.Request) -> web.Response:
        """Answer one XML-RPC request; always HTTP 200 with a response or a fault."""
        if request.content_length is not None and request.content_length > self.max_body:
            return self._fault(f"request body of {request.content_length} bytes exceeds "
                               f"{self.max_body} bytes")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._fault(f"request body exceeds {self.max_body} bytes")
        try:
            method, params = loads_request(body, max_bytes=self.max_body)
            value = await self.call(method, params)
        except (ProtocolError, MalformedRequest) as exc:
            log.debug("fault: %s", exc)
            return self._fault(str(exc))
        return web.Response(body=dumps_response(value), content_type=XML, charset="utf-8")

    async def call(self, method: str, params: tuple[Any, ...]) -> Any:
        """Run Standard Profile method `method` (a full ``samp.hub.*`` name).

        Raises
        ------
        ProtocolError
            If the request is refused; the message becomes the fault string.
        """
        if not method.startswith(PREFIX):
            raise MalformedRequest(f"no such method: {method} (Standard Profile methods "
                                   f"start with {PREFIX})")
        name = method[len(PREFIX):]
        if name == "register":
            if len(params) != 1 or not isinstance(params[0], str):
                raise MalformedRequest("register takes 1 argument, the hub secret")
            if not secrets.compare_digest(params[0], self.service.secret):
                raise MalformedRequest("wrong hub secret")
            return self.service.register(Profile.STANDARD)
        return await self.service.dispatch(name, params, extra=STANDARD_ONLY_METHODS)

    @staticmethod
    def _fault(message: str) -> web.Response:
        return web.Response(body=dumps_fault(message), content_type=XML, charset="utf-8")
