"""An asyncio-native SAMP client for the Standard Profile (SAMP 1.3 sections 3 and 4).

`AsyncSAMPClient` registers with a hub, keeps pooled keep-alive connections to it, and (when
callable) serves its own XML-RPC callback endpoint on loopback. Incoming traffic reaches one
coroutine, `AsyncSAMPClient.on_message`; responses to asynchronous calls reach
`AsyncSAMPClient.on_response`. Both run as tasks on the client's loop, so a slow handler
never delays the hub's next callback.

Examples
--------
>>> import asyncio
>>> from sampflow.samp.hub.server import AsyncHub
>>> async def demo(lockfile):
...     hub = AsyncHub(lockfile=lockfile)
...     await hub.start()
...     async with AsyncSAMPClient("a") as a, AsyncSAMPClient("b") as b:
...         await a.connect(lockfile=lockfile); await b.connect(lockfile=lockfile)
...         await b.declare_subscriptions({"samp.app.ping": {}})
...         response = await a.call_and_wait(b.public_id, {"samp.mtype": "samp.app.ping",
...                                                        "samp.params": {}}, timeout=5)
...     await hub.stop()
...     return response["samp.status"]
>>> import tempfile, os
>>> asyncio.run(demo(os.path.join(tempfile.mkdtemp(), "lock")))
'samp.ok'
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from .. import xmlrpc as codec
from ..errors import SAMPClientError, SAMPHubError, SAMPProxyError
from ..lockfile import lockfile_location, read_lockfile
from ..types import error_response, make_response
from ..wire import HttpClient, Request, Response, serve
from ..wire.server import HttpServer

__all__ = ["AsyncSAMPClient", "MessageHandler", "ResponseHandler", "samp_timeout"]

log = logging.getLogger("sampflow.client")

#: The answer to every accepted callback (section 4.2.4: the client methods return nothing).
_EMPTY_RESPONSE = codec.dumps_response("")

#: ``handler(kind, sender_id, msg_id, message)``; `kind` is ``"notification"`` or ``"call"``
#: (`msg_id` None for notifications). For a call, a returned dict is sent back as the
#: response; None means the handler replies itself (with `AsyncSAMPClient.reply`).
MessageHandler = Callable[[str, str, "str | None", dict], Awaitable["dict | None"]]
#: ``handler(responder_id, msg_tag, response)`` for responses to `AsyncSAMPClient.call`.
ResponseHandler = Callable[[str, str, dict], Awaitable[None]]


def samp_timeout(timeout: str | int | float) -> str:
    """The ``callAndWait`` timeout as SAMP sends it: a SAMP int string of whole seconds.

    SAMP 1.3 section 3.11 gives ``samp.hub.callAndWait`` its timeout as an integer number
    of seconds in a SAMP int string. Every sampflow client (`AsyncSAMPClient`,
    `SAMPHubProxy`, `SAMPIntegratedClient`) converts what it is given by this one rule: a
    number or numeric string, rounded **up** to whole seconds, so ``"0.5"`` waits one
    second instead of becoming ``"0"``; zero or less means no limit and is sent as ``"0"``.

    Parameters
    ----------
    timeout : str, int or float
        Seconds.

    Returns
    -------
    str
        The SAMP int string.

    Raises
    ------
    SAMPClientError
        If `timeout` is not a finite number.

    Examples
    --------
    >>> [samp_timeout(t) for t in ("0.5", 10, "10", 2.0, 0, "-3")]
    ['1', '10', '10', '2', '0', '0']
    """
    try:
        seconds = float(timeout)
    except (TypeError, ValueError):
        raise SAMPClientError(f"callAndWait timeout must be a number, not {timeout!r}") from None
    if not math.isfinite(seconds):
        raise SAMPClientError(f"callAndWait timeout must be finite, not {timeout!r}")
    return str(max(0, math.ceil(seconds)))


def http_timeout(samp_seconds: str) -> float | None:
    """Seconds to wait for the hub's HTTP answer to a ``callAndWait`` whose SAMP timeout is
    `samp_seconds` (from `samp_timeout`): ten more than the hub waits; None for no limit."""
    seconds = int(samp_seconds)
    return None if seconds <= 0 else seconds + 10.0


class AsyncSAMPClient:
    """A SAMP client on the running asyncio loop.

    Parameters
    ----------
    name : str, optional
        ``samp.name`` to declare.
    description : str, optional
        ``samp.description.text`` to declare.
    metadata : dict, optional
        Further metadata (merged over the two above).
    addr : str
        Address for the callback endpoint; loopback by default.
    port : int
        Port for the callback endpoint; 0 picks a free one.
    callable : bool
        Whether to serve a callback endpoint and receive messages.
    """

    def __init__(self, name: str | None = None, description: str | None = None,
                 metadata: dict[str, Any] | None = None, *, addr: str = "127.0.0.1",
                 port: int = 0, callable: bool = True) -> None:
        self.metadata: dict[str, Any] = {}
        if name is not None:
            self.metadata["samp.name"] = name
        if description is not None:
            self.metadata["samp.description.text"] = description
        self.metadata.update(metadata or {})
        self.addr = addr
        self.port = port
        self.callable = callable
        self.on_message: MessageHandler | None = None
        self.on_response: ResponseHandler | None = None
        self.private_key: str | None = None
        self.public_id: str | None = None
        self.hub_id: str | None = None
        self.hub_params: dict[str, str] | None = None
        self.callback_url: str | None = None
        self._http: HttpClient | None = None
        self._server: HttpServer | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        #: Called with the reason when the hub tells us it stops or disconnects us.
        self.on_hub_lost: Callable[[str], None] | None = None

    async def __aenter__(self) -> "AsyncSAMPClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.disconnect()

    @property
    def is_connected(self) -> bool:
        """Whether the client is registered with a hub."""
        return self.private_key is not None

    # -- connection ------------------------------------------------------------------------
    async def connect(self, hub_params: dict[str, str] | None = None,
                      lockfile: str | None = None, *, timeout: float = 10.0) -> None:
        """Register with the hub, start the callback endpoint, declare metadata.

        Parameters
        ----------
        hub_params : dict, optional
            Lockfile key-value pairs of the hub to join; found through `lockfile` or
            ``SAMP_HUB`` / ``~/.samp`` when omitted (section 4.3).
        lockfile : str, optional
            Path or URL of the lockfile to read.
        timeout : float
            Seconds allowed for each hub request during registration.

        Raises
        ------
        SAMPHubError
            If no hub is found or the hub refuses the registration.
        SAMPClientError
            If already connected.
        """
        if self.is_connected:
            raise SAMPClientError("already connected")
        if hub_params is None:
            hub_params = read_lockfile(lockfile or lockfile_location())
        await self.open(hub_params)
        try:
            result = await self.request("samp.hub.register", hub_params["samp.secret"],
                                     timeout=timeout)
            self.private_key = result["samp.private-key"]
            self.public_id = result["samp.self-id"]
            self.hub_id = result["samp.hub-id"]
            if self.callable:
                await self._serve_callbacks()
                await self.hub("setXmlrpcCallback", self.callback_url)
            if self.metadata:
                await self.hub("declareMetadata", self.metadata)
        except BaseException:
            await self.close()
            raise

    async def open(self, hub_params: dict[str, str]) -> None:
        """Open the HTTP session to the hub named by `hub_params`, without registering.

        After this, `request` may call the hub's methods that need no private key
        (``samp.hub.ping``, ``samp.hub.register``); `connect` calls it itself. Calling it
        again points the session at another hub. Undo it with `close`.

        Parameters
        ----------
        hub_params : dict
            Lockfile key-value pairs of the hub (SAMP 1.3 section 3.3); only
            ``samp.hub.xmlrpc.url`` is used.

        Raises
        ------
        SAMPHubError
            If `hub_params` lacks ``samp.hub.xmlrpc.url``.
        """
        self.hub_params = dict(hub_params)
        try:
            self._url = hub_params["samp.hub.xmlrpc.url"]
        except KeyError:
            raise SAMPHubError("hub parameters lack samp.hub.xmlrpc.url") from None
        if self._http is None:
            self._http = HttpClient(user_agent="sampflow-client")

    async def _serve_callbacks(self) -> None:
        self._server = await serve(self._handle_callback, self.addr, self.port,
                                   max_body=codec.MAX_BODY_BYTES, too_large=self._too_large,
                                   backlog=128)
        self.callback_url = f"http://{self.addr}:{self._server.port}/xmlrpc"

    async def disconnect(self) -> None:
        """Unregister (if the hub still answers) and close everything; safe to call twice."""
        if self.private_key is not None:
            try:
                await self.hub("unregister", timeout=5)
            except (SAMPHubError, OSError, asyncio.TimeoutError):
                pass  # the hub may be gone already
        await self.close()

    async def close(self) -> None:
        """Close the callback endpoint and the HTTP session, and forget the registration,
        without telling the hub (for a hub that has gone; `disconnect` unregisters first).

        Safe to call twice, or before `open`. Handler tasks still running are cancelled.
        """
        self.private_key = None
        for task in list(self._tasks):
            task.cancel()
        if self._server is not None:
            await self._server.close(grace=0)
            self._server = None
        if self._http is not None:
            await self._http.close()
            self._http = None

    # -- hub calls -------------------------------------------------------------------------
    async def request(self, method: str, *params: Any, timeout: float | None = 30.0) -> Any:
        """Send one XML-RPC request to the hub, `params` as given (no private key added).

        Parameters
        ----------
        method : str
            The full method name, for example ``samp.hub.ping`` (section 4.2.3).
        *params
            Its arguments, SAMP-encodable values.
        timeout : float, optional
            Seconds to wait for the hub's answer; None waits as long as it takes.

        Returns
        -------
        object
            The decoded XML-RPC result.

        Raises
        ------
        SAMPProxyError
            If the hub returns a fault (a `SAMPHubError` subclass).
        SAMPHubError
            If the hub cannot be reached, times out or answers with something other than an
            XML-RPC response.
        SAMPClientError
            If `open` (or `connect`) has not been called.
        """
        if self._http is None:
            raise SAMPClientError("not connected to a hub")
        body = codec.dumps_request(method, params)
        try:
            status, payload = await self._http.post(self._url, body, timeout=timeout)
            if status != 200:
                raise codec.MalformedRequest(f"HTTP status {status}")
            return codec.loads_response(payload)
        except codec.Fault as fault:
            raise SAMPProxyError(fault.faultCode, fault.faultString) from None
        except TimeoutError:
            raise SAMPHubError(f"{method}: the hub at {self._url} timed out") from None
        except OSError as exc:
            raise SAMPHubError(f"{method}: the hub at {self._url} did not answer: {exc}") from None
        except codec.MalformedRequest as exc:
            raise SAMPHubError(f"{method}: bad answer from the hub: {exc}") from None

    async def hub(self, method: str, *params: Any, timeout: float | None = 30.0) -> Any:
        """Call ``samp.hub.<method>`` with the private key and `params`.

        Raises
        ------
        SAMPProxyError
            If the hub returns a fault (a `SAMPHubError` subclass).
        SAMPHubError
            If the hub cannot be reached.
        SAMPClientError
            If not connected.
        """
        if self.private_key is None:
            raise SAMPClientError("not connected to a hub")
        return await self.request(f"samp.hub.{method}", self.private_key, *params, timeout=timeout)

    async def ping(self) -> None:
        """``samp.hub.ping``: raises `SAMPHubError` if the hub does not answer."""
        await self.request("samp.hub.ping", timeout=10)

    async def declare_metadata(self, metadata: dict[str, Any]) -> None:
        """``declareMetadata`` (section 3.5)."""
        self.metadata = dict(metadata)
        await self.hub("declareMetadata", self.metadata)

    async def declare_subscriptions(self, subscriptions: dict[str, Any]) -> None:
        """``declareSubscriptions`` (section 3.6): MType patterns -> annotation maps."""
        await self.hub("declareSubscriptions", subscriptions)

    async def get_metadata(self, client_id: str) -> dict[str, Any]:
        """``getMetadata``: the metadata of `client_id`."""
        return await self.hub("getMetadata", client_id)

    async def get_subscriptions(self, client_id: str) -> dict[str, Any]:
        """``getSubscriptions``: the subscriptions of `client_id`."""
        return await self.hub("getSubscriptions", client_id)

    async def get_registered_clients(self) -> list[str]:
        """``getRegisteredClients``: the other clients' public ids (hub included)."""
        return await self.hub("getRegisteredClients")

    async def get_subscribed_clients(self, mtype: str) -> dict[str, Any]:
        """``getSubscribedClients``: public id -> annotation for clients subscribed to `mtype`."""
        return await self.hub("getSubscribedClients", mtype)

    async def notify(self, recipient_id: str, message: dict[str, Any]) -> Any:
        """``notify`` (section 3.8): returns the hub's answer (``""`` from sampflow's hub)."""
        return await self.hub("notify", recipient_id, message)

    async def notify_all(self, message: dict[str, Any]) -> list[str]:
        """``notifyAll``: returns the recipients' ids."""
        return await self.hub("notifyAll", message)

    async def call(self, recipient_id: str, msg_tag: str, message: dict[str, Any]) -> str:
        """``call`` (section 3.9): returns the msg-id; the response goes to `on_response`."""
        return await self.hub("call", recipient_id, msg_tag, message)

    async def call_all(self, msg_tag: str, message: dict[str, Any]) -> dict[str, str]:
        """``callAll``: returns recipient id -> msg-id."""
        return await self.hub("callAll", msg_tag, message)

    async def call_and_wait(self, recipient_id: str, message: dict[str, Any],
                            timeout: str | int | float) -> dict[str, Any]:
        """``callAndWait`` (section 3.11): the recipient's response map.

        Parameters
        ----------
        timeout : str, int or float
            Seconds the hub waits for the response, rounded up to whole seconds; 0 (or
            less) waits forever (see `samp_timeout`).

        Raises
        ------
        SAMPProxyError
            On timeout or refusal (the hub's fault).
        SAMPClientError
            If `timeout` is not a number.
        """
        seconds = samp_timeout(timeout)
        return await self.hub("callAndWait", recipient_id, message, seconds,
                              timeout=http_timeout(seconds))

    async def reply(self, msg_id: str, response: dict[str, Any]) -> None:
        """``reply`` (section 3.9): answer the call `msg_id`."""
        await self.hub("reply", msg_id, response)

    def new_msg_tag(self) -> str:
        """A fresh msg-tag."""
        return "t" + secrets.token_hex(6)

    # -- callbacks from the hub (section 4.2.4) ----------------------------------------------
    def _handle_callback(self, request: Request) -> Response:
        if request.method != "POST":
            return Response(b"POST XML-RPC callbacks here\n", 405, "text/plain")
        try:
            method, params = codec.loads_request(request.body)
            self._accept(method, params)
        except (codec.MalformedRequest, SAMPClientError) as exc:
            return Response(codec.dumps_fault(str(exc)))
        return Response(_EMPTY_RESPONSE)

    @staticmethod
    def _too_large(length: int | None) -> Response:
        return Response(codec.dumps_fault(f"callback body exceeds {codec.MAX_BODY_BYTES} bytes"))

    def _accept(self, method: str, params: tuple[Any, ...]) -> None:
        arity = {"samp.client.receiveNotification": 3, "samp.client.receiveCall": 4,
                 "samp.client.receiveResponse": 4}.get(method)
        if arity is None:
            raise SAMPClientError(f"no such client method: {method}")
        if len(params) != arity:
            raise SAMPClientError(f"{method} takes {arity} arguments, got {len(params)}")
        if self.private_key is None or not isinstance(params[0], str) or \
                not secrets.compare_digest(params[0], self.private_key):
            raise SAMPClientError("wrong private key")
        if method == "samp.client.receiveResponse":
            self._spawn(self._response(*params[1:]))
        elif method == "samp.client.receiveCall":
            self._spawn(self._call(params[1], params[2], params[3]))
        else:
            self._spawn(self._notification(params[1], params[2]))

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _notification(self, sender_id: str, message: dict[str, Any]) -> None:
        mtype = message.get("samp.mtype") if isinstance(message, dict) else None
        if sender_id == self.hub_id and mtype in ("samp.hub.event.shutdown", "samp.hub.disconnect"):
            if self.on_hub_lost is not None:
                self.on_hub_lost(str(mtype))
        if self.on_message is None:
            return
        try:
            await self.on_message("notification", sender_id, None, message)
        except Exception:
            log.exception("handler for notification %s from %s failed", mtype, sender_id)

    async def _call(self, sender_id: str, msg_id: str, message: dict[str, Any]) -> None:
        mtype = message.get("samp.mtype") if isinstance(message, dict) else None
        response: dict[str, Any] | None
        try:
            if mtype == "samp.app.ping" and self.on_message is None:
                response = make_response()
            elif self.on_message is None:
                response = error_response(f"no handler for {mtype}")
            else:
                response = await self.on_message("call", sender_id, msg_id, message)
        except Exception as exc:
            log.exception("handler for call %s from %s failed", mtype, sender_id)
            response = error_response(f"{type(exc).__name__}: {exc}")
        if response is not None:
            try:
                await self.reply(msg_id, response)
            except SAMPHubError as exc:
                log.warning("reply to %s (%s) failed: %s", msg_id, mtype, exc)

    async def _response(self, responder_id: str, msg_tag: str, response: dict[str, Any]) -> None:
        if self.on_response is None:
            return
        try:
            await self.on_response(responder_id, msg_tag, response)
        except Exception:
            log.exception("response handler for %s failed", msg_tag)
