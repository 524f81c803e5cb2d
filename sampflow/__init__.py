"""sampflow: an embedded SAMP 1.3 hub and client, and a rules engine for astronomy desktops."""

__version__ = "0.1.0"
