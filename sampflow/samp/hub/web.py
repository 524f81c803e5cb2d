"""The Web Profile transport (SAMP 1.3 section 5): browser clients, safely.

`WebProfile` is a `~sampflow.samp.hub.profiles.HubProfile`: added to a hub with
`AsyncHub.add_profile` (or `attach_web_profile`), it serves XML-RPC over HTTP on loopback
port 21012 (section 5.2) with the hub methods under the ``samp.webhub.`` prefix (section
5.3): ``register`` with identity information, ``unregister``, ``allowReverseCallbacks``,
``pullCallbacks`` and the rest of the hub API through the service's shared method table
(`HubService.methods`). Callbacks to web clients are queued and handed out by
``pullCallbacks``, a real long poll: the request waits on a future that the next delivery
completes, so an idle web client costs no CPU. The HTTP side (loopback, CORS, policy files)
is `sampflow.samp.hub.web_http`.

Security (section 5.4), in the order a request meets it:

- Only loopback peers are served, and only with a loopback ``Host`` header (no DNS
  rebinding).
- Cross-origin access (5.4.1): CORS preflights are answered for well-formed origins, with
  ``Access-Control-Allow-Private-Network: true`` when the preflight asks for it;
  ``crossdomain.xml`` and ``clientaccesspolicy.xml`` are served for Flash / Silverlight.
  The ``Origin`` is reflected for ``register`` and ``ping`` (a page must be able to read
  the answer, or the refusal, of its registration); afterwards a client's requests are
  answered only for the origin it registered from, and refused from any other.
- Registration (5.4.2): at most `DEFAULT_MAX_PER_ORIGIN` web clients (`max_per_origin`)
  from one origin may be registered (or registering) at once; at that limit, the origin's
  clients that have made no request for ``idle_timeout`` seconds are unregistered to make
  room (pages closed without unregistering), and if none is, the registration is refused.
  Every ``register`` asks a consent policy (`web_consent`), which runs off the serving path:
  a pending prompt never blocks other clients, and no terminal and no allow-list means
  refusal while the hub keeps running.
- URL translation (5.4.3): the ``samp.url-translator`` prefix serves only URLs that a
  Standard Profile client (or the hub) mentioned in a message or response before any web
  client mentioned them (in a message, a response, its identity, metadata or
  subscriptions): a page's URL stays untranslatable whoever relays it (`UrlControl`).
- Messages from web clients are limited to MTypes their recipients mark
  ``x-samp.mostly-harmless`` or that are on a list of known-harmless MTypes
  (`MTypeRestriction`, the profile's `~WebProfile.filter`).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..errors import LocalProtocolError, ProtocolError
from ..types import decode_bool
from ..xmlrpc import MAX_BODY_BYTES, MalformedRequest, dumps_fault, dumps_response, loads_request
from .core import Delivery
from .profiles import LISTEN_BACKLOG
from .registry import ClientRecord, Profile
from .service import HubService, MethodTable
from .web_consent import ConsentGate, ConsentRequest, as_consent, default_consent, normalise_origin
from .web_http import (
    CLIENT_ACCESS_POLICY_XML,
    CROSS_DOMAIN_XML,
    cors_reply,
    request_origin,
    web_app,
)
from .web_policy import DEFAULT_HARMLESS_MTYPES, MTypeRestriction, UrlControl
from .web_pull import MAX_QUEUED, PullQueue
from .web_translator import UrlTranslator

if TYPE_CHECKING:
    from .server import AsyncHub

__all__ = [
    "CLIENT_ACCESS_POLICY_XML",
    "CROSS_DOMAIN_XML",
    "DEFAULT_MAX_PER_ORIGIN",
    "WEB_PORT",
    "WebProfile",
    "attach_web_profile",
]

log = logging.getLogger("sampflow.hub.web")

#: The Web Profile's well-known port (section 5.2).
WEB_PORT = 21012
PREFIX = "samp.webhub."
#: Longest ``pullCallbacks`` wait granted, in seconds (sampjs asks for 600).
MAX_PULL_SECONDS = 600.0
#: Most web clients registered (or awaiting consent) at once from one origin, by default.
#: Pages from one origin, or the same page reloaded, share it; clients that send no
#: ``Origin`` (not browsers) count as one origin.
DEFAULT_MAX_PER_ORIGIN = 16


class WebProfile:
    """Serves the Web Profile for one `HubService` (SAMP 1.3 section 5).

    Parameters
    ----------
    service : HubService
        The hub.
    consent : callable, WebProfileDialog or None
        Consent policy for registrations (see `sampflow.samp.hub.web_consent`); None
        refuses every registration.
    consent_timeout : float
        Seconds before an unanswered consent request counts as refused.
    harmless_mtypes : iterable of str or None
        MType patterns web clients may send to recipients whose subscription annotation
        says nothing about ``x-samp.mostly-harmless``; None lifts the MType restriction
        altogether (for conformance testing only).
    idle_timeout : float
        A web client that allowed callbacks and has not pulled for this many seconds is
        considered gone and unregistered; so is one that has made no request for this long
        when its origin reaches `max_per_origin`.
    max_body : int
        Largest request body accepted, in bytes.
    max_per_origin : int
        Most web clients registered, or awaiting consent, at once from one origin.
    addr : str
        Listening address; keep it loopback (non-loopback peers are refused anyway).
    port : int
        TCP port (21012, the standard's, by default; 0 picks a free one); the port bound
        once started.

    Raises
    ------
    ValueError
        If `max_per_origin` is below 1.

    Notes
    -----
    Add it to its hub with `AsyncHub.add_profile`, which starts serving it, or build and
    add it in one go with `attach_web_profile`.
    """

    profile = Profile.WEB

    def __init__(self, service: HubService, *, consent: Any = None,
                 consent_timeout: float = 120.0,
                 harmless_mtypes: Iterable[str] | None = DEFAULT_HARMLESS_MTYPES,
                 idle_timeout: float = 120.0, max_body: int = MAX_BODY_BYTES,
                 max_per_origin: int = DEFAULT_MAX_PER_ORIGIN, addr: str = "127.0.0.1",
                 port: int = WEB_PORT) -> None:
        if max_per_origin < 1:
            raise ValueError("max_per_origin must be at least 1")
        self.service = service
        self.core = service.core
        self.gate = ConsentGate(as_consent(consent, timeout=consent_timeout),
                                timeout=consent_timeout)
        self.translator = UrlTranslator(UrlControl())
        self.urls = self.translator.urls
        self.idle_timeout = idle_timeout
        self.max_body = max_body
        self.max_per_origin = max_per_origin
        #: Web clients registered or registering, by normalised origin ("" for none).
        self._per_origin: Counter[str] = Counter()
        self.addr = addr
        self.port = port
        self._runner: web.AppRunner | None = None
        self._queues: dict[ClientRecord, PullQueue] = {}
        #: Methods only the Web Profile has, in the form of `HubService.methods`.
        self.methods: MethodTable = {"allowReverseCallbacks": (2, self._allow_callbacks)}
        self.restriction: MTypeRestriction | None = None
        if harmless_mtypes is not None:
            self.restriction = MTypeRestriction(harmless_mtypes)

    @property
    def url(self) -> str:
        """The XML-RPC endpoint, once serving."""
        return f"http://127.0.0.1:{self.port}/"

    # -- HubProfile ----------------------------------------------------------------------------
    async def start(self) -> None:
        """Serve on `addr` and `port`; sets `port` to the port bound.

        Raises
        ------
        OSError
            If the port cannot be bound (another Web Profile hub runs, for example).
        """
        runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.addr, self.port, backlog=LISTEN_BACKLOG,
                           reuse_address=True)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = runner.addresses[0][1]
        log.info("SAMP Web Profile listening at http://%s:%d/", self.addr, self.port)

    async def stop(self) -> None:
        """Stop serving: pending ``pullCallbacks`` return, the translator closes."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def lockfile_entries(self) -> dict[str, str]:
        """None: web clients find the hub at its well-known port (section 5.2)."""
        return {}

    def filter(self, sender: ClientRecord, recipient: ClientRecord,
               message: dict[str, Any]) -> str | None:
        """Keep web clients to harmless MTypes (`MTypeRestriction`); None allows."""
        if self.restriction is None:
            return None
        return self.restriction(sender, recipient, message)

    def observe(self, sender: ClientRecord, message: dict[str, Any]) -> None:
        """Learn the URLs each message mentions, for the translator (`UrlControl`)."""
        self.urls(sender, message)

    def deliver(self, delivery: Delivery) -> None:
        """Queue a callback for its web client's ``pullCallbacks`` (never blocks)."""
        queue = self._queues.get(delivery.recipient)
        if queue is None:
            return
        item = {"samp.methodName": delivery.method, "samp.params": list(delivery.args)}
        if not queue.put(item) and not queue.closed:
            asyncio.get_running_loop().call_soon(
                self._drop, delivery.recipient, f"more than {MAX_QUEUED} callbacks unread")

    def client_gone(self, record: ClientRecord, reason: str) -> None:
        """Close a departed web client's pull queue and translator token."""
        queue = self._queues.pop(record, None)
        if queue is not None:
            queue.close()
            self.translator.remove(record.info.get("translator", ""))
            self._release(_place(record.info.get("origin")))

    def app(self) -> web.Application:
        """An aiohttp application serving this profile (`web_http.web_app`)."""
        return web_app(max_body=self.max_body, xmlrpc=self._xmlrpc,
                       translator=self.translator.handle, on_shutdown=self._on_shutdown)

    # -- XML-RPC -----------------------------------------------------------------------------
    async def _xmlrpc(self, request: web.Request) -> web.Response:
        origin = request_origin(request)
        if origin == "":
            return web.Response(status=403, text="malformed Origin header\n")
        if request.content_length is not None and request.content_length > self.max_body:
            return cors_reply(dumps_fault(f"request body exceeds {self.max_body} bytes"), origin)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return cors_reply(dumps_fault(f"request body exceeds {self.max_body} bytes"), origin)
        try:
            method, params = loads_request(body, max_bytes=self.max_body,
                                           types=self.service.value_types)
            if not method.startswith(PREFIX):
                raise MalformedRequest(f"no such method: {method} (Web Profile methods start "
                                       f"with {PREFIX})")
            name = method[len(PREFIX):]
            if name not in ("register", "ping") and params:
                self._seen(self._check_origin(params[0], origin))
            value = await self._call(name, params, request, origin)
        except _OriginRefused as exc:
            log.warning("refused a Web Profile request: %s", exc)
            return web.Response(status=403, text=f"{exc}\n")
        except (ProtocolError, MalformedRequest) as exc:
            log.debug("web fault: %s", exc)
            return cors_reply(dumps_fault(str(exc)), origin)
        return cors_reply(dumps_response(value), origin)

    def _check_origin(self, private_key: Any, origin: str | None) -> ClientRecord | None:
        try:
            record = self.core.registry.by_key(private_key)
        except LocalProtocolError:
            return None  # the core answers "unknown private key" with a fault
        if record.profile is not Profile.WEB:
            raise _OriginRefused("that private key does not belong to a Web Profile client")
        registered = record.info.get("origin")
        same = (registered is None and origin is None) or (
            registered is not None and origin is not None
            and normalise_origin(registered) == normalise_origin(origin))
        if not same:
            raise _OriginRefused(f"origin {origin!r} differs from the origin {registered!r} "
                                 f"client {record.public_id} registered from")
        return record

    def _seen(self, record: ClientRecord | None) -> None:
        queue = self._queues.get(record) if record is not None else None
        if queue is not None:
            queue.last_seen = time.monotonic()

    def _make_room(self, place: str) -> None:
        """At the per-origin limit: unregister that origin's clients that have made no
        request for `idle_timeout` seconds (pages closed without unregistering; sampjs's
        ``Connector`` registers again when it next needs the hub)."""
        stale = [record for record, queue in self._queues.items()
                 if _place(record.info.get("origin")) == place
                 and queue.idle_for() > self.idle_timeout]
        for record in stale:
            self._drop(record, f"no request for over {self.idle_timeout:g} s and its origin "
                               f"reached --web-max-per-origin {self.max_per_origin}")

    async def _call(self, name: str, params: tuple[Any, ...], request: web.Request,
                    origin: str | None) -> Any:
        if name == "register":
            return await self.register(params, origin=origin, peer=request.remote,
                                       host=request.host)
        if name == "pullCallbacks":
            if len(params) != 2:
                raise LocalProtocolError("pullCallbacks takes 2 arguments, got "
                                         f"{len(params)}")
            return await self.pull_callbacks(*params)
        if name in ("declareMetadata", "declareSubscriptions"):
            self.urls.taint(list(params[1:]))  # a page's URLs stay untranslatable
        return await self.service.dispatch(name, params, profile=Profile.WEB, extra=self.methods)

    async def register(self, params: tuple[Any, ...], *, origin: str | None,
                       peer: str | None = None, host: str = "127.0.0.1") -> dict[str, str]:
        """``samp.webhub.register(map identity-info)`` (section 5.3.1), after consent.

        Returns
        -------
        dict
            ``samp.private-key``, ``samp.hub-id``, ``samp.self-id`` and
            ``samp.url-translator``.

        Raises
        ------
        LocalProtocolError
            If the identity information is malformed, `max_per_origin` clients from this
            origin are already registered or registering, or consent is refused.
        """
        if len(params) != 1:
            raise LocalProtocolError("register takes 1 argument, the identity-info map")
        identity = params[0]
        if isinstance(identity, str):  # what astropy's test web client sends
            identity = {"samp.name": identity}
        if not isinstance(identity, dict) or not isinstance(identity.get("samp.name"), str):
            raise LocalProtocolError("identity-info must be a map with a string samp.name")
        self.urls.taint(identity)
        request = ConsentRequest(identity["samp.name"], origin, peer, dict(identity))
        place = _place(origin)
        if self._per_origin[place] >= self.max_per_origin:
            self._make_room(place)
        if self._per_origin[place] >= self.max_per_origin:
            log.warning("registration refused: %s; %d web clients from that origin already "
                        "(--web-max-per-origin %d)", request.describe(),
                        self._per_origin[place], self.max_per_origin)
            raise LocalProtocolError(
                f"registration refused: {self._per_origin[place]} web clients from "
                f"{_origin_text(origin)} are registered or registering, the limit "
                f"(--web-max-per-origin {self.max_per_origin}); unregister some first")
        self._per_origin[place] += 1
        registered = False
        try:
            if not await self.gate.ask(request):
                log.info("registration refused: %s", request.describe())
                raise LocalProtocolError("registration refused: the user did not consent")
            token = secrets.token_urlsafe(18)
            reg = self.service.register(Profile.WEB, {"origin": origin,
                                                      "identity": dict(identity),
                                                      "translator": token})
            record = self.core.registry.by_key(reg["samp.private-key"])
            self._queues[record] = PullQueue()
            self.translator.add(token, record)
            registered = True
        finally:
            if not registered:
                self._release(place)
        log.info("registered web client %s: %s", record.public_id, request.describe())
        return {**reg, "samp.url-translator": f"http://{host}/translator/{token}?"}

    def _release(self, place: str) -> None:
        self._per_origin[place] -= 1
        if self._per_origin[place] <= 0:
            del self._per_origin[place]

    def _allow_callbacks(self, private_key: Any, allow: Any) -> None:
        if isinstance(allow, str):
            flag = decode_bool(allow)
        elif isinstance(allow, (bool, int)):
            flag = bool(allow)
        else:
            raise LocalProtocolError("allow must be a SAMP boolean (\"0\" or \"1\")")
        self.core.allow_callbacks(private_key, flag)
        record = self.core.registry.by_key(private_key)
        queue = self._queues.get(record)
        if queue is not None:
            if flag:
                self._arm_idle(record, queue)
            elif queue.idle_timer is not None:
                queue.idle_timer.cancel()

    async def pull_callbacks(self, private_key: Any, timeout: Any) -> list[dict[str, Any]]:
        """``samp.webhub.pullCallbacks(private-key, timeout-secs)`` (section 5.3.2).

        Waits up to `timeout` seconds (capped at `MAX_PULL_SECONDS`) until a callback is
        queued, then returns every queued one as ``{"samp.methodName": ..., "samp.params":
        [...]}``; an empty list when the time runs out.

        Raises
        ------
        LocalProtocolError
            If the key is unknown or `timeout` is not a number.
        """
        record = self.core.registry.by_key(private_key)
        try:
            seconds = min(float(timeout), MAX_PULL_SECONDS)
        except (TypeError, ValueError):
            raise LocalProtocolError(
                f"timeout must be a number of seconds, not {timeout!r}") from None
        queue = self._queues.get(record)
        if queue is None:
            raise LocalProtocolError(f"client {record.public_id} is not a Web Profile client")
        if queue.idle_timer is not None:
            queue.idle_timer.cancel()
            queue.idle_timer = None
        try:
            return await queue.pull(seconds)
        finally:
            if record.callback is not None and not queue.closed:
                self._arm_idle(record, queue)

    def _arm_idle(self, record: ClientRecord, queue: PullQueue) -> None:
        if queue.idle_timer is not None:
            queue.idle_timer.cancel()
        queue.idle_timer = asyncio.get_running_loop().call_later(
            self.idle_timeout, self._drop, record, "stopped pulling callbacks")

    def _drop(self, record: ClientRecord, reason: str) -> None:
        log.warning("removing web client %s (%s): %s", record.public_id, record.name, reason)
        self.core.remove_client(record.public_id, reason, tell_client=False)
        self.service.process_outputs()

    async def _on_shutdown(self, app: web.Application) -> None:
        for queue in self._queues.values():
            queue.close()
        await self.translator.close()


def _place(origin: str | None) -> str:
    """The key web clients are counted under for `WebProfile.max_per_origin`."""
    return normalise_origin(origin) if origin else ""


def _origin_text(origin: str | None) -> str:
    return origin if origin else "no Origin (not a browser)"


class _OriginRefused(Exception):
    """A request came from another origin than its client registered from."""


async def attach_web_profile(hub: AsyncHub, *, port: int = WEB_PORT, addr: str = "127.0.0.1",
                             consent: Any = None, allow_origins: Iterable[str] = (),
                             harmless_mtypes: Iterable[str] | None = DEFAULT_HARMLESS_MTYPES,
                             consent_timeout: float = 120.0,
                             idle_timeout: float = 120.0,
                             max_per_origin: int = DEFAULT_MAX_PER_ORIGIN) -> WebProfile:
    """Build a `WebProfile` for a running `AsyncHub` and add it (`AsyncHub.add_profile`).

    Parameters
    ----------
    hub : AsyncHub
        The hub; the Web Profile is served until it stops.
    port : int
        TCP port (21012, the standard's, by default; 0 picks a free one).
    addr : str
        Listening address; keep it loopback (non-loopback peers are refused anyway).
    consent : callable, WebProfileDialog or None
        Consent policy (see `sampflow.samp.hub.web_consent`), like astropy's
        ``web_profile_dialog``. None: `default_consent` with `allow_origins` (the
        allow-list, then a terminal prompt when stdin is a terminal, else refusal).
    allow_origins : iterable of str
        Origins consented to without asking, when `consent` is None.
    harmless_mtypes : iterable of str or None
        See `WebProfile`.
    consent_timeout, idle_timeout : float
        See `WebProfile`.
    max_per_origin : int
        See `WebProfile` (`DEFAULT_MAX_PER_ORIGIN` by default).

    Returns
    -------
    WebProfile
        Its ``port`` is the port bound; ``hub.profile_for(Profile.WEB)`` returns it too.

    Raises
    ------
    ValueError
        If the hub already serves the Web Profile.
    OSError
        If the port cannot be bound (another Web Profile hub runs, for example).
    """
    if consent is None:
        consent = default_consent(allow_origins, prompt_timeout=min(consent_timeout, 60.0))
    profile = WebProfile(hub.service, consent=consent, consent_timeout=consent_timeout,
                         harmless_mtypes=harmless_mtypes, idle_timeout=idle_timeout,
                         max_per_origin=max_per_origin, addr=addr, port=port)
    await hub.add_profile(profile)
    return profile
