"""sampflow's SAMP hub: a sans-I/O core (`core`, `registry`) and its transports.

As astropy's ``astropy.samp.hub`` module, this package exports `SAMPHubServer` and
`WebProfileDialog`.
"""

from ..web_profile import WebProfileDialog
from .sync import SAMPHubServer

__all__ = ["SAMPHubServer", "WebProfileDialog"]
