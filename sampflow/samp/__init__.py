"""sampflow.samp: an embedded SAMP 1.3 implementation (hub, clients, helpers).

The names match `astropy.samp` and `pyvo.samp`, so code written for either runs on sampflow by
changing its import::

    from sampflow.samp import SAMPIntegratedClient, SAMPHubServer

So do astropy's submodule paths (``sampflow.samp.integrated_client``, ``hub_proxy``,
``client``, ``hub``, ``errors``, ``utils``, ``constants``, ``web_profile``,
``standard_profile``, ``lockfile_helpers``, ``hub_script``). The deliberate differences are
listed, with their reasons, in docs/astropy-compat.md.

MType wildcards in subscriptions match on atom boundaries (SAMP 1.3 section 3.2):
``table.*`` matches ``table.load.votable`` but not ``tablefoo.x``; ``*`` alone matches all.
"""

# astropy's submodules are attributes of the package after ``import astropy.samp``: ours too
from . import client as client
from . import constants as constants
from . import errors as errors
from . import hub as hub
from . import hub_proxy as hub_proxy
from . import integrated_client as integrated_client
from . import lockfile_helpers as lockfile_helpers
from . import standard_profile as standard_profile
from . import utils as utils
from . import vo_helpers as vo_helpers
from . import web_profile as web_profile
from .client.aio import AsyncSAMPClient
from .client.sync import SAMPClient, SAMPHubProxy, SAMPIntegratedClient
from .config import Conf, conf
from .constants import (
    SAFE_MTYPES,
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
from .hub.server import AsyncHub
from .hub.sync import SAMPHubServer
from .utils import SAMPMsgReplierWrapper, SAMPXXEServerProxy, safe_xmlrpc_loads
from .web_profile import WebProfileDialog

__all__ = [
    "SAFE_MTYPES",
    "SAMP_ICON",
    "SAMP_STATUS_ERROR",
    "SAMP_STATUS_OK",
    "SAMP_STATUS_WARNING",
    "AsyncHub",
    "AsyncSAMPClient",
    "Conf",
    "SAMPClient",
    "SAMPClientError",
    "SAMPError",
    "SAMPHubError",
    "SAMPHubProxy",
    "SAMPHubServer",
    "SAMPIntegratedClient",
    "SAMPMsgReplierWrapper",
    "SAMPProxyError",
    "SAMPWarning",
    "SAMPXXEServerProxy",
    "WebProfileDialog",
    "accessible_table",
    "conf",
    "connection",
    "find_client_id",
    "safe_xmlrpc_loads",
    "send_image_to",
    "send_product_to",
    "send_spectrum_to",
    "send_table_to",
]
