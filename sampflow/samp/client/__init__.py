"""sampflow's SAMP clients: `aio` (asyncio-native) and `sync` (astropy-compatible facade).

As astropy's ``astropy.samp.client`` module, this package exports `SAMPClient`.
"""

from .sync import SAMPClient

__all__ = ["SAMPClient"]
