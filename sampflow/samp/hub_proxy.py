"""astropy's ``astropy.samp.hub_proxy``: `SAMPHubProxy`
(implemented in `sampflow.samp.client.proxy`)."""

from __future__ import annotations

from .client.proxy import SAMPHubProxy

__all__ = ["SAMPHubProxy"]
