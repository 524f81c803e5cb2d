"""pyvo's ``pyvo.samp.vo_helpers`` module path: the helpers, implemented in
`sampflow.samp.helpers` (sent as calls, each recipient's response returned)."""

from __future__ import annotations

from .helpers import (
    accessible_table,
    connection,
    find_client_id,
    send_image_to,
    send_product_to,
    send_spectrum_to,
    send_table_to,
)

__all__ = [
    "accessible_table",
    "connection",
    "find_client_id",
    "send_image_to",
    "send_product_to",
    "send_spectrum_to",
    "send_table_to",
]
