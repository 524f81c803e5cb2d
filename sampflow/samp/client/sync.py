"""Blocking SAMP clients with astropy's interface: `SAMPHubProxy`, `SAMPClient`,
`SAMPIntegratedClient` (SAMP 1.3 sections 3 and 4).

`SAMPHubProxy` lives in `sampflow.samp.client.proxy`. Code written for `astropy.samp` or
`pyvo.samp` runs on these by changing its import. They are a thin facade over
`AsyncSAMPClient` running on sampflow's shared background event loop
(`sampflow.samp.background`). Bound callbacks run on a pool of worker threads, never on the
loop thread, so they may call the blocking API themselves (reply from inside a call handler,
``call_and_wait`` another client) without deadlock.

Differences from astropy, on purpose: no internet look-ups, ever; the client subscribes to
``samp.app.ping`` but never to ``client.env.get`` unless a handler is bound to it; a call with
no bound handler gets a ``samp.error`` reply rather than silence. The full list, with the
reasons, is docs/astropy-compat.md.

Handlers (astropy's conventions)
--------------------------------
A message's MType is looked up most specific first, as `mtype_subtypes` lists it
(``a.b.c``, ``a.b.*``, ``a.*``, ``*``): a call runs the first handler found, a
notification runs every handler found, in that order.

A **notification** handler is called with five arguments, ``f(private_key, sender_id,
mtype, params, extra)``, or with six, ``f(private_key, sender_id, msg_id, mtype, params,
extra)`` and ``msg_id`` None, so that one function can serve both notifications and calls
(`bind_receive_message`). Which, is decided once, when the handler is bound, by its arity
(`handler_takes_msg_id`): six when it has six or more positional parameters without a
default, or takes ``*args``; five otherwise (so ``lambda pk, s, m, p, e, store=store: ...``
gets five).
"""

from __future__ import annotations

import concurrent.futures
import logging
from collections.abc import Coroutine
from typing import Any, Callable, TypeVar

from .. import background
from ..constants import SAMP_STATUS_ERROR
from ..errors import SAMPClientError, SAMPHubError
from ..types import error_response, make_response
from .aio import AsyncSAMPClient
from .handlers import Binding, handler_takes_msg_id
from .proxy import SAMPHubProxy, mtype_subtypes, warn_if_nobody

__all__ = ["SAMPClient", "SAMPHubProxy", "SAMPIntegratedClient", "handler_takes_msg_id"]

log = logging.getLogger("sampflow.client")

T = TypeVar("T")

#: An operation for `SAMPClient.run_blocking`: given the `AsyncSAMPClient`, a coroutine.
AsyncOperation = Callable[[AsyncSAMPClient], Coroutine[Any, Any, T]]


