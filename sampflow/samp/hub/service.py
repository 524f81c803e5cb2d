"""The hub's I/O glue: one `HubService` drives a `HubCore` for every transport.

It maps the hub's XML-RPC method names to core verbs in one explicit table
(`COMMON_METHODS`), runs each request against the core, and acts on the core's outputs:
deliveries go to the `Deliverer`, synchronous responses wake their ``callAndWait`` waiter
(an `asyncio.Future` keyed by msg-id: no polling), departed clients lose their queues.
Every request runs on the one event loop, so the core needs no lock.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from typing import Any

from ..errors import CallTimeout, LocalProtocolError
from .core import ClientGone, Delivery, HubCore, SyncResponse
from .delivery import MAX_QUEUE, Deliverer
from .registry import ClientRecord, Profile

__all__ = ["HubService", "COMMON_METHODS", "hub_call"]

log = logging.getLogger("sampflow.hub")

Handler = Callable[..., Any]


def hub_call(verb: str) -> Handler:
    """A method-table handler that calls `HubCore` verb `verb` with the XML-RPC arguments."""
    def handler(service: "HubService", *args: Any) -> Any:
        return getattr(service.core, verb)(*args)

    handler.__name__ = verb
    return handler


#: Hub methods shared by both profiles: XML-RPC name (without ``samp.hub.`` or
#: ``samp.webhub.``) -> (number of arguments, handler). ``register``, ``ping`` and
#: ``callAndWait`` are handled by `HubService` itself; each profile passes its own extras to
#: `HubService.dispatch` (the Standard Profile's ``setXmlrpcCallback``).
COMMON_METHODS: dict[str, tuple[int, Handler]] = {
    "unregister": (1, hub_call("unregister")),
    "declareMetadata": (2, hub_call("declare_metadata")),
    "getMetadata": (2, hub_call("get_metadata")),
    "declareSubscriptions": (2, hub_call("declare_subscriptions")),
    "getSubscriptions": (2, hub_call("get_subscriptions")),
    "getRegisteredClients": (1, hub_call("get_registered_clients")),
    "getSubscribedClients": (2, hub_call("get_subscribed_clients")),
    "notify": (3, hub_call("notify")),
    "notifyAll": (2, hub_call("notify_all")),
    "call": (4, hub_call("call")),
    "callAll": (3, hub_call("call_all")),
    "reply": (3, hub_call("reply")),
}


class HubService:
    """Runs requests against a `HubCore` and carries out its outputs.

    Parameters
    ----------
    core : HubCore
        The hub state machine.
    client_timeout : float
        Seconds allowed for one callback to a client.
    max_queue : int
        Deliveries one (sender, recipient) lane may hold before the recipient is deemed dead
        and removed (see `Deliverer`).
    value_types : {"relayable", "samp"}
        The values every profile accepts in requests (`sampflow.samp.xmlrpc.loads_request`):
        those the hub can relay exactly as they came, or SAMP's string, list and map only.
    """

    def __init__(self, core: HubCore, *, client_timeout: float = 30.0,
                 max_queue: int = MAX_QUEUE, value_types: str = "relayable") -> None:
        if value_types not in ("relayable", "samp"):
            raise ValueError(f"value_types must be 'relayable' or 'samp', not {value_types!r}")
        self.core = core
        self.value_types = value_types
        self.secret = secrets.token_urlsafe(24)
        self.deliverer = Deliverer(self._delivery_failed, timeout=client_timeout,
                                   max_queue=max_queue)
        self._waiters: dict[str, asyncio.Future[dict[str, Any]]] = {}
        #: Called with each departed client (the Web Profile closes its pull queue).
        self.on_client_gone: list[Callable[[ClientRecord, str], None]] = []

    # -- running requests ------------------------------------------------------------------
    async def dispatch(self, method: str, params: tuple[Any, ...], *,
                       profile: Profile = Profile.STANDARD,
                       extra: dict[str, tuple[int, Handler]] | None = None) -> Any:
        """Run hub method `method` (the part after ``samp.hub.``) with `params`.

        Parameters
        ----------
        method : str
            The method name, for example ``notifyAll``.
        params : tuple
            The XML-RPC arguments.
        profile : Profile
            The profile the request came through (for log lines).
        extra : dict, optional
            Profile-specific methods, in the form of `COMMON_METHODS`.

        Returns
        -------
        object
            The XML-RPC return value (``""`` for void methods).

        Raises
        ------
        LocalProtocolError
            If the method is unknown, has the wrong number of arguments, or the core refuses
            the request.
        CallTimeout
            If a ``callAndWait`` timed out.
        """
        if method == "callAndWait":
            self._check_arity(method, params, 4)
            return await self.call_and_wait(*params)
        return self.dispatch_now(method, params, profile=profile, extra=extra)

    def dispatch_now(self, method: str, params: tuple[Any, ...], *,
                     profile: Profile = Profile.STANDARD,
                     extra: dict[str, tuple[int, Handler]] | None = None) -> Any:
        """Run hub method `method` at once: any method but ``callAndWait``, which waits.

        Parameters and exceptions are those of `dispatch`; ``callAndWait`` is refused with
        `LocalProtocolError` (use `dispatch`).
        """
        if method == "ping":
            return ""
        entry = COMMON_METHODS.get(method)
        if entry is None and extra is not None:
            entry = extra.get(method)
        if entry is None:
            if method == "callAndWait":
                raise LocalProtocolError("callAndWait waits: run it through dispatch()")
            raise LocalProtocolError(f"no such hub method: {method}")
        arity, handler = entry
        self._check_arity(method, params, arity)
        if log.isEnabledFor(logging.DEBUG):
            self._trace(method, params)
        leaving = self.core.registry._by_key.get(params[0]) if method == "unregister" else None
        try:
            result = handler(self, *params)
        finally:
            self.process_outputs()
        if leaving is not None:
            log.info("unregistered %s (%s)", leaving.public_id, leaving.name)
        elif method == "declareMetadata":
            record = self.core.registry.by_key(params[0])
            log.info("%s is %s", record.public_id, record.name)
        return "" if result is None else result

    @staticmethod
    def _check_arity(method: str, params: tuple[Any, ...], arity: int) -> None:
        if len(params) != arity:
            raise LocalProtocolError(
                f"{method} takes {arity} argument{'s' if arity != 1 else ''}, got {len(params)}"
            )

    def _trace(self, method: str, params: tuple[Any, ...]) -> None:
        sender = self.core.registry._by_key.get(params[0]) if params else None
        who = sender.public_id if sender else "?"
        message = next((p for p in params if isinstance(p, dict) and "samp.mtype" in p), None)
        if message is not None:
            target = params[1] if method in ("notify", "call") else "all"
            log.debug("%s %s -> %s: %s", method, who, target, message.get("samp.mtype"))
        else:
            log.debug("%s from %s", method, who)

    def register(self, profile: Profile, info: dict[str, Any] | None = None) -> dict[str, str]:
        """Register a client whose credentials the transport has checked; returns the
        registration map of section 4.2.3 / 5.2.3."""
        record = self.core.register(profile, info)
        self.process_outputs()
        log.info("registered %s (%s profile)", record.public_id, profile.value)
        return self.core.registration_map(record)

    async def call_and_wait(self, private_key: Any, recipient_id: Any, message: Any,
                            timeout: Any) -> dict[str, Any]:
        """``callAndWait`` (section 3.9): send the call, await its response.

        Raises
        ------
        LocalProtocolError
            As `HubCore.call_and_wait`, or when `timeout` is not a number.
        CallTimeout
            When `timeout` seconds (a positive SAMP int) pass with no response.
        """
        try:
            seconds = float(timeout)
        except (TypeError, ValueError):
            raise LocalProtocolError(f"callAndWait timeout must be a number, not {timeout!r}") from None
        msg_id = self.core.call_and_wait(private_key, recipient_id, message)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters[msg_id] = future
        try:
            self.process_outputs()
            if seconds > 0:
                return await asyncio.wait_for(future, seconds)
            return await future
        except asyncio.TimeoutError:
            raise CallTimeout(f"no response from {recipient_id} within {timeout} s") from None
        finally:
            self._waiters.pop(msg_id, None)
            self.core.expire(msg_id)

    # -- acting on outputs -----------------------------------------------------------------
    def process_outputs(self) -> None:
        """Carry out everything the core has produced since the last call."""
        for output in self.core.take_outputs():
            if type(output) is Delivery:
                self.deliverer.submit(output)
            elif type(output) is SyncResponse:
                waiter = self._waiters.get(output.msg_id)
                if waiter is not None and not waiter.done():
                    waiter.set_result(output.response)
            elif type(output) is ClientGone:
                self.deliverer.forget(output.client)
                if output.reason != "unregistered":
                    log.warning("removed %s (%s): %s", output.client.public_id,
                                output.client.name, output.reason)
                for hook in self.on_client_gone:
                    hook(output.client, output.reason)

    def _delivery_failed(self, delivery: Delivery, reason: str, dead: bool) -> None:
        log.warning("delivery of %s to %s failed: %s", delivery.method,
                    delivery.recipient.public_id, reason)
        self.core.delivery_failed(delivery, reason, dead=dead)
        self.process_outputs()

    async def shutdown(self, grace: float = 2.0) -> None:
        """Tell subscribed clients the hub stops, give the messages `grace` seconds to go,
        then close every connection."""
        self.core.shutdown()
        self.process_outputs()
        await self.deliverer.flush(grace)
        await self.deliverer.close()
        for waiter in self._waiters.values():
            if not waiter.done():
                waiter.set_exception(CallTimeout("the hub is shutting down"))
