"""HTTP/1.1 for the Standard Profile's XML-RPC, lean enough for the hub's hot path.

SAMP's Standard Profile (SAMP 1.3 section 4.1) is one small XML-RPC POST per hub method and per
callback, on loopback. These modules move those POSTs and nothing else:

- `sampflow.samp.wire.server`: an `asyncio.Protocol` server; one handler call per request,
  answered with one ``write``; keep-alive, HTTP/1.0 and HTTP/1.1, ``Expect: 100-continue``,
  a body size bound, and header lines that end with a bare LF (SAO DS9's Tcl client);
- `sampflow.samp.wire.client`: a keep-alive connection pool for POSTs, with a timeout on every
  request and one retry when a kept-alive connection turns out to have been closed.

HTTP parsing is httptools' (llhttp, the parser of Node.js): these modules only frame requests
and responses around it. Measured against aiohttp's server and client on the same hub, this
roughly halves the hub's CPU time per relayed message (``benchmarks/PROFILE.md``); the Web
Profile, which needs CORS and long polls rather than speed, stays on aiohttp.
"""

from .client import HttpClient, HttpClientError, ServerDisconnected
from .server import Request, Response, serve

__all__ = ["HttpClient", "HttpClientError", "ServerDisconnected", "Request", "Response", "serve"]
