"""The sans-I/O SAMP hub (SAMP 1.3 sections 3.4-3.12): state and decisions, no sockets.

`HubCore` holds the registry, routes messages, keeps pending calls and fans out the hub's
administrative messages (``samp.hub.event.*``, section 3.12). It never touches a socket, a
thread or a clock: a transport feeds it requests and then **must** call `HubCore.take_outputs`
to collect what the request produced:

- `Delivery`: a ``receiveNotification``, ``receiveCall`` or ``receiveResponse`` for one
  client. The transport delivers it, in order per recipient, and calls
  `HubCore.delivery_failed` when the client's callback is dead.
- `SyncResponse`: the response to a ``callAndWait``; the transport wakes the waiter that
  `HubCore.call_and_wait` gave it the msg-id for.
- `ClientGone`: a client left or was removed; the transport drops its queues.

Every verb raises `LocalProtocolError` when the request breaks SAMP; transports turn it into
an XML-RPC fault. Method names are the snake_case forms of the Standard Profile's
``samp.hub.*`` names.
"""

from __future__ import annotations

import logging
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable

from ..constants import HUB_EVENT_MTYPES  # re-exported: the administrative MTypes it sends
from ..errors import LocalProtocolError
from ..types import error_response, make_response
from .registry import ClientRecord, Profile, Registry

log = logging.getLogger("sampflow.hub")

#: How many abandoned msg-ids (timed out, or their delivery failed) the hub remembers, so
#: that a late reply to one is dropped quietly instead of refused.
ABANDONED_MEMORY = 4096

__all__ = [
    "HubCore",
    "Delivery",
    "SyncResponse",
    "ClientGone",
    "Output",
    "PendingCall",
    "MessageFilter",
    "MessageObserver",
    "HUB_EVENT_MTYPES",
    "PROFILE_MTYPE",
]

#: A sampflow extension the hub client answers (as a call): params ``{"id": public-id}``,
#: result ``{"profile": "standard" | "web" | "hub"}``. It lets a client (the rules engine)
#: tell Web Profile clients from the others without the hub touching anyone's metadata.
PROFILE_MTYPE = "sampflow.hub.profile"

#: Sees every message (and every response) the hub accepts: ``observer(sender, message)``. The Web
#: Profile's URL translator uses it to learn which URLs Standard Profile clients mention.
MessageObserver = Callable[[ClientRecord, dict[str, Any]], None]

#: Decides whether `sender` may send `message` to `recipient`: returns None to allow, or the
#: reason for refusing. The Web Profile uses it to keep web clients to harmless MTypes.
MessageFilter = Callable[[ClientRecord, ClientRecord, dict[str, Any]], "str | None"]


@dataclass(frozen=True, slots=True)
class Delivery:
    """A callback the transport must deliver to `recipient` (section 3.11).

    Attributes
    ----------
    recipient : ClientRecord
        Who receives it.
    method : str
        ``receiveNotification``, ``receiveCall`` or ``receiveResponse``.
    args : tuple
        The arguments after the private key: ``(sender_id, message)``,
        ``(sender_id, msg_id, message)`` or ``(responder_id, msg_tag, response)``.
    """

    recipient: ClientRecord
    method: str
    args: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class SyncResponse:
    """The response that ends a ``callAndWait`` identified by `msg_id`."""

    msg_id: str
    response: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ClientGone:
    """`client` has left the hub; `reason` says why (``unregistered``, ``dead``, ...)."""

    client: ClientRecord
    reason: str


Output = Delivery | SyncResponse | ClientGone


@dataclass(slots=True)
class PendingCall:
    """A call awaiting its response. The msg-id is bound to `recipient`."""

    sender: ClientRecord
    recipient: ClientRecord
    msg_tag: str | None  # None for callAndWait


def _check_message(message: object) -> str:
    if not isinstance(message, dict):
        raise LocalProtocolError("a SAMP message must be a map (struct)")
    mtype = message.get("samp.mtype")
    if not isinstance(mtype, str) or not mtype:
        raise LocalProtocolError("a SAMP message needs a string samp.mtype")
    params = message.get("samp.params", {})
    if not isinstance(params, dict):
        raise LocalProtocolError("samp.params must be a map (struct)")
    return mtype


