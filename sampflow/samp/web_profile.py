"""astropy's ``astropy.samp.web_profile`` names, mapped onto sampflow's Web Profile.

sampflow's Web Profile transport is `sampflow.samp.hub.web` (SAMP 1.3 section 5), with
consent in `sampflow.samp.hub.web_consent`. This module holds what astropy-style code
imports: `WebProfileDialog`, the base class of a GUI consent dialog (astropy also exports it
from ``astropy.samp.hub`` and ``astropy.samp``), and the two cross-domain policy documents
the hub serves (section 5.4.1). Like astropy's module it exports nothing with ``*``.
"""

from __future__ import annotations

import queue
from typing import Any

from .hub.web_http import CLIENT_ACCESS_POLICY_XML, CROSS_DOMAIN_XML

__all__: list[str] = []

#: The Silverlight client-access policy document the Web Profile serves (section 5.4.1).
CLIENT_ACCESS_POLICY = CLIENT_ACCESS_POLICY_XML
#: The Flash cross-domain policy document the Web Profile serves (section 5.4.1).
CROSS_DOMAIN = CROSS_DOMAIN_XML


class WebProfileDialog:
    """Base class of a consent dialog for Web Profile registrations (section 5.4.2).

    Pass an **instance** to ``SAMPHubServer(web_profile=True, web_profile_dialog=...)``.
    A subclass adds:

    - ``show_dialog(samp_name, details, client, origin)``: ask the user about a web client
      (`samp_name` its declared name, `details` its identity map, `client` a
      ``(host, port)`` pair, `origin` the page's origin), then call `consent` or `reject`,
      at once or later from another GUI callback;
    - a GUI timer (or a thread) that calls `handle_queue` every fraction of a second.

    Subclasses need not call ``__init__``. The hub attaches its own request and answer
    queues (``queue_request``, ``queue_result``) when it starts; a request not answered in
    the hub's consent timeout counts as refused.

    Examples
    --------
    >>> class Yes(WebProfileDialog):
    ...     def show_dialog(self, samp_name, details, client, origin):
    ...         self.consent()
    >>> dialog = Yes()
    >>> dialog.queue_request.put(({"samp.name": "page"}, ("127.0.0.1", 0), "http://x.org"))
    >>> dialog.handle_queue()
    >>> dialog.queue_result.get_nowait()
    True
    """

    def __init__(self) -> None:
        self.queue_request: queue.Queue[Any] = queue.Queue()
        self.queue_result: queue.Queue[Any] = queue.Queue()

    def handle_queue(self) -> None:
        """Show the dialog for a waiting registration request, if there is one; never
        blocks."""
        requests = getattr(self, "queue_request", None)
        if requests is None:
            return
        try:
            details, client, origin = requests.get_nowait()
        except queue.Empty:
            return
        name = details.get("samp.name", "") if isinstance(details, dict) else ""
        self.show_dialog(name, details, client, origin)

    def show_dialog(self, samp_name: str, details: dict[str, Any], client: Any,
                    origin: str) -> None:
        """Ask the user; subclasses must implement it.

        Raises
        ------
        NotImplementedError
            Always, here.
        """
        raise NotImplementedError("a WebProfileDialog subclass must define show_dialog")

    def consent(self) -> None:
        """Accept the registration being asked about."""
        self._answer(True)

    def reject(self) -> None:
        """Refuse the registration being asked about."""
        self._answer(False)

    def _answer(self, allowed: bool) -> None:
        results = getattr(self, "queue_result", None)
        if results is None:
            self.queue_result = results = queue.Queue()
        results.put(allowed)
