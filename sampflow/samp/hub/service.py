"""The hub's I/O glue: one `HubService` drives a `HubCore` for every transport.

It maps the hub's XML-RPC method names to the core's bound verbs in one explicit table
(`HubService.methods`), runs each request against the core, and acts on the core's
outputs: each delivery goes to the profile that hosts its recipient (`add_profile`,
`sampflow.samp.hub.profiles`), synchronous responses wake their ``callAndWait`` waiter
(an `asyncio.Future` keyed by msg-id: no polling), and every profile hears of departed
clients. Every request runs on the one event loop, so the core needs no lock.
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
from .profiles import ProfileHooks
from .registry import ClientRecord, Profile

__all__ = ["Handler", "HubService", "MethodTable"]

log = logging.getLogger("sampflow.hub")

#: A method-table entry's handler: called with the XML-RPC arguments.
Handler = Callable[..., Any]
#: A method table: XML-RPC name (without ``samp.hub.`` or ``samp.webhub.``) -> (number of
#: arguments, handler).
MethodTable = dict[str, tuple[int, Handler]]


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

    Attributes
    ----------
    methods : dict
        The hub methods shared by every profile, a `MethodTable` of the core's bound verbs.
        ``register``, ``ping`` and ``callAndWait`` are handled by `HubService` itself; each
        profile passes its own extras to `dispatch` (the Standard Profile's
        ``setXmlrpcCallback``, the Web Profile's ``allowReverseCallbacks``).
    deliverer : Deliverer
        The XML-RPC callback lanes the Standard Profile delivers through.

    Raises
    ------
    ValueError
        If `value_types` is neither of the two.
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
        self.methods: MethodTable = {
            "unregister": (1, core.unregister),
            "declareMetadata": (2, core.declare_metadata),
            "getMetadata": (2, core.get_metadata),
            "declareSubscriptions": (2, core.declare_subscriptions),
            "getSubscriptions": (2, core.get_subscriptions),
            "getRegisteredClients": (1, core.get_registered_clients),
            "getSubscribedClients": (2, core.get_subscribed_clients),
            "notify": (3, core.notify),
            "notifyAll": (2, core.notify_all),
            "call": (4, core.call),
            "callAll": (3, core.call_all),
            "reply": (3, core.reply),
        }
        #: The profiles added, in order; each hosts the clients of its `Profile`.
        self._profiles: dict[Profile, ProfileHooks] = {}
        # The core consults one filter and one observer: the profiles', in order, after any
        # filter the core was built with.
        self._core_filter = core.message_filter
        core.message_filter = self._filter
        core.message_observers.append(self._observe)

    # -- profiles ---------------------------------------------------------------------------
    def add_profile(self, profile: ProfileHooks) -> Callable[[], None]:
        """Add `profile`: the hub consults and tells it as `sampflow.samp.hub.profiles` says,
        and hands it the deliveries for clients of ``profile.profile``.

        Parameters
        ----------
        profile : ProfileHooks
            The profile; no other profile added may host the same `Profile`.

        Returns
        -------
        callable
            ``remove()``: take the profile out again (its clients should be removed first).

        Raises
        ------
        ValueError
            If `profile` would host the hub's own client, or its `Profile` already has one.
        """
        kind = profile.profile
        if kind is Profile.HUB:
            raise ValueError("no profile hosts the hub's own client")
        if kind in self._profiles:
            raise ValueError(f"profile {kind.value} is already served")
        self._profiles[kind] = profile

        def remove() -> None:
            if self._profiles.get(kind) is profile:
                del self._profiles[kind]

        return remove

    def profile_for(self, kind: Profile) -> ProfileHooks | None:
        """The profile added for clients of `kind`, or None."""
        return self._profiles.get(kind)

    def _filter(self, sender: ClientRecord, recipient: ClientRecord,
                message: dict[str, Any]) -> str | None:
        if self._core_filter is not None:
            reason = self._core_filter(sender, recipient, message)
            if reason is not None:
                return reason
        for profile in self._profiles.values():
            reason = profile.filter(sender, recipient, message)
            if reason is not None:
                return reason
        return None

    def _observe(self, sender: ClientRecord, message: dict[str, Any]) -> None:
        for profile in self._profiles.values():
            profile.observe(sender, message)

    # -- running requests ------------------------------------------------------------------
    async def dispatch(self, method: str, params: tuple[Any, ...], *,
                       profile: Profile = Profile.STANDARD,
                       extra: MethodTable | None = None) -> Any:
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
            Profile-specific methods, in the form of `methods`.

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
                     extra: MethodTable | None = None) -> Any:
        """Run hub method `method` at once: any method but ``callAndWait``, which waits.

        Parameters and exceptions are those of `dispatch`; ``callAndWait`` is refused with
        `LocalProtocolError` (use `dispatch`).
        """
        if method == "ping":
            return ""
        entry = self.methods.get(method)
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
        registry = self.core.registry
        leaving = registry.by_private_key(params[0]) if method == "unregister" else None
        try:
            result = handler(*params)
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
        sender = self.core.registry.by_private_key(params[0]) if params else None
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
            raise LocalProtocolError(
                f"callAndWait timeout must be a number, not {timeout!r}") from None
        msg_id = self.core.call_and_wait(private_key, recipient_id, message)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters[msg_id] = future
        try:
            self.process_outputs()
            if seconds > 0:
                return await asyncio.wait_for(future, seconds)
            return await future
        except TimeoutError:
            raise CallTimeout(f"no response from {recipient_id} within {timeout} s") from None
        finally:
            self._waiters.pop(msg_id, None)
            self.core.expire(msg_id)

    # -- acting on outputs -----------------------------------------------------------------
    def process_outputs(self) -> None:
        """Carry out everything the core has produced since the last call."""
        for output in self.core.take_outputs():
            if type(output) is Delivery:
                profile = self._profiles.get(output.recipient.profile)
                if profile is not None:
                    profile.deliver(output)
                else:
                    log.debug("no %s profile: %s to %s dropped", output.recipient.profile.value,
                              output.method, output.recipient.public_id)
            elif type(output) is SyncResponse:
                waiter = self._waiters.get(output.msg_id)
                if waiter is not None and not waiter.done():
                    waiter.set_result(output.response)
            elif type(output) is ClientGone:
                if output.reason != "unregistered":
                    log.warning("removed %s (%s): %s", output.client.public_id,
                                output.client.name, output.reason)
                for profile in list(self._profiles.values()):
                    profile.client_gone(output.client, output.reason)

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
