"""The Web Profile's HTTP front (SAMP 1.3 sections 5.2, 5.4.1): loopback, CORS, policy files.

`web_app` builds the aiohttp application a `~sampflow.samp.hub.web.WebProfile` serves:
only loopback peers with a loopback ``Host`` header are answered (no DNS rebinding); CORS
preflights are answered for well-formed origins (with ``Access-Control-Allow-Private-Network``
when asked); ``crossdomain.xml`` and ``clientaccesspolicy.xml`` are served for Flash and
Silverlight; POSTs go to the profile's XML-RPC handler, ``/translator/...`` GETs to its URL
translator. Nothing here knows SAMP methods or clients.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

__all__ = [
    "CLIENT_ACCESS_POLICY_XML",
    "CROSS_DOMAIN_XML",
    "Handler",
    "cors_reply",
    "is_loopback",
    "loopback_host",
    "request_origin",
    "web_app",
]

log = logging.getLogger("sampflow.hub.web")

XML = "text/xml"
_ORIGIN = re.compile(r"^(null|[a-z][a-z0-9+.-]*://[^\s/?#]{1,253})$", re.IGNORECASE)
_LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "[::1]", "::1"}

#: An aiohttp request handler.
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: Flash cross-domain policy (section 5.4.1): access from any domain; consent and origin
#: checks, not the policy file, are what protect the hub.
CROSS_DOMAIN_XML = """<?xml version="1.0"?>
<!DOCTYPE cross-domain-policy SYSTEM "http://www.adobe.com/xml/dtds/cross-domain-policy.dtd">
<cross-domain-policy>
  <site-control permitted-cross-domain-policies="master-only"/>
  <allow-access-from domain="*"/>
  <allow-http-request-headers-from domain="*" headers="Content-Type"/>
</cross-domain-policy>
"""

#: Silverlight client access policy (section 5.4.1), equivalent to `CROSS_DOMAIN_XML`.
CLIENT_ACCESS_POLICY_XML = """<?xml version="1.0" encoding="utf-8"?>
<access-policy>
  <cross-domain-access>
    <policy>
      <allow-from http-request-headers="Content-Type">
        <domain uri="*"/>
      </allow-from>
      <grant-to>
        <resource path="/" include-subpaths="true"/>
      </grant-to>
    </policy>
  </cross-domain-access>
</access-policy>
"""


def is_loopback(address: str | None) -> bool:
    """Whether `address` (a peer's IP address, maybe with a ``%zone``) is a loopback one.

    >>> is_loopback("127.0.0.1"), is_loopback("::1"), is_loopback("10.0.0.1"), is_loopback(None)
    (True, True, False, False)
    """
    if not address:
        return False
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def loopback_host(host: str) -> bool:
    """Whether a ``Host`` header (with or without a port) names the loopback interface.

    >>> loopback_host("localhost:21012"), loopback_host("[::1]:80"), loopback_host("evil.org")
    (True, True, False)
    """
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    if host.startswith("[") and "]" in host:
        name = host[: host.index("]") + 1]
    return name.lower() in _LOOPBACK_HOSTS or is_loopback(name.strip("[]"))


def request_origin(request: web.Request) -> str | None:
    """The request's ``Origin`` header: None when absent, ``""`` when malformed."""
    origin = request.headers.get("Origin")
    if origin is None:
        return None
    return origin if _ORIGIN.match(origin) else ""


def cors_reply(body: bytes, origin: str | None) -> web.Response:
    """An XML-RPC answer, readable by a page from `origin` when one is given (5.4.1)."""
    response = web.Response(body=body, content_type=XML, charset="utf-8")
    if origin:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Vary"] = "Origin"
    return response


@web.middleware
async def _loopback_only(request: web.Request, handler: Any) -> web.StreamResponse:
    if not is_loopback(request.remote):
        log.warning("refused a Web Profile request from non-loopback %s", request.remote)
        return web.Response(status=403, text="the SAMP Web Profile serves loopback only\n")
    if not loopback_host(request.host):
        return web.Response(status=403, text="Host must be a loopback name\n")
    response: web.StreamResponse = await handler(request)
    return response


async def _preflight(request: web.Request) -> web.Response:
    origin = request_origin(request)
    method = request.headers.get("Access-Control-Request-Method", "")
    if not origin or method not in ("POST", "GET"):
        return web.Response(status=403, text="not a valid CORS preflight\n")
    asked = {h.strip().lower() for h in
             request.headers.get("Access-Control-Request-Headers", "").split(",") if h.strip()}
    if not asked <= {"content-type"}:
        return web.Response(status=403, text="only Content-Type may be sent\n")
    headers = {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Methods": "POST, GET",
        "Access-Control-Allow-Headers": "Content-Type",
        "Access-Control-Max-Age": "600",
        "Vary": "Origin",
    }
    if request.headers.get("Access-Control-Request-Private-Network", "").lower() == "true":
        headers["Access-Control-Allow-Private-Network"] = "true"
    return web.Response(status=204, headers=headers)


def _policy_file(text: str) -> Handler:
    async def serve(request: web.Request) -> web.Response:
        return web.Response(text=text, content_type=XML)
    return serve


async def _info(request: web.Request) -> web.Response:
    return web.Response(text="sampflow SAMP hub: Web Profile XML-RPC; POST here.\n")


def web_app(*, max_body: int, xmlrpc: Handler, translator: Handler,
            on_shutdown: Callable[[web.Application], Awaitable[None]]) -> web.Application:
    """The Web Profile's aiohttp application.

    Parameters
    ----------
    max_body : int
        Largest request body the profile accepts, in bytes (aiohttp lets one byte more
        through, so that the profile can answer an oversize body with a fault).
    xmlrpc : callable
        Handler of every POST (the XML-RPC calls).
    translator : callable
        Handler of ``GET /translator/{token}`` (the URL translator, section 5.4.3).
    on_shutdown : callable
        Run when the application shuts down.

    Returns
    -------
    aiohttp.web.Application
    """
    app = web.Application(client_max_size=max_body + 1, middlewares=[_loopback_only],
                          handler_args={"handler_cancellation": True})
    app.router.add_route("OPTIONS", "/{tail:.*}", _preflight)
    app.router.add_get("/crossdomain.xml", _policy_file(CROSS_DOMAIN_XML))
    app.router.add_get("/clientaccesspolicy.xml", _policy_file(CLIENT_ACCESS_POLICY_XML))
    app.router.add_get("/translator/{token}", translator)
    app.router.add_post("/{tail:.*}", xmlrpc)
    app.router.add_get("/{tail:.*}", _info)
    app.on_shutdown.append(on_shutdown)
    return app
