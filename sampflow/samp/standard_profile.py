"""astropy's ``astropy.samp.standard_profile`` module path.

astropy's module exports nothing (its ``__all__`` is empty); it holds the socketserver
classes of its threaded XML-RPC server. sampflow's Standard Profile (SAMP 1.3 section 4)
is `sampflow.samp.hub.standard` over the asyncio HTTP transport `sampflow.samp.wire`; no
class of it is meant for subclassing. The module exists so that imports of the path work.
"""

from __future__ import annotations

from .constants import SAMP_ICON  # noqa: F401 (astropy's module has this name too)

__all__: list[str] = []