def _check_str(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise LocalProtocolError(f"{what} must be a string, not {type(value).__name__}")
    return value


def _check_map(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise LocalProtocolError(f"{what} must be a map (struct), not {type(value).__name__}")
    return value


class HubCore:
    """The SAMP hub's state machine.

    Parameters
    ----------
    metadata : dict
        The hub client's metadata (``samp.name`` etc.).
    hub_id : str
        The hub client's public id.
    message_filter : callable, optional
        A `MessageFilter` consulted for every message; see its description.

    Notes
    -----
    After every verb, call `take_outputs` and act on what it returns.
    """

    def __init__(
        self,
        metadata: dict[str, Any] | None = None,
        *,
        hub_id: str = "hub",
        message_filter: MessageFilter | None = None,
    ) -> None:
        self.registry = Registry(hub_id=hub_id)
        self.hub = self.registry.new_client(Profile.HUB, public_id=hub_id)
        self.hub.metadata = dict(
            metadata or {"samp.name": "sampflow-hub", "samp.description.text": "sampflow hub"}
        )
        self.hub.subscriptions = {"samp.app.ping": {}, PROFILE_MTYPE: {}}
        self.message_filter = message_filter
        #: `MessageObserver` callables, run for every message accepted from a client.
        self.message_observers: list[MessageObserver] = []
        self.pending: dict[str, PendingCall] = {}
        #: msg-id -> recipient of calls the hub gave up on (bounded by `ABANDONED_MEMORY`).
        self._abandoned: OrderedDict[str, ClientRecord] = OrderedDict()
        self._outputs: list[Output] = []

    # -- outputs ---------------------------------------------------------------------------
    def take_outputs(self) -> list[Output]:
        """Return and clear the outputs produced since the last call.

        Returns
        -------
        list of Delivery, SyncResponse or ClientGone
            In the order produced; per recipient, the order the hub must deliver in.
        """
        outputs, self._outputs = self._outputs, []
        return outputs

    def _emit_event(self, mtype: str, params: dict[str, Any]) -> None:
        message = {"samp.mtype": mtype, "samp.params": params}
        for record, _ in self.registry.subscribed(mtype):
            if record.profile is not Profile.HUB and record.is_callable:
                self._outputs.append(
                    Delivery(record, "receiveNotification", (self.hub.public_id, message))
                )

    # -- registration (section 3.4) --------------------------------------------------------
    def register(self, profile: Profile, info: dict[str, Any] | None = None) -> ClientRecord:
        """Register a new client; the transport has already checked the secret or consent.

        Parameters
        ----------
        profile : Profile
            ``STANDARD`` or ``WEB``.
        info : dict, optional
            Transport-owned facts kept on the record.

        Returns
        -------
        ClientRecord
            Its ``private_key`` and ``public_id`` go back to the client with the hub id.

        Notes
        -----
        Emits ``samp.hub.event.register`` to subscribed clients.
        """
        record = self.registry.new_client(profile)
        record.info = dict(info or {})
        self._emit_event("samp.hub.event.register", {"id": record.public_id})
        return record

    def registration_map(self, record: ClientRecord) -> dict[str, str]:
        """The map ``samp.hub.register`` returns (section 4.2.3)."""
        return {
            "samp.private-key": record.private_key,
            "samp.hub-id": self.hub.public_id,
            "samp.self-id": record.public_id,
        }

    def unregister(self, private_key: str) -> None:
        """``samp.hub.unregister``: the client leaves (section 3.4).

        Raises
        ------
        LocalProtocolError
            If the private key is unknown.
        """
        self._remove(self._client(private_key), "unregistered")

    def remove_client(self, public_id: str, reason: str, *, tell_client: bool = False) -> None:
        """Remove a client the hub decided to drop (dead callback, hub policy).

        Parameters
        ----------
        public_id : str
            The client to drop; a no-op when it is already gone.
        reason : str
            Why, for ``samp.hub.disconnect`` and the logs.
        tell_client : bool
            Send it ``samp.hub.disconnect`` first (section 3.12), when it is subscribed.
        """
        record = self.registry.get_id(public_id)
        if record is None or record.profile is Profile.HUB:
            return
        if (tell_client and record.is_callable
                and record.subscription_for("samp.hub.disconnect") is not None):
            message = {"samp.mtype": "samp.hub.disconnect", "samp.params": {"reason": reason}}
            self._outputs.append(
                Delivery(record, "receiveNotification", (self.hub.public_id, message))
            )
        self._remove(record, reason)

    def _remove(self, record: ClientRecord, reason: str) -> None:
        self.registry.remove(record)
        self._outputs.append(ClientGone(record, reason))
        # Calls this client owed a response to: answer them with an error (section 3.10
        # leaves this to the hub; callers must not hang).
        text = f"recipient {record.public_id} ({record.name}) left the hub: {reason}"
        for msg_id, pending in list(self.pending.items()):
            if pending.recipient is record:
                del self.pending[msg_id]
                self._respond(msg_id, pending, record.public_id, error_response(text))
            elif pending.sender is record:
                del self.pending[msg_id]
        self._emit_event("samp.hub.event.unregister", {"id": record.public_id})

    def shutdown(self) -> None:
        """Tell subscribed clients the hub is stopping (``samp.hub.event.shutdown``)."""
        self._emit_event("samp.hub.event.shutdown", {})

    # -- metadata and subscriptions (sections 3.5, 3.6) ------------------------------------
    def declare_metadata(self, private_key: str, metadata: object) -> None:
        """``samp.hub.declareMetadata``; emits ``samp.hub.event.metadata``."""
        record = self._client(private_key)
        record.metadata = _check_map(metadata, "metadata")
        self._emit_event(
            "samp.hub.event.metadata", {"id": record.public_id, "metadata": record.metadata}
        )

    def get_metadata(self, private_key: str, client_id: object) -> dict[str, Any]:
        """``samp.hub.getMetadata``: the map `client_id` declared ({} if none)."""
        self._client(private_key)
        return self.registry.by_id(client_id).metadata

    def declare_subscriptions(self, private_key: str, subscriptions: object) -> None:
        """``samp.hub.declareSubscriptions``; emits ``samp.hub.event.subscriptions``."""
        record = self._client(private_key)
        self.registry.set_subscriptions(record, _check_map(subscriptions, "subscriptions"))
        self._emit_event(
            "samp.hub.event.subscriptions",
            {"id": record.public_id, "subscriptions": record.subscriptions},
        )

    def get_subscriptions(self, private_key: str, client_id: object) -> dict[str, Any]:
        """``samp.hub.getSubscriptions``: the map `client_id` declared ({} if none)."""
        self._client(private_key)
        return self.registry.by_id(client_id).subscriptions

    def get_registered_clients(self, private_key: str) -> list[str]:
        """``samp.hub.getRegisteredClients``: every public id but the caller's, hub included."""
        caller = self._client(private_key)
        return [r.public_id for r in self.registry if r is not caller]

    def get_subscribed_clients(self, private_key: str, mtype: object) -> dict[str, Any]:
        """``samp.hub.getSubscribedClients``: id -> annotation for `mtype`, caller excluded."""
        caller = self._client(private_key)
        mtype = _check_str(mtype, "mtype")
        return {r.public_id: a for r, a in self.registry.subscribed(mtype) if r is not caller}

    def set_callback(self, private_key: str, url: object) -> None:
        """``samp.hub.setXmlrpcCallback`` (section 4.2.4): where to deliver callbacks."""
        record = self._client(private_key)
        record.callback = _check_str(url, "callback URL")
        self.registry.changed()

    def allow_callbacks(self, private_key: str, allow: bool) -> None:
        """``samp.webhub.allowReverseCallbacks`` (section 5.2.3)."""
        record = self._client(private_key)
        record.callback = "pull" if allow else None
        self.registry.changed()

    # -- messages (sections 3.8-3.11) ------------------------------------------------------
    def _recipient(self, sender: ClientRecord, recipient_id: object, mtype: str,
                   message: dict[str, Any]) -> ClientRecord:
        recipient = self.registry.by_id(recipient_id)  # the sender itself is allowed
        if recipient.subscription_for(mtype) is None:
            raise LocalProtocolError(f"client {recipient.public_id} is not subscribed to {mtype}")
        if not recipient.is_callable:
            raise LocalProtocolError(f"client {recipient.public_id} is not callable")
        reason = self._refusal(sender, recipient, message)
        if reason is not None:
            raise LocalProtocolError(reason)
        return recipient

    def _refusal(self, sender: ClientRecord, recipient: ClientRecord, message: dict[str, Any]
                 ) -> str | None:
        if self.message_filter is None:
            return None
        return self.message_filter(sender, recipient, message)

    def _fan_out(self, sender: ClientRecord, mtype: str, message: dict[str, Any]
                 ) -> list[ClientRecord]:
        return [
            r
            for r, _ in self.registry.subscribed(mtype)
            if r is not sender and r.is_callable and self._refusal(sender, r, message) is None
        ]

    def notify(self, private_key: str, recipient_id: object, message: object) -> None:
        """``samp.hub.notify`` (section 3.8).

        Raises
        ------
        LocalProtocolError
            If the key or recipient is unknown, the message malformed, or the recipient is
            not subscribed to the MType.
        """
        sender = self._client(private_key)
        mtype = _check_message(message)
        recipient = self._recipient(sender, recipient_id, mtype, message)  # type: ignore[arg-type]
        self._observe(sender, message)  # type: ignore[arg-type]
        self._notify(sender, recipient, message)  # type: ignore[arg-type]

    def notify_all(self, private_key: str, message: object) -> list[str]:
        """``samp.hub.notifyAll``: every subscribed client but the sender; returns their ids."""
        sender = self._client(private_key)
        mtype = _check_message(message)
        recipients = self._fan_out(sender, mtype, message)  # type: ignore[arg-type]
        self._observe(sender, message)  # type: ignore[arg-type]
        for recipient in recipients:
            self._notify(sender, recipient, message)  # type: ignore[arg-type]
        return [r.public_id for r in recipients]

    def _observe(self, sender: ClientRecord, message: dict[str, Any]) -> None:
        for observer in self.message_observers:
            observer(sender, message)

    def _notify(self, sender: ClientRecord, recipient: ClientRecord, message: dict[str, Any]
                ) -> None:
        if recipient.profile is Profile.HUB:
            return  # the hub acts on no notifications
        self._outputs.append(
            Delivery(recipient, "receiveNotification", (sender.public_id, message)))

    def call(self, private_key: str, recipient_id: object, msg_tag: object, message: object) -> str:
        """``samp.hub.call`` (section 3.9): returns the msg-id the response will quote.

        Raises
        ------
        LocalProtocolError
            As for `notify`, or if `msg_tag` is not a string.
        """
        sender = self._client(private_key)
        msg_tag = _check_str(msg_tag, "msg-tag")
        mtype = _check_message(message)
        recipient = self._recipient(sender, recipient_id, mtype, message)  # type: ignore[arg-type]
        self._observe(sender, message)  # type: ignore[arg-type]
        return self._call(sender, recipient, msg_tag, message)  # type: ignore[arg-type]

    def call_all(self, private_key: str, msg_tag: object, message: object) -> dict[str, str]:
        """``samp.hub.callAll``: returns recipient id -> msg-id."""
        sender = self._client(private_key)
        msg_tag = _check_str(msg_tag, "msg-tag")
        mtype = _check_message(message)
        self._observe(sender, message)  # type: ignore[arg-type]
        return {
            r.public_id: self._call(sender, r, msg_tag, message)  # type: ignore[arg-type]
            for r in self._fan_out(sender, mtype, message)  # type: ignore[arg-type]
        }

    def call_and_wait(self, private_key: str, recipient_id: object, message: object) -> str:
        """``samp.hub.callAndWait``, first half: send the call and return its msg-id.

        The transport waits for the `SyncResponse` with this msg-id, and calls `expire` if
        its timeout passes first.
        """
        sender = self._client(private_key)
        mtype = _check_message(message)
        recipient = self._recipient(sender, recipient_id, mtype, message)  # type: ignore[arg-type]
        self._observe(sender, message)  # type: ignore[arg-type]
        return self._call(sender, recipient, None, message)  # type: ignore[arg-type]

    def _call(self, sender: ClientRecord, recipient: ClientRecord, msg_tag: str | None,
              message: dict[str, Any]) -> str:
        msg_id = "m" + secrets.token_urlsafe(12)
        pending = PendingCall(sender, recipient, msg_tag)
        if recipient.profile is Profile.HUB:
            self._respond(msg_id, pending, recipient.public_id, self._hub_answer(message))
        else:
            self.pending[msg_id] = pending
            self._outputs.append(
                Delivery(recipient, "receiveCall", (sender.public_id, msg_id, message)))
        return msg_id

    def _hub_answer(self, message: dict[str, Any]) -> dict[str, Any]:
        mtype = message.get("samp.mtype")
        if mtype == "samp.app.ping":
            return make_response()
        if mtype == PROFILE_MTYPE:
            params = message.get("samp.params") or {}
            client_id = params.get("id") if isinstance(params, dict) else None
            record = self.registry.get_id(client_id) if isinstance(client_id, str) else None
            if record is None:
                return error_response(f"no registered client with public id {client_id!r}")
            return make_response(result={"profile": record.profile.value})
        return error_response(f"the hub does not handle {message.get('samp.mtype')}")

    def expire(self, msg_id: str) -> bool:
        """Forget pending call `msg_id` (its waiter timed out). Returns whether it was pending.

        A reply that arrives later from its recipient is dropped quietly (a debug log), as
        astropy's hub does: the recipient could not know its caller stopped waiting.
        """
        pending = self.pending.pop(msg_id, None)
        if pending is None:
            return False
        self._abandon(msg_id, pending)
        return True

    def _abandon(self, msg_id: str, pending: PendingCall) -> None:
        self._abandoned[msg_id] = pending.recipient
        while len(self._abandoned) > ABANDONED_MEMORY:
            self._abandoned.popitem(last=False)

    def reply(self, private_key: str, msg_id: object, response: object) -> None:
        """``samp.hub.reply`` (section 3.9).

        Raises
        ------
        LocalProtocolError
            If the msg-id is unknown (already answered, expired, never sent), or was sent to
            a different client than the one replying, or the response is not a map.
        """
        responder = self._client(private_key)
        msg_id = _check_str(msg_id, "msg-id")
        response = _check_map(response, "response")
        pending = self.pending.get(msg_id)
        if pending is None and self._abandoned.get(msg_id) is responder:
            del self._abandoned[msg_id]
            log.debug("late reply to %s from %s dropped: its caller stopped waiting",
                      msg_id, responder.public_id)
            return
        if pending is None:
            raise LocalProtocolError(f"no pending call with msg-id {msg_id!r}")
        if pending.recipient is not responder:
            raise LocalProtocolError(f"msg-id {msg_id!r} was not sent to {responder.public_id}")
        del self.pending[msg_id]
        self._observe(responder, response)
        self._respond(msg_id, pending, responder.public_id, response)

    def _respond(self, msg_id: str, pending: PendingCall, responder_id: str,
                 response: dict[str, Any]) -> None:
        if pending.msg_tag is None:
            self._outputs.append(SyncResponse(msg_id, response))
        elif (self.registry.get_id(pending.sender.public_id) is pending.sender
              and pending.sender.is_callable):
            self._outputs.append(
                Delivery(pending.sender, "receiveResponse",
                         (responder_id, pending.msg_tag, response))
            )

    # -- failures reported by the transport --------------------------------------------------
    def delivery_failed(self, delivery: Delivery, reason: str, *, dead: bool) -> None:
        """Report that `delivery` could not be made.

        Parameters
        ----------
        delivery : Delivery
            What failed.
        reason : str
            A human-readable cause.
        dead : bool
            True when the client's callback refuses connections: the client is then
            unregistered and the others told. False for a one-off failure (a fault, a
            timeout): a failed ``receiveCall`` then answers its caller with an error.
        """
        if dead:
            self.remove_client(delivery.recipient.public_id, f"callback failed: {reason}")
            return
        if delivery.method == "receiveCall":
            msg_id = delivery.args[1]
            pending = self.pending.pop(msg_id, None)
            if pending is not None:
                self._abandon(msg_id, pending)
                text = f"delivery to {delivery.recipient.public_id} failed: {reason}"
                self._respond(msg_id, pending, delivery.recipient.public_id, error_response(text))

    def _client(self, private_key: object) -> ClientRecord:
        return self.registry.by_key(private_key)
