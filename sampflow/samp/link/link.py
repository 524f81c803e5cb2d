"""`HubLink`: one hub's membership of a NATS federation of SAMP hubs.

Each linked hub

- publishes a heartbeat every `heartbeat` seconds and its client list whenever it changes
  (`envelope` lists the subjects); a hub whose heartbeat (or client list) is new, changed or
  from a new instance is asked for its list (request/reply), so a hub that joins late, or
  a link that comes back after the NATS server restarted, catches up without help;
- mirrors every other hub's clients as proxy clients (`HubMirror`), and removes a hub's
  proxies when it says goodbye or `dead_after` seconds pass without its heartbeat (a
  killed hub, a broken NATS connection);
- carries notifications to a proxy as a NATS message to the origin hub, and calls as NATS
  request/reply: the origin hub makes the call from the caller's proxy there, and the
  response comes back as the reply. ``notifyAll`` and ``callAll`` need nothing more: the hub
  core fans them out to proxies like to any client;
- rewrites local URLs in what leaves so the other side can read them (`DataServer`).

A message for another hub leaves in the order it was sent: one queue per destination hub.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import secrets
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import nats
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from ..errors import SAMPError, SAMPHubError
from ..hub.core import Delivery
from ..hub.registry import ClientRecord
from ..hub.server import AsyncHub
from ..types import error_response
from .client_mirror import ClientMirror
from .data import DataServer, address_towards
from .envelope import Codec, EnvelopeError, Subjects, valid_hub_name
from .mirror import HubMirror
from .policy import DEFAULT_SHARE, SharePolicy

__all__ = ["HubLink", "LinkError"]

log = logging.getLogger("sampflow.link")


#: Seconds a departed local client stays in the published client list (see `_recompute`).
LEAVE_GRACE = 2.0


class LinkError(SAMPHubError):
    """The link cannot start as configured (no secret and no credentials, a bad name)."""


#: What `HubLink` needs of its hub side: `HubMirror` (in-process) or `ClientMirror`.
Mirror = HubMirror | ClientMirror


class _Remote:
    """What this hub knows of another linked hub."""

    __slots__ = ("instance", "last_seen", "syncing", "version")

    def __init__(self, now: float) -> None:
        self.instance: str | None = None
        self.version = -1
        self.last_seen = now
        self.syncing = False


class HubLink:
    """Federates a running `AsyncHub` with other hubs over NATS.

    Parameters
    ----------
    hub : AsyncHub or None
        The local hub, in this process and already started: proxies are hosted in it
        (`HubMirror`). None: join the hub at `lockfile` (any SAMP hub, in another process)
        with one SAMP client per proxy (`ClientMirror`).
    servers : str or list of str
        NATS server URL(s), ``nats://HOST:4222``.
    name : str
        This hub's name in the federation (letters, digits, ``-``, ``_``); proxies of its
        clients on other hubs are called ``NAME (proxy@name)``.
    share : iterable of str
        MType patterns that may cross (`DEFAULT_SHARE`); exec-like MTypes never do.
    secret : str, optional
        The federation's shared secret: every payload is signed with it (HMAC-SHA256) and
        unsigned or wrongly signed payloads are dropped.
    creds : str, optional
        A NATS credentials file (JWT and NKey) for the server. A user and password, or a
        token, in a server URL (``nats://user:pass@host:4222``) are NATS credentials too.
    data_addr : str, optional
        Address the data server binds; by default the one used to reach the NATS server.
    prefix : str
        NATS subject prefix; federations sharing one NATS server use different ones.
    heartbeat : float
        Seconds between heartbeats.
    dead_after : float
        Seconds without a heartbeat after which a hub's proxies are removed.
    call_timeout : float
        Seconds a call to another hub's client may take before the caller gets an error.
    lockfile : str, optional
        With `hub` None: the lockfile of the hub to join (default ``SAMP_HUB`` / ``~/.samp``).

    Raises
    ------
    LinkError
        If there is neither `secret` nor NATS credentials (`creds`, or in a server URL), or
        `name` is not a valid hub name.
    """

    def __init__(self, hub: AsyncHub | None, servers: str | list[str], *, name: str,
                 share: Iterable[str] = DEFAULT_SHARE, secret: str | None = None,
                 creds: str | None = None, data_addr: str | None = None,
                 prefix: str = "sampflow.link", heartbeat: float = 1.0,
                 dead_after: float = 3.0, call_timeout: float = 600.0,
                 lockfile: str | None = None) -> None:
        servers = [servers] if isinstance(servers, str) else list(servers)
        if not secret and not creds and not has_url_credentials(servers):
            raise LinkError("a federation link needs a shared secret or NATS credentials")
        if not valid_hub_name(name):
            raise LinkError(f"hub name {name!r} must be 1-64 letters, digits, '-' or '_'")
        self.hub = hub
        self.servers = servers
        self.name = name
        self.policy = SharePolicy(share)
        self.codec = Codec(name, secret.encode() if secret else None)
        self.subjects = Subjects(prefix)
        self.creds = creds
        self.heartbeat = heartbeat
        self.dead_after = dead_after
        self.call_timeout = call_timeout
        self.instance = secrets.token_hex(8)
        self.version = 0
        self.mirror: Mirror
        if hub is not None:
            self.mirror = HubMirror(hub.service, name, self.policy, self._to_proxy,
                                    self._local_changed)
        else:
            self.mirror = ClientMirror(lockfile, name, self.policy, self._to_proxy,
                                       self._local_changed)
        self.mirror.on_proxy_gone.append(self._proxy_gone)
        host = _host_of(self.servers[0])
        self.data = DataServer(data_addr or address_towards(host))
        self.nc: NATS | None = None
        self._remotes: dict[str, _Remote] = {}
        self._published: list[dict[str, Any]] | None = None
        self._change_pending = False
        self._outboxes: dict[str, asyncio.Queue[tuple[Delivery, str]]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._calls: dict[ClientRecord, set[asyncio.Task[None]]] = {}
        self._incoming: dict[str, tuple[Msg, ClientRecord]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ticker: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._refused: set[str] = set()
        self._leaving: dict[str, tuple[dict[str, Any], float]] = {}

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self, connect_wait: float = 5.0) -> None:
        """Attach to the hub, start the data server and join the federation.

        The NATS connection is retried in the background until it succeeds; this waits for
        it up to `connect_wait` seconds, and proxies appear once the other hubs are heard.

        Raises
        ------
        OSError
            If the data server's address cannot be bound.
        """
        await self.data.start()
        await _done(self.mirror.attach())
        self._spawn(self._connect_forever())
        self._ticker = asyncio.get_running_loop().create_task(self._tick(), name="link-tick")
        try:
            await asyncio.wait_for(self._connected.wait(), connect_wait)
        except TimeoutError:
            log.warning("NATS at %s not reachable yet; still trying",
                        ", ".join(map(without_credentials, self.servers)))

    async def stop(self) -> None:
        """Say goodbye to the federation, remove every proxy and stop serving data."""
        if self._ticker is not None:
            self._ticker.cancel()
        nc = self.nc
        if nc is not None and nc.is_connected:
            try:
                await nc.publish(self.subjects.bye, self.codec.encode({"instance": self.instance}))
                await nc.flush(timeout=1)
            except (TimeoutError, NatsError):
                pass
        for task in list(self._tasks) + list(self._workers.values()):
            task.cancel()
        for calls in self._calls.values():
            for task in calls:
                task.cancel()
        if nc is not None:
            try:
                await nc.close()
            except NatsError:
                pass
        await _done(self.mirror.detach())
        await self.data.close()

    async def hub_lost(self) -> None:
        """Return when the joined hub (another process's) stops; never for an own hub."""
        if isinstance(self.mirror, ClientMirror):
            await self.mirror.hub_lost.wait()
        else:
            await asyncio.Event().wait()

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_log_failure)
        return task

    async def _connect_forever(self) -> None:
        delay = 0.2
        while True:
            try:
                self.nc = await nats.connect(
                    self.servers, name=f"sampflow-link {self.name}", no_echo=True,
                    allow_reconnect=True, max_reconnect_attempts=-1, reconnect_time_wait=0.5,
                    connect_timeout=2, ping_interval=5, max_outstanding_pings=2,
                    user_credentials=self.creds,
                    reconnected_cb=self._reconnected, disconnected_cb=self._disconnected,
                    error_cb=self._nats_error)
                break
            except (TimeoutError, NatsError, OSError) as exc:
                log.debug("NATS connect failed (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        nc = self.nc
        await nc.subscribe(self.subjects.beat, cb=self._on_beat)
        await nc.subscribe(self.subjects.state, cb=self._on_state)
        await nc.subscribe(self.subjects.bye, cb=self._on_bye)
        await nc.subscribe(self.subjects.sync(self.name), cb=self._on_sync)
        await nc.subscribe(self.subjects.to(self.name), cb=self._on_message)
        log.info("hub %s linked through NATS at %s", self.name,
                 without_credentials(self.servers[0]))
        self._connected.set()
        await self._publish_state()
        await self._beat()

    async def _reconnected(self) -> None:
        log.info("NATS connection back; republishing the client list")
        await self._publish_state()
        await self._beat()

    async def _disconnected(self) -> None:
        log.warning("NATS connection lost; reconnecting")

    async def _nats_error(self, exc: Exception) -> None:
        log.debug("NATS: %s", exc)

    # -- heartbeats and the client list ------------------------------------------------------
    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        last_beat = loop.time()
        while True:
            await asyncio.sleep(min(self.heartbeat, self.dead_after) / 4)
            now = loop.time()
            if now - last_beat >= self.heartbeat:
                last_beat = now
                await self._beat()
            for hub, remote in list(self._remotes.items()):
                if now - remote.last_seen > self.dead_after:
                    log.warning("hub %s silent for %.1f s: removing its proxies", hub,
                                now - remote.last_seen)
                    del self._remotes[hub]
                    await _done(self.mirror.drop_hub(hub, f"hub {hub} went silent"))

    async def _beat(self) -> None:
        nc = self.nc
        if nc is None or not nc.is_connected:
            return
        try:
            await nc.publish(self.subjects.beat, self.codec.encode(
                {"instance": self.instance, "version": self.version}))
        except NatsError as exc:
            log.debug("heartbeat not sent: %s", exc)

    def _state_body(self) -> dict[str, Any]:
        return {"instance": self.instance, "version": self.version,
                "clients": self._published or []}

    def _local_changed(self) -> None:
        if not self._change_pending:
            self._change_pending = True
            asyncio.get_running_loop().call_soon(self._recompute)

    def _recompute(self) -> None:
        self._change_pending = False
        clients = self.mirror.local_clients()
        # A client that sent and left at once (``sampflow send``) stays listed for
        # LEAVE_GRACE seconds, so that the hubs its last messages went to can still name
        # their sender when they ask for this list.
        loop = asyncio.get_running_loop()
        now, present = loop.time(), {entry["id"] for entry in clients}
        for entry in self._published or ():
            if entry["id"] not in present and entry["id"] not in self._leaving:
                self._leaving[entry["id"]] = (entry, now + LEAVE_GRACE)
                loop.call_later(LEAVE_GRACE + 0.05, self._local_changed)
        for cid, (entry, until) in list(self._leaving.items()):
            if cid in present or until <= now:
                del self._leaving[cid]
            else:
                clients.append(entry)
        if clients != self._published:
            self._published = clients
            self.version += 1
            self._spawn(self._publish_state())

    async def _publish_state(self) -> None:
        if self._published is None:
            self._published = self.mirror.local_clients()
        nc = self.nc
        if nc is None or not nc.is_connected:
            return
        try:
            await nc.publish(self.subjects.state, self.codec.encode(self._state_body()))
        except NatsError as exc:
            log.debug("client list not sent: %s", exc)

    def _decode(self, msg: Msg) -> tuple[str, Any] | None:
        try:
            hub, body = self.codec.decode(msg.data)
        except EnvelopeError as exc:
            text = str(exc)
            if text not in self._refused:  # once per cause, not once per heartbeat
                if len(self._refused) < 1000:
                    self._refused.add(text)
                log.warning("dropped a payload on %s: %s", msg.subject, text)
            return None
        if hub == self.name or not valid_hub_name(hub) or not isinstance(body, dict):
            return None
        return hub, body

    def _remote(self, hub: str) -> _Remote:
        now = asyncio.get_running_loop().time()
        remote = self._remotes.get(hub)
        if remote is None:
            remote = self._remotes[hub] = _Remote(now)
        remote.last_seen = now
        return remote

    async def _on_beat(self, msg: Msg) -> None:
        decoded = self._decode(msg)
        if decoded is None:
            return
        hub, body = decoded
        remote = self._remote(hub)
        if (body.get("instance"), body.get("version")) != (remote.instance, remote.version) \
                and not remote.syncing:
            remote.syncing = True
            self._spawn(self._sync(hub, remote))

    async def _sync(self, hub: str, remote: _Remote) -> None:
        try:
            reply = await self.nc.request(self.subjects.sync(hub),  # type: ignore[union-attr]
                                          self.codec.encode({}), timeout=2)
        except (TimeoutError, NatsError) as exc:
            log.debug("no client list from %s: %s", hub, exc)
            return
        finally:
            remote.syncing = False
        decoded = self._decode(reply)
        if decoded is not None and decoded[0] == hub:
            await self._apply_state(hub, decoded[1])

    async def _on_sync(self, msg: Msg) -> None:
        if self._decode(msg) is not None and msg.reply:
            if self._change_pending:  # a change not yet published: answer with it
                self._recompute()
            if self._published is None:
                self._published = self.mirror.local_clients()
            await msg.respond(self.codec.encode(self._state_body()))

    async def _on_state(self, msg: Msg) -> None:
        decoded = self._decode(msg)
        if decoded is not None:
            await self._apply_state(*decoded)

    async def _apply_state(self, hub: str, body: dict[str, Any]) -> None:
        instance, version, clients = body.get("instance"), body.get("version"), body.get("clients")
        if not isinstance(instance, str) or not isinstance(version, int) \
                or not isinstance(clients, list):
            return
        remote = self._remote(hub)
        if remote.instance is not None and remote.instance != instance:
            await _done(self.mirror.drop_hub(hub, f"hub {hub} restarted"))
            remote.version = -1
        elif version < remote.version:
            return  # an older list overtaken by a newer one
        remote.instance, remote.version = instance, version
        await _done(self.mirror.sync_hub(hub, clients))

    async def _on_bye(self, msg: Msg) -> None:
        decoded = self._decode(msg)
        if decoded is None:
            return
        hub, body = decoded
        remote = self._remotes.get(hub)
        if remote is not None and body.get("instance") in (remote.instance, None):
            del self._remotes[hub]
            log.info("hub %s left the federation", hub)
            await _done(self.mirror.drop_hub(hub, f"hub {hub} left the federation"))

    # -- messages out: deliveries to proxies ---------------------------------------------------
    def _to_proxy(self, delivery: Delivery, hub: str, remote_id: str) -> None:
        if delivery.method == "receiveResponse":
            self._spawn(self._answer_incoming(delivery))
            return
        queue = self._outboxes.get(hub)
        if queue is None:
            queue = self._outboxes[hub] = asyncio.Queue()
            self._workers[hub] = asyncio.get_running_loop().create_task(
                self._drain(hub, queue), name=f"link-out-{hub}")
            self._workers[hub].add_done_callback(_log_failure)
        queue.put_nowait((delivery, remote_id))

    async def _drain(self, hub: str, queue: asyncio.Queue[tuple[Delivery, str]]) -> None:
        subject = self.subjects.to(hub)
        while True:
            batch = [await queue.get()]
            while not queue.empty():
                batch.append(queue.get_nowait())
            for delivery, remote_ids in _group_fan_out(batch):
                if log.isEnabledFor(logging.DEBUG):
                    log.debug("%s for %s on %s", delivery.method, ", ".join(remote_ids), hub)
                try:
                    await self._send(hub, subject, delivery, remote_ids)
                except (NatsError, SAMPError) as exc:
                    log.warning("%s to %s on %s failed: %s", delivery.method,
                                ", ".join(remote_ids), hub, exc)

    async def _send(self, hub: str, subject: str, delivery: Delivery,
                    remote_ids: list[str]) -> None:
        if delivery.method == "receiveNotification":
            sender_id, message = delivery.args
            body = {"kind": "notify", "hub": hub, "from": sender_id,
                    "to": remote_ids[0] if len(remote_ids) == 1 else remote_ids,
                    "message": await self.data.rewrite(message)}
            if self.nc is None or not self.nc.is_connected:
                log.warning("notification to %s on %s lost: NATS is not connected",
                            ", ".join(remote_ids), hub)
                return
            await self.nc.publish(subject, self.codec.encode(body))
        elif delivery.method == "receiveCall":
            sender_id, msg_id, message = delivery.args
            body = {"kind": "call", "hub": hub, "from": sender_id, "to": remote_ids[0],
                    "message": await self.data.rewrite(message)}
            task = asyncio.get_running_loop().create_task(
                self._call_remote(delivery.recipient, subject, msg_id, body))
            task.add_done_callback(_log_failure)
            self._calls.setdefault(delivery.recipient, set()).add(task)
            task.add_done_callback(self._calls[delivery.recipient].discard)

    async def _call_remote(self, proxy: ClientRecord, subject: str, msg_id: str,
                           body: dict[str, Any]) -> None:
        try:
            if self.nc is None or not self.nc.is_connected:
                raise NatsError("NATS is not connected")
            reply = await self.nc.request(subject, self.codec.encode(body),
                                          timeout=self.call_timeout)
            decoded = self._decode(reply)
            response = decoded[1].get("response") if decoded is not None else None
            if not isinstance(response, dict):
                response = error_response("malformed response from the other hub")
        except NoRespondersError:
            response = error_response(f"hub of {proxy.name} is not reachable")
        except (TimeoutError, NatsTimeout):
            response = error_response(f"no response from {proxy.name} within "
                                      f"{self.call_timeout:g} s")
        except NatsError as exc:
            response = error_response(f"call to {proxy.name} failed: {exc}")
        log.debug("response from %s for %s", proxy.name, msg_id)
        try:
            await _done(self.mirror.reply(proxy, msg_id, response))
        except SAMPError as exc:
            log.debug("response for %s not delivered: %s", msg_id, exc)

    def _proxy_gone(self, record: ClientRecord) -> None:
        for task in self._calls.pop(record, ()):
            task.cancel()
        for tag, (msg, sender) in list(self._incoming.items()):
            if sender is record:
                del self._incoming[tag]
                self._spawn(self._respond(msg, error_response("the caller's hub left")))

    async def _answer_incoming(self, delivery: Delivery) -> None:
        _responder, msg_tag, response = delivery.args
        entry = self._incoming.pop(msg_tag, None)
        if entry is None:
            return
        await self._respond(entry[0], await self.data.rewrite(response))

    async def _respond(self, msg: Msg, response: dict[str, Any]) -> None:
        try:
            await msg.respond(self.codec.encode({"response": response}))
        except NatsError as exc:
            log.warning("response not sent back: %s", exc)

    # -- messages in: from other hubs' clients to ours -----------------------------------------
    async def _on_message(self, msg: Msg) -> None:
        decoded = self._decode(msg)
        if decoded is None:
            return
        hub, body = decoded
        kind, sender_id, targets, message = (body.get("kind"), body.get("from"),
                                             body.get("to"), body.get("message"))
        if body.get("hub") != self.name:  # signed for another hub: replayed here
            log.warning("dropped a message from %s addressed to hub %r", hub, body.get("hub"))
            return
        if kind == "call" and not msg.reply:
            return
        if kind == "notify" and isinstance(targets, list):  # one notifyAll, many recipients
            for target_id in targets[:10000]:
                await self._notify_in(hub, sender_id, target_id, message)
        elif kind == "notify":
            await self._notify_in(hub, sender_id, targets, message)
        elif kind == "call":
            await self._call_in(msg, hub, sender_id, targets, message)

    async def _knows_sender(self, hub: str, sender_id: Any) -> None:
        """A client that registered and sent at once can be ahead of its hub's client list:
        ask that hub for its list before refusing the message (in order: later messages from
        that hub wait)."""
        remote = self._remotes.get(hub)
        if isinstance(sender_id, str) and remote is not None \
                and self.mirror.proxy(hub, sender_id) is None:
            log.debug("client %s of %s not known yet: asking %s", sender_id, hub, hub)
            await self._sync(hub, remote)

    async def _notify_in(self, hub: str, sender_id: Any, target_id: Any, message: Any) -> None:
        await self._knows_sender(hub, sender_id)
        refusal = self._refuse(hub, sender_id, target_id, message)
        if refusal is not None:
            log.warning("refused a notification from %s: %s", hub, refusal)
            return
        proxy = self.mirror.proxy(hub, sender_id)
        assert proxy is not None
        try:
            await _done(self.mirror.notify(proxy, target_id, message))
        except SAMPError as exc:
            log.warning("notification from %s refused: %s", hub, exc)

    async def _call_in(self, msg: Msg, hub: str, sender_id: Any, target_id: Any,
                       message: Any) -> None:
        await self._knows_sender(hub, sender_id)
        refusal = self._refuse(hub, sender_id, target_id, message)
        if refusal is not None:
            log.warning("refused a call from %s: %s", hub, refusal)
            await self._respond(msg, error_response(refusal))
            return
        proxy = self.mirror.proxy(hub, sender_id)
        assert proxy is not None
        tag = "link-" + secrets.token_urlsafe(9)
        self._incoming[tag] = (msg, proxy)
        try:
            await _done(self.mirror.call(proxy, target_id, tag, message))
        except SAMPError as exc:
            self._incoming.pop(tag, None)
            await self._respond(msg, error_response(str(exc)))

    def _refuse(self, hub: str, sender_id: Any, target_id: Any, message: Any) -> str | None:
        if not isinstance(sender_id, str) or not isinstance(target_id, str) \
                or not isinstance(message, dict):
            return "malformed message"
        mtype = message.get("samp.mtype")
        if not isinstance(mtype, str) or not self.policy.allows(mtype):
            return f"{mtype} may not cross into hub {self.name}"
        if self.mirror.proxy(hub, sender_id) is None:
            return f"no proxy here for client {sender_id} of hub {hub}"
        if not self.mirror.is_local(target_id):
            return f"no client {target_id} on hub {self.name}"
        return None


def _group_fan_out(batch: list[tuple[Delivery, str]]) -> list[tuple[Delivery, list[str]]]:
    """Merge consecutive notifications of one message from one sender (a ``notifyAll``) into
    one delivery with several recipients; everything else stays one by one, in order."""
    groups: list[tuple[Delivery, list[str]]] = []
    for delivery, remote_id in batch:
        if groups and delivery.method == "receiveNotification":
            last, ids = groups[-1]
            if last.method == "receiveNotification" and last.args[0] == delivery.args[0] \
                    and last.args[1] is delivery.args[1]:
                ids.append(remote_id)
                continue
        groups.append((delivery, [remote_id]))
    return groups


def _log_failure(task: asyncio.Task[Any]) -> None:
    """Log what a background task died of (it has no one to raise to)."""
    if not task.cancelled() and task.exception() is not None:
        log.error("link task failed", exc_info=task.exception())


async def _done(result: Any) -> Any:
    """Await `result` when the mirror's method was a coroutine (`ClientMirror`)."""
    if inspect.isawaitable(result):
        return await result
    return result


def has_url_credentials(servers: Iterable[str]) -> bool:
    """Whether a NATS server URL carries a user (and password) or a token.

    >>> has_url_credentials(["nats://u:p@lab:4222"]), has_url_credentials(["nats://lab:4222"])
    (True, False)
    """
    return any(urlsplit(s if "://" in s else f"nats://{s}").username for s in servers)


def without_credentials(url: str) -> str:
    """`url` with any user, password or token left out (for logs).

    >>> without_credentials("nats://u:secret@lab:4222")
    'nats://lab:4222'
    """
    parts = urlsplit(url if "://" in url else f"nats://{url}")
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


def _host_of(url: str) -> str:
    return urlsplit(url if "://" in url else f"nats://{url}").hostname or "127.0.0.1"
