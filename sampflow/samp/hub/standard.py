"""The Standard Profile transport (SAMP 1.3 section 4): XML-RPC over HTTP on loopback.

`StandardProfile` answers each POST as one XML-RPC ``methodCall``, served by the lean HTTP
layer of `sampflow.samp.wire` (which also accepts SAO DS9's bare-LF header lines). It parses
the body with the safe codec, checks the secret on ``samp.hub.register``, hands every other
``samp.hub.*`` method to the `HubService`, and turns any refusal into an XML-RPC fault with a
message that says why. Every method but ``callAndWait`` is answered at once, without a task;
``callAndWait`` waits for its response on a future. A bad request never disturbs other
clients: each request is independent, and nothing but the core's state is shared.

Values the hub could not relay exactly as they came (``<nil/>``, integers beyond 32 bits,
extension types) are refused with a fault at parse time; with ``value_types="samp"`` so is
every type but SAMP's string, list and map inside maps and lists (SAMP 1.3 section 3.3; see
`sampflow.samp.xmlrpc`). The bounds of `sampflow.samp.xmlrpc` apply to every
request (8 MiB, 250,000 values, strings of 4 Mi characters), and a body larger than
`OFF_LOOP_BYTES` is parsed on one worker thread, and a big answer (``getMetadata`` of a big
map) encoded there, so that other clients' requests are served meanwhile.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
import socket
from collections.abc import Awaitable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..errors import ProtocolError
from ..wire import Request, Response, serve
from ..wire.server import HttpServer
from ..xmlrpc import (
    MAX_BODY_BYTES,
    MalformedRequest,
    dumps_fault,
    dumps_response,
    is_large,
    loads_request,
)
from .core import Delivery
from .profiles import LISTEN_BACKLOG
from .registry import ClientRecord, Profile
from .service import HubService, MethodTable

__all__ = ["StandardProfile"]

log = logging.getLogger("sampflow.hub")

PREFIX = "samp.hub."

_GET_TEXT = b"sampflow SAMP hub: Standard Profile XML-RPC; POST here.\n"

#: Request bodies larger than this (bytes) are parsed off the event loop.
OFF_LOOP_BYTES = 256 * 1024


class StandardProfile:
    """Serves the Standard Profile hub API for one `HubService` (a `HubProfile`).

    Add it to a hub with `AsyncHub.add_profile`, which starts it. Deliveries to its clients
    go to the service's `Deliverer` (XML-RPC callbacks).

    Parameters
    ----------
    service : HubService
        The hub to serve.
    addr : str
        Address to listen on.
    port : int
        TCP port; 0 picks a free one (`port` is the one bound once started).
    max_body : int
        Largest request body accepted, in bytes; larger ones get a fault.
    backlog : int
        Listen backlog.
    """

    profile = Profile.STANDARD

    def __init__(self, service: HubService, *, addr: str = "127.0.0.1", port: int = 0,
                 max_body: int = MAX_BODY_BYTES, backlog: int = LISTEN_BACKLOG) -> None:
        self.service = service
        self.addr = addr
        self.port = port
        self.max_body = max_body
        self.backlog = backlog
        #: ``samp.hub.xmlrpc.url``, once started.
        self.url: str | None = None
        self._server: HttpServer | None = None
        self._parser: ThreadPoolExecutor | None = None  # one thread, for large bodies
        #: Methods only the Standard Profile has (section 4.2.4), in the form of
        #: `HubService.methods`.
        self.methods: MethodTable = {"setXmlrpcCallback": (2, service.core.set_callback)}

    # -- HubProfile ----------------------------------------------------------------------------
    async def start(self) -> None:
        """Listen on `addr` and `port`; sets `port` and `url`.

        Raises
        ------
        OSError
            If the address cannot be bound.
        """
        self._server = await serve(self.handle, self.addr, self.port, max_body=self.max_body,
                                   too_large=self.too_large, backlog=self.backlog)
        self.port = self._server.port
        host = self.addr if self.addr not in ("0.0.0.0", "::", "") else socket.gethostname()
        self.url = f"http://{host}:{self.port}/xmlrpc"

    async def stop(self) -> None:
        """Stop listening and stop the parsing thread, if one was started."""
        if self._server is not None:
            await self._server.close()
            self._server = None
        self.close()

    def lockfile_entries(self) -> dict[str, str]:
        """``samp.secret`` and ``samp.hub.xmlrpc.url`` (section 4.2.2), once started."""
        if self.url is None:
            return {}
        return {"samp.secret": self.service.secret, "samp.hub.xmlrpc.url": self.url}

    def filter(self, sender: ClientRecord, recipient: ClientRecord,
               message: dict[str, Any]) -> str | None:
        """Standard Profile clients may send any message: always None."""
        return None

    def observe(self, sender: ClientRecord, message: dict[str, Any]) -> None:
        """Nothing to watch."""

    def deliver(self, delivery: Delivery) -> None:
        """Queue `delivery` for an XML-RPC callback (`Deliverer.submit`)."""
        self.service.deliverer.submit(delivery)

    def client_gone(self, record: ClientRecord, reason: str) -> None:
        """Drop `record`'s callback lanes (`Deliverer.forget`)."""
        self.service.deliverer.forget(record)

    # -- serving -------------------------------------------------------------------------------

    def handle(self, request: Request) -> Response | Awaitable[Response]:
        """Answer one HTTP request: an XML-RPC response or fault (always HTTP 200) for a POST,
        a line of text for a GET.

        Returns
        -------
        Response or awaitable of Response
            An awaitable only for ``samp.hub.callAndWait``, which waits for the recipient.
        """
        if request.method != "POST":
            if request.method in ("GET", "HEAD"):
                return Response(_GET_TEXT, content_type="text/plain; charset=utf-8")
            return Response(b"POST XML-RPC requests here\n", 405, "text/plain")
        if len(request.body) > OFF_LOOP_BYTES:
            return self._handle_large(request.body)
        try:
            method, params = loads_request(request.body, max_bytes=self.max_body,
                                           types=self.service.value_types)
        except MalformedRequest as exc:
            log.debug("fault: %s", exc)
            return self.fault(str(exc))
        return self._run(method, params)

    async def _handle_large(self, body: bytes) -> Response:
        parse = functools.partial(loads_request, body, max_bytes=self.max_body,
                                  types=self.service.value_types)
        try:
            method, params = await asyncio.get_running_loop().run_in_executor(
                self._worker(), parse)
        except MalformedRequest as exc:
            log.debug("fault: %s", exc)
            return self.fault(str(exc))
        response = self._run(method, params)
        return response if isinstance(response, Response) else await response

    def _run(self, method: str, params: tuple[Any, ...]) -> Response | Awaitable[Response]:
        try:
            if method == "samp.hub.callAndWait":
                return self._call_and_wait(params)
            value = self.call_now(method, params)
        except (ProtocolError, MalformedRequest) as exc:
            log.debug("fault: %s", exc)
            return self.fault(str(exc))
        return self._answer(value)

    async def _call_and_wait(self, params: tuple[Any, ...]) -> Response:
        try:
            value = await self.service.dispatch("callAndWait", params)
        except ProtocolError as exc:
            log.debug("fault: %s", exc)
            return self.fault(str(exc))
        response = self._answer(value)
        return response if isinstance(response, Response) else await response

    def _answer(self, value: Any) -> Response | Awaitable[Response]:
        if is_large(value):  # a big map (getMetadata of a big one): encoded off the loop
            return self._answer_large(value)
        try:
            return Response(dumps_response(value))
        except (TypeError, ValueError, OverflowError) as exc:  # nothing accepted should fail
            log.error("cannot encode an answer: %s", exc)
            return self.fault(f"the hub cannot encode its answer: {exc}")

    async def _answer_large(self, value: Any) -> Response:
        try:
            body = await asyncio.get_running_loop().run_in_executor(
                self._worker(), dumps_response, value)
        except (TypeError, ValueError, OverflowError) as exc:
            log.error("cannot encode an answer: %s", exc)
            return self.fault(f"the hub cannot encode its answer: {exc}")
        return Response(body)

    def _worker(self) -> ThreadPoolExecutor:
        if self._parser is None:
            self._parser = ThreadPoolExecutor(1, thread_name_prefix="sampflow-xmlrpc")
        return self._parser

    def close(self) -> None:
        """Stop the parsing thread, if one was started."""
        if self._parser is not None:
            self._parser.shutdown(wait=False, cancel_futures=True)
            self._parser = None

    def call_now(self, method: str, params: tuple[Any, ...]) -> Any:
        """Run Standard Profile method `method` (a full ``samp.hub.*`` name), any but
        ``callAndWait``.

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
        return self.service.dispatch_now(name, params, extra=self.methods)

    def too_large(self, length: int | None) -> Response:
        """The fault for a request body over `max_body` (`length` if it was announced)."""
        size = f"of {length} bytes " if length is not None else ""
        return self.fault(f"request body {size}exceeds {self.max_body} bytes")

    @staticmethod
    def fault(message: str) -> Response:
        """An XML-RPC fault response carrying `message`."""
        return Response(dumps_fault(message))
