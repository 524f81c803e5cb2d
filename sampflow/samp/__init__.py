"""sampflow.samp: an embedded SAMP 1.3 implementation (hub, clients, helpers).

The names match `astropy.samp` and `pyvo.samp`, so code written for either runs on sampflow by
changing its import::

    from sampflow.samp import SAMPIntegratedClient, SAMPHubServer

MType wildcards in subscriptions match on atom boundaries (SAMP 1.3 section 3.2):
``table.*`` matches ``table.load.votable`` but not ``tablefoo.x``; ``*`` alone matches all.
"""

from .client.aio import AsyncSAMPClient
from .client.sync import SAMPClient, SAMPHubProxy, SAMPIntegratedClient
from .config import conf
from .constants import (
    SAMP_ICON,
    SAMP_STATUS_ERROR,
    SAMP_STATUS_OK,
    SAMP_STATUS_WARNING,
)
from .errors import (
    SAMPClientError,
    SAMPError,
    SAMPHubError,
    SAMPProxyError,
    SAMPWarning,
)
from .helpers import (
    accessible_table,
    connection,
    find_client_id,
    send_image_to,
    send_product_to,
    send_spectrum_to,
    send_table_to,
)
from .hub.server import AsyncHub, SAMPHubServer
from .xmlrpc import safe_xmlrpc_loads

__all__ = [
    "SAMP_ICON",
    "SAMP_STATUS_ERROR",
    "SAMP_STATUS_OK",
    "SAMP_STATUS_WARNING",
    "SAMPClientError",
    "SAMPError",
    "SAMPHubError",
    "SAMPProxyError",
    "SAMPWarning",
    "AsyncSAMPClient",
    "SAMPClient",
    "SAMPHubProxy",
    "SAMPIntegratedClient",
    "AsyncHub",
    "SAMPHubServer",
    "safe_xmlrpc_loads",
    "conf",
    "accessible_table",
    "connection",
    "find_client_id",
    "send_image_to",
    "send_product_to",
    "send_spectrum_to",
    "send_table_to",
]
