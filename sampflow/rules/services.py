"""What rule actions may use of the engine, beyond the firing itself: one typed protocol.

An action gets an :class:`~sampflow.rules.actions.base.ActionContext`: the firing (rule, event,
namespace, trace record), the :class:`~sampflow.rules.actions.base.Outbox` through which all
SAMP traffic goes (recipients by name, the client directory, sends and calls, the per-recipient
lanes), and ``services``, a :class:`RuleServices`: the few engine-wide facts and registries an
action may consult. :class:`~sampflow.rules.engine.Engine` satisfies it; nothing else of the
engine is reachable from an action.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

__all__ = ["RuleServices", "TableLookup"]


class TableLookup(Protocol):
    """The tables the engine has seen loaded, as actions use them
    (:class:`~sampflow.rules.actions.tables.TableRegistry` is the implementation)."""

    def note_load(self, params: dict[str, Any]) -> None:
        """Record the params of a ``table.load.*`` message (``url``, ``table-id``)."""

    def url_for(self, table: str | None, url: str | None) -> str | None:
        """The URL of a table given its ``table-id`` or URL; None if never seen."""

    def id_for(self, url: str) -> str | None:
        """A ``table-id`` other than the URL itself under which `url` was loaded."""

    async def position(self, url: str, row: int) -> tuple[float, float]:
        """RA and Dec in degrees of `row` (0-based) of the table at `url`."""


class RuleServices(Protocol):
    """The engine as rule actions see it.

    Attributes
    ----------
    ready : asyncio.Event
        Set while the engine can send (connected to a hub, or a dry run without one); cleared
        when the hub goes away. A held send waits on it for the hub to come back.
    tables : TableLookup
        Tables seen in ``table.load.*`` messages (received or sent), by ``table-id`` and URL:
        ``point_at``, ``highlight_row`` and ``select_rows`` look them up, ``send_file`` records
        the tables it sends.
    allow_exec : bool
        Whether ``exec`` actions may run (``sampflow run --allow-exec``).
    """

    @property
    def ready(self) -> asyncio.Event: ...

    @property
    def tables(self) -> TableLookup: ...

    @property
    def allow_exec(self) -> bool: ...
