"""Constants of SAMP 1.3 used across sampflow."""

from __future__ import annotations

__all__ = [
    "SAMP_STATUS_OK",
    "SAMP_STATUS_WARNING",
    "SAMP_STATUS_ERROR",
    "SAMP_PROFILE_VERSION",
    "WEB_PROFILE_PORT",
    "SAMP_ICON",
]

#: Response status values (SAMP 1.3 section 3.9).
SAMP_STATUS_OK = "samp.ok"
SAMP_STATUS_WARNING = "samp.warning"
SAMP_STATUS_ERROR = "samp.error"

#: The profile version written to the lockfile (section 4.2.2).
SAMP_PROFILE_VERSION = "1.3"

#: The Web Profile's well-known port (section 5.2.1).
WEB_PROFILE_PORT = 21012

#: A small icon URL clients may use in ``samp.icon.url`` (none is shipped; kept for astropy
#: compatibility, which exports this name).
SAMP_ICON = ""
