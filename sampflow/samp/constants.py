"""Constants of SAMP 1.3 used across sampflow."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable

__all__ = [
    "HUB_CLIENT_EVENT_MTYPES",
    "HUB_EVENT_MTYPES",
    "SAFE_MTYPES",
    "SAMP_ICON",
    "SAMP_METADATA_KEYS",
    "SAMP_PROFILE_VERSION",
    "SAMP_STATUS_ERROR",
    "SAMP_STATUS_OK",
    "SAMP_STATUS_WARNING",
    "WEB_PROFILE_PORT",
]

#: Response status values (SAMP 1.3 section 3.9).
SAMP_STATUS_OK = "samp.ok"
SAMP_STATUS_WARNING = "samp.warning"
SAMP_STATUS_ERROR = "samp.error"

#: The standard application metadata keys (section 3.6); other keys are free, and
#: ``samp.`` ones are reserved for the standard.
SAMP_METADATA_KEYS = (
    "samp.name",
    "samp.description.text",
    "samp.description.html",
    "samp.icon.url",
    "samp.documentation.url",
)

#: The profile version written to the lockfile (section 4.2.2).
SAMP_PROFILE_VERSION = "1.3"

#: The Web Profile's well-known port (section 5.2.1).
WEB_PROFILE_PORT = 21012

#: The hub's administrative messages about its clients (SAMP 1.3, hub administrative
#: MTypes): params ``id``, and ``metadata`` or ``subscriptions`` for the last two. A client
#: that keeps a table of the other clients (the rules engine's directory) subscribes to these.
HUB_CLIENT_EVENT_MTYPES = (
    "samp.hub.event.register",
    "samp.hub.event.unregister",
    "samp.hub.event.metadata",
    "samp.hub.event.subscriptions",
)

#: Every administrative MType the hub sends (SAMP 1.3, hub administrative MTypes): the client
#: events, ``samp.hub.event.shutdown`` (broadcast just before the hub exits) and
#: ``samp.hub.disconnect`` (sent to one client the hub is about to unregister, with a
#: ``reason``). Non-hub clients should not send them.
HUB_EVENT_MTYPES = (
    "samp.hub.event.shutdown",
    *HUB_CLIENT_EVENT_MTYPES,
    "samp.hub.disconnect",
)

#: MType patterns a Web Profile client may send when the recipient says nothing about them:
#: they load or point at data, and none runs code or reveals the user's environment
#: (astropy's name for the list; the hub's Web Profile policy,
#: `sampflow.samp.hub.web_policy.DEFAULT_HARMLESS_MTYPES`, is made from it).
SAFE_MTYPES = [
    "samp.app.*",
    "samp.msg.progress",
    "table.*",
    "image.*",
    "coord.*",
    "spectrum.*",
    "bibcode.*",
    "voresource.*",
]


def _png(width: int, height: int, pixel: Callable[[int, int], tuple[int, int, int, int]],
         ) -> bytes:
    """A small RGBA PNG (PNG specification: signature, IHDR, IDAT, IEND chunks)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    rows = b"".join(b"\x00" + b"".join(bytes(pixel(x, y)) for x in range(width))
                    for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b""))


def _icon_pixel(x: int, y: int) -> tuple[int, int, int, int]:
    # a blue disc with a white ring: sampflow's 16 x 16 icon
    r2 = (x - 7.5) ** 2 + (y - 7.5) ** 2
    if r2 > 56:
        return (0, 0, 0, 0)
    if 20 < r2 < 30:
        return (255, 255, 255, 255)
    return (30, 90, 200, 255)


#: A 16 x 16 PNG icon (bytes), like astropy's ``SAMP_ICON``; a client may serve it and
#: point ``samp.icon.url`` at it.
SAMP_ICON = _png(16, 16, _icon_pixel)