class SAMPClient:
    """A callable SAMP client: registration, callback endpoint and bound handlers.

    Parameters
    ----------
    hub : SAMPHubProxy
        A connected hub proxy.
    name, description : str, optional
        ``samp.name`` and ``samp.description.text``.
    metadata : dict, optional
        Further metadata.
    addr : str, optional
        Callback endpoint address; loopback by default.
    port : int
        Callback endpoint port; 0 picks a free one.
    callable : bool
        Whether to receive messages.

    Notes
    -----
    Handler signatures are astropy's: ``f(private_key, sender_id, mtype, params, extra)`` for
    notifications, ``f(private_key, sender_id, msg_id, mtype, params, extra)`` for calls,
    ``f(private_key, responder_id, msg_tag, response)`` for responses. They run on worker
    threads.
    """

    def __init__(self, hub: SAMPHubProxy, name: str | None = None,
                 description: str | None = None, metadata: dict[str, Any] | None = None,
                 addr: str | None = None, port: int = 0, callable: bool = True) -> None:
        self.hub = hub
        self._aio = AsyncSAMPClient(name, description, metadata, addr=addr or "127.0.0.1",
                                    port=port, callable=callable)
        self._aio.on_message = self._on_message
        self._aio.on_response = self._on_response
        self._notification_bindings: dict[str, Binding] = {}
        self._call_bindings: dict[str, Binding] = {}
        self._response_bindings: dict[str, Callable[..., Any]] = {}
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._running = False
        if callable:
            self._call_bindings["samp.app.ping"] = Binding(self._answer_ping, None)

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def is_running(self) -> bool:
        """Whether `start` was called (and `stop` not since)."""
        return self._running

    @property
    def is_registered(self) -> bool:
        """Whether the client is registered with the hub."""
        return self._aio.is_connected

    def start(self) -> None:
        """Start the worker threads that run bound handlers."""
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(8, thread_name_prefix="samp-cb")
        self._running = True

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the worker threads (unregistering first if still registered)."""
        if self.is_registered:
            self.unregister()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        self._running = False

    def register(self) -> None:
        """Register with the hub, set the callback URL, declare metadata and subscriptions.

        Raises
        ------
        SAMPClientError
            If the hub proxy is not connected.
        SAMPHubError
            If the hub refuses.
        """
        if not self.hub.is_connected:
            raise SAMPClientError("the hub proxy is not connected")
        background.run(self._aio.connect(hub_params=self.hub.lockfile))
        if self._aio.callable:
            self.declare_subscriptions()

    def unregister(self) -> None:
        """Unregister from the hub and stop the callback endpoint."""
        background.run(self._aio.disconnect())

    def get_private_key(self) -> str:
        """The private key (raises `SAMPClientError` when not registered)."""
        if self._aio.private_key is None:
            raise SAMPClientError("not registered")
        return self._aio.private_key

    def get_public_id(self) -> str:
        """The public id (raises `SAMPClientError` when not registered)."""
        if self._aio.public_id is None or not self.is_registered:
            raise SAMPClientError("not registered")
        return self._aio.public_id

    def run_blocking(self, operation: AsyncOperation[T]) -> T:
        """Run ``operation(client)`` on sampflow's background event loop, where ``client``
        is the `AsyncSAMPClient` behind this facade, and wait for the coroutine's result.

        The one way from the blocking API to the asyncio one: every hub operation of
        `SAMPIntegratedClient` goes through it, and so may code that wants several hub calls
        in flight at once (``asyncio.gather`` inside `operation`).

        Parameters
        ----------
        operation : callable
            Takes the `AsyncSAMPClient` and returns a coroutine, for example
            ``lambda client: client.get_metadata(client_id)``.

        Returns
        -------
        object
            What the coroutine returns.

        Raises
        ------
        SAMPClientError
            If called from the event loop's own thread (it would deadlock).
        Exception
            Whatever the coroutine raises (`SAMPProxyError`, `SAMPHubError`, ...).
        """
        return background.run(operation(self._aio))

    # -- declarations ----------------------------------------------------------------------
    def declare_metadata(self, metadata: dict[str, Any] | None = None) -> None:
        """Declare `metadata`, or the metadata given at construction when None."""
        background.run(self._aio.declare_metadata(metadata if metadata is not None
                                             else self._aio.metadata))

    def declare_subscriptions(self, subscriptions: dict[str, Any] | None = None) -> None:
        """Declare `subscriptions`, or every bound MType (with its metadata) when None."""
        if subscriptions is None:
            subscriptions = {}
            for bindings in (self._notification_bindings, self._call_bindings):
                for mtype, binding in bindings.items():
                    subscriptions[mtype] = dict(binding.metadata or {})
        if not self._aio.callable:
            raise SAMPClientError("a non-callable client cannot subscribe")
        background.run(self._aio.declare_subscriptions(subscriptions))

    # -- bindings --------------------------------------------------------------------------
    def bind_receive_notification(self, mtype: str, function: Callable[..., Any],
                                  declare: bool = True,
                                  metadata: dict[str, Any] | None = None) -> None:
        """Run `function` for notifications of `mtype` (wildcards allowed).

        `function` takes five arguments ``(private_key, sender_id, mtype, params, extra)``
        or six with ``msg_id`` (None) third, decided by its arity (`handler_takes_msg_id`).
        """
        self._bind(self._notification_bindings, mtype, function, declare, metadata,
                   handler_takes_msg_id(function))

    def bind_receive_call(self, mtype: str, function: Callable[..., Any], declare: bool = True,
                          metadata: dict[str, Any] | None = None) -> None:
        """Run `function` for calls of `mtype`; it answers with ``reply`` / ``ereply``.

        `function` takes ``(private_key, sender_id, msg_id, mtype, params, extra)``.
        """
        self._bind(self._call_bindings, mtype, function, declare, metadata, True)

    def bind_receive_message(self, mtype: str, function: Callable[..., Any],
                             declare: bool = True, metadata: dict[str, Any] | None = None) -> None:
        """Bind `function` for both notifications and calls of `mtype`."""
        self.bind_receive_notification(mtype, function, declare=False, metadata=metadata)
        self.bind_receive_call(mtype, function, declare=declare, metadata=metadata)

    def bind_receive_response(self, msg_tag: str, function: Callable[..., Any]) -> None:
        """Run `function` for the response to the call made with `msg_tag`."""
        self._response_bindings[msg_tag] = function

    def unbind_receive_notification(self, mtype: str, declare: bool = True) -> None:
        """Remove the notification handler of `mtype`."""
        self._notification_bindings.pop(mtype, None)
        self._redeclare(declare)

    def unbind_receive_call(self, mtype: str, declare: bool = True) -> None:
        """Remove the call handler of `mtype`."""
        self._call_bindings.pop(mtype, None)
        self._redeclare(declare)

    def unbind_receive_response(self, msg_tag: str) -> None:
        """Remove the response handler of `msg_tag`."""
        self._response_bindings.pop(msg_tag, None)

    def _bind(self, table: dict[str, Binding], mtype: str, function: Callable[..., Any],
              declare: bool, metadata: dict[str, Any] | None, takes_msg_id: bool) -> None:
        if not self._aio.callable:
            raise SAMPClientError("a non-callable client cannot receive messages")
        table[mtype] = Binding(function, metadata, takes_msg_id)
        self._redeclare(declare)

    def _redeclare(self, declare: bool) -> None:
        if declare and self.is_registered:
            self.declare_subscriptions()

    # -- incoming (the XML-RPC client methods, section 4.2.4) -------------------------------
    def receive_notification(self, private_key: str, sender_id: str,
                             message: dict[str, Any]) -> str:
        """Run the handlers bound to the notification's MType, in this thread, most specific
        pattern first (see the module docstring for their arguments)."""
        mtype, params, extra = self._split(message)
        for binding in self._handlers(self._notification_bindings, mtype):
            if binding.takes_msg_id:
                binding.function(private_key, sender_id, None, mtype, params, extra)
            else:
                binding.function(private_key, sender_id, mtype, params, extra)
        return ""

    def receive_call(self, private_key: str, sender_id: str, msg_id: str,
                     message: dict[str, Any]) -> str:
        """Run the handler bound to the call's MType, in this thread; with none bound,
        reply ``samp.error``."""
        mtype, params, extra = self._split(message)
        handlers = self._handlers(self._call_bindings, mtype)
        if not handlers:
            self._reply(msg_id, error_response(f"no handler bound for {mtype}"))
            return ""
        try:
            handlers[0].function(private_key, sender_id, msg_id, mtype, params, extra)
        except Exception as exc:
            log.exception("call handler for %s failed", mtype)
            self._reply(msg_id, error_response(f"{type(exc).__name__}: {exc}"))
        return ""

    def receive_response(self, private_key: str, responder_id: str, msg_tag: str,
                         response: dict[str, Any]) -> str:
        """Run the handler bound to `msg_tag`, in this thread."""
        function = self._response_bindings.get(msg_tag)
        if function is not None:
            function(private_key, responder_id, msg_tag, response)
        return ""

    @staticmethod
    def _split(message: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any]]:
        extra = {k: v for k, v in message.items() if k not in ("samp.mtype", "samp.params")}
        return message["samp.mtype"], message.get("samp.params", {}), extra

    @staticmethod
    def _handlers(table: dict[str, Binding], mtype: str) -> list[Binding]:
        return [table[pattern] for pattern in mtype_subtypes(mtype) if pattern in table]

    def _answer_ping(self, private_key: str, sender_id: str, msg_id: str, mtype: str,
                     params: dict[str, Any], extra: dict[str, Any]) -> None:
        self._reply(msg_id, make_response())

    def _reply(self, msg_id: str, response: dict[str, Any]) -> None:
        try:
            background.run(self._aio.reply(msg_id, response))
        except SAMPHubError as exc:
            log.warning("reply to %s failed: %s", msg_id, exc)

    def _submit(self, function: Callable[..., Any], *args: Any) -> None:
        if self._pool is None:
            self.start()
        assert self._pool is not None
        self._pool.submit(self._guard, function, *args)

    @staticmethod
    def _guard(function: Callable[..., Any], *args: Any) -> None:
        try:
            function(*args)
        except Exception:
            log.exception("SAMP handler %r failed", function)

    async def _on_message(self, kind: str, sender_id: str, msg_id: str | None,
                          message: dict[str, Any]) -> dict[str, Any] | None:
        key = self._aio.private_key or ""
        if kind == "call":
            self._submit(self.receive_call, key, sender_id, msg_id, message)
        else:
            self._submit(self.receive_notification, key, sender_id, message)
        return None  # the worker replies

    async def _on_response(self, responder_id: str, msg_tag: str, response: dict[str, Any]) -> None:
        self._submit(self.receive_response, self._aio.private_key or "", responder_id, msg_tag,
                     response)


class SAMPIntegratedClient:
    """A hub proxy and a client in one object: astropy's ``SAMPIntegratedClient``.

    Parameters
    ----------
    name, description, metadata, addr, port, callable
        As for `SAMPClient`, which `connect` creates with them (its `hub` is this object's
        `SAMPHubProxy`).

    Examples
    --------
    >>> import os, tempfile
    >>> from sampflow.samp import SAMPHubServer
    >>> hub = SAMPHubServer(lockfile=os.path.join(tempfile.mkdtemp(), "lock"))
    >>> hub.start()
    >>> a, b = SAMPIntegratedClient("a"), SAMPIntegratedClient("b")
    >>> a.connect(hub=hub); b.connect(hub=hub)
    >>> def echo(private_key, sender_id, msg_id, mtype, params, extra):
    ...     b.reply(msg_id, {"samp.status": "samp.ok", "samp.result": params})
    >>> b.bind_receive_call("test.echo", echo)
    >>> a.ecall_and_wait(b.get_public_id(), "test.echo", "5", txt="hi")["samp.result"]
    {'txt': 'hi'}
    >>> a.disconnect(); b.disconnect(); hub.stop()
    """

    def __init__(self, name: str | None = None, description: str | None = None,
                 metadata: dict[str, Any] | None = None, addr: str | None = None,
                 port: int = 0, callable: bool = True) -> None:
        self.hub = SAMPHubProxy()
        self.client_arguments = dict(name=name, description=description, metadata=metadata,
                                     addr=addr, port=port, callable=callable)
        self.client: SAMPClient | None = None

    @property
    def is_connected(self) -> bool:
        """Whether connected and registered."""
        return self.hub.is_connected and self.client is not None and self.client.is_registered

    def connect(self, hub: Any = None, hub_params: dict[str, str] | None = None,
                pool_size: int = 20) -> None:
        """Connect to a hub and register (see `SAMPHubProxy.connect` for the arguments).

        Raises
        ------
        SAMPClientError
            If already connected.
        SAMPHubError
            If no hub is found or it refuses the registration.
        """
        if self.is_connected:
            raise SAMPClientError("already connected")
        self.hub.connect(hub, hub_params, pool_size)
        client = SAMPClient(self.hub, **self.client_arguments)  # type: ignore[arg-type]
        client.start()
        try:
            client.register()
        except BaseException:
            client.stop()
            self.hub.disconnect()
            raise
        self.client = client

    def disconnect(self) -> None:
        """Unregister and close; safe to call when not connected."""
        if self.client is not None:
            self.client.stop()
            self.client = None
        self.hub.disconnect()

    def _c(self) -> SAMPClient:
        if self.client is None or not self.client.is_registered:
            raise SAMPClientError("not connected")
        return self.client

    def run_blocking(self, operation: AsyncOperation[T]) -> T:
        """`SAMPClient.run_blocking` on the registered client: run ``operation(client)`` on
        the background event loop with its `AsyncSAMPClient` and wait for the result.

        Raises
        ------
        SAMPClientError
            If not connected.
        """
        return self._c().run_blocking(operation)

    # -- the hub API, with the private key filled in ------------------------------------------
    def ping(self) -> Any:
        """Ping the hub."""
        return self.hub.ping()

    def declare_metadata(self, metadata: dict[str, Any]) -> None:
        """Declare metadata (section 3.5)."""
        self._c().declare_metadata(metadata)

    def get_metadata(self, client_id: str) -> dict[str, Any]:
        """Metadata of `client_id`."""
        return self.run_blocking(lambda aio: aio.get_metadata(client_id))

    def get_subscriptions(self, client_id: str) -> dict[str, Any]:
        """Subscriptions of `client_id`."""
        return self.run_blocking(lambda aio: aio.get_subscriptions(client_id))

    def get_registered_clients(self) -> list[str]:
        """Public ids of the other registered clients (the hub included)."""
        return self.run_blocking(lambda aio: aio.get_registered_clients())

    def get_subscribed_clients(self, mtype: str) -> dict[str, Any]:
        """Public id -> annotation of the clients subscribed to `mtype`."""
        return self.run_blocking(lambda aio: aio.get_subscribed_clients(mtype))

    @staticmethod
    def _message(mtype: str, params: dict[str, Any]) -> dict[str, Any]:
        return {"samp.mtype": mtype, "samp.params": params}

    def notify(self, recipient_id: str, message: dict[str, Any]) -> Any:
        """Send `message` as a notification to `recipient_id` (section 3.8).

        Returns
        -------
        object
            The hub's answer (``""`` from sampflow's hub), as astropy returns it.

        Raises
        ------
        SAMPProxyError
            If the hub refuses (for example, `recipient_id` is not subscribed).
        """
        return self.run_blocking(lambda aio: aio.notify(recipient_id, message))

    def enotify(self, recipient_id: str, mtype: str, **params: Any) -> Any:
        """`notify` with the message built from `mtype` and `params`; returns the hub's
        answer."""
        return self.notify(recipient_id, self._message(mtype, params))

    def notify_all(self, message: dict[str, Any]) -> list[str]:
        """Notify every subscribed client (section 3.8); returns their ids.

        Warns
        -----
        SAMPWarning
            When no client received it (as astropy does).
        """
        return warn_if_nobody(self.run_blocking(lambda aio: aio.notify_all(message)))

    def enotify_all(self, mtype: str, **params: Any) -> list[str]:
        """`notify_all` with the message built from `mtype` and `params`."""
        return self.notify_all(self._message(mtype, params))

    def call(self, recipient_id: str, msg_tag: str, message: dict[str, Any]) -> str:
        """Call `recipient_id`; the response goes to the handler bound to `msg_tag`.
        Returns the msg-id."""
        return self.run_blocking(lambda aio: aio.call(recipient_id, msg_tag, message))

    def ecall(self, recipient_id: str, msg_tag: str, mtype: str, **params: Any) -> str:
        """`call` with the message built from `mtype` and `params`."""
        return self.call(recipient_id, msg_tag, self._message(mtype, params))

    def call_all(self, msg_tag: str, message: dict[str, Any]) -> dict[str, str]:
        """Call every subscribed client (section 3.9); returns recipient id -> msg-id.

        Warns
        -----
        SAMPWarning
            When no client received it.
        """
        return warn_if_nobody(self.run_blocking(lambda aio: aio.call_all(msg_tag, message)))

    def ecall_all(self, msg_tag: str, mtype: str, **params: Any) -> dict[str, str]:
        """`call_all` with the message built from `mtype` and `params`."""
        return self.call_all(msg_tag, self._message(mtype, params))

    def call_and_wait(self, recipient_id: str, message: dict[str, Any],
                      timeout: str | int | float) -> dict[str, Any]:
        """Call `recipient_id` and wait up to `timeout` seconds for the response map
        (section 3.11).

        `timeout` is rounded up to whole seconds (``"0.5"`` waits 1 s); 0 or less means no
        limit (`sampflow.samp.client.aio.samp_timeout`).

        Raises
        ------
        SAMPProxyError
            On timeout, or if the hub refuses the call.
        SAMPClientError
            If `timeout` is not a number.
        """
        return self.run_blocking(lambda aio: aio.call_and_wait(recipient_id, message, timeout))

    def ecall_and_wait(self, recipient_id: str, mtype: str, timeout: str | int | float,
                       **params: Any) -> dict[str, Any]:
        """`call_and_wait` with the message built from `mtype` and `params`."""
        return self.call_and_wait(recipient_id, self._message(mtype, params), timeout)

    def reply(self, msg_id: str, response: dict[str, Any]) -> None:
        """Answer call `msg_id` with `response` (section 3.9)."""
        self.run_blocking(lambda aio: aio.reply(msg_id, response))

    def ereply(self, msg_id: str, status: str, result: dict[str, Any] | None = None,
               error: dict[str, Any] | None = None) -> None:
        """`reply` with the response built from `status`, `result` and `error`."""
        response: dict[str, Any] = {"samp.status": status}
        if result is not None:
            response["samp.result"] = result
        if error is not None:
            response["samp.error"] = error
        elif status == SAMP_STATUS_ERROR:
            response["samp.error"] = {"samp.errortxt": "error"}
        self.reply(msg_id, response)

    # -- client side, delegated ----------------------------------------------------------------
    def receive_notification(self, private_key: str, sender_id: str, message: dict[str, Any]
                             ) -> str:
        """See `SAMPClient.receive_notification`."""
        return self._c().receive_notification(private_key, sender_id, message)

    def receive_call(self, private_key: str, sender_id: str, msg_id: str,
                     message: dict[str, Any]) -> str:
        """See `SAMPClient.receive_call`."""
        return self._c().receive_call(private_key, sender_id, msg_id, message)

    def receive_response(self, private_key: str, responder_id: str, msg_tag: str,
                         response: dict[str, Any]) -> str:
        """See `SAMPClient.receive_response`."""
        return self._c().receive_response(private_key, responder_id, msg_tag, response)

    def bind_receive_message(self, mtype: str, function: Callable[..., Any], declare: bool = True,
                             metadata: dict[str, Any] | None = None) -> None:
        """See `SAMPClient.bind_receive_message`."""
        self._c().bind_receive_message(mtype, function, declare, metadata)

    def bind_receive_notification(self, mtype: str, function: Callable[..., Any],
                                  declare: bool = True,
                                  metadata: dict[str, Any] | None = None) -> None:
        """See `SAMPClient.bind_receive_notification`."""
        self._c().bind_receive_notification(mtype, function, declare, metadata)

    def bind_receive_call(self, mtype: str, function: Callable[..., Any], declare: bool = True,
                          metadata: dict[str, Any] | None = None) -> None:
        """See `SAMPClient.bind_receive_call`."""
        self._c().bind_receive_call(mtype, function, declare, metadata)

    def bind_receive_response(self, msg_tag: str, function: Callable[..., Any]) -> None:
        """See `SAMPClient.bind_receive_response`."""
        self._c().bind_receive_response(msg_tag, function)

    def unbind_receive_notification(self, mtype: str, declare: bool = True) -> None:
        """See `SAMPClient.unbind_receive_notification`."""
        self._c().unbind_receive_notification(mtype, declare)

    def unbind_receive_call(self, mtype: str, declare: bool = True) -> None:
        """See `SAMPClient.unbind_receive_call`."""
        self._c().unbind_receive_call(mtype, declare)

    def unbind_receive_response(self, msg_tag: str) -> None:
        """See `SAMPClient.unbind_receive_response`."""
        self._c().unbind_receive_response(msg_tag)

    def declare_subscriptions(self, subscriptions: dict[str, Any] | None = None) -> None:
        """See `SAMPClient.declare_subscriptions`."""
        self._c().declare_subscriptions(subscriptions)

    def get_private_key(self) -> str:
        """The private key."""
        return self._c().get_private_key()

    def get_public_id(self) -> str:
        """The public id."""
        return self._c().get_public_id()
