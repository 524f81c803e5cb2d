"""astropy's ``astropy.samp.integrated_client``: `SAMPIntegratedClient`
(implemented in `sampflow.samp.client.sync`)."""

from __future__ import annotations

from .client.sync import SAMPIntegratedClient

__all__ = ["SAMPIntegratedClient"]
