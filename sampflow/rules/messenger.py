"""The one interface through which the rules engine talks SAMP.

``sampflow.samp.client.aio.AsyncSAMPClient`` satisfies it; the unit tests use clients of the
real hub core wired in memory (``tests/unit/rules/memhub.py``). The engine installs its
handler as ``client.on_message``; the client calls it for every incoming notification or call
(hub events included) and, for a call, sends the returned response map with ``reply()``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, runtime_checkable

__all__ = ["MessageHandler", "Messenger", "error", "ok", "warning"]

#: ``async handler(kind, sender_id, msg_id, message) -> response | None``; ``kind`` is
#: ``"notification"`` or ``"call"``.
MessageHandler = Callable[[str, str, str | None, dict[str, Any]],
                          Awaitable[dict[str, Any] | None]]


@runtime_checkable
class Messenger(Protocol):
    """An asyncio SAMP client as the engine needs it."""

    public_id: str | None  # None only before registration
    hub_id: str | None
    on_message: MessageHandler | None

    async def declare_subscriptions(self, subscriptions: dict[str, dict[str, Any]]) -> None: ...

    async def get_registered_clients(self) -> list[str]: ...

    async def get_metadata(self, client_id: str) -> dict[str, Any]: ...

    async def get_subscriptions(self, client_id: str) -> dict[str, Any]: ...

    async def get_subscribed_clients(self, mtype: str) -> dict[str, dict[str, Any]]: ...

    async def notify(self, recipient_id: str, message: dict[str, Any]) -> None: ...

    async def notify_all(self, message: dict[str, Any]) -> list[str]: ...

    async def call_and_wait(self, recipient_id: str, message: dict[str, Any], timeout: float
                            ) -> dict[str, Any]: ...

    async def reply(self, msg_id: str, response: dict[str, Any]) -> None: ...


def ok(result: dict[str, Any] | None = None) -> dict[str, Any]:
    """A ``samp.ok`` response map."""
    return {"samp.status": "samp.ok", "samp.result": dict(result or {})}


def warning(text: str, result: dict[str, Any] | None = None) -> dict[str, Any]:
    """A ``samp.warning`` response map with ``samp.errortxt``."""
    return {"samp.status": "samp.warning", "samp.result": dict(result or {}),
            "samp.error": {"samp.errortxt": text}}


def error(text: str) -> dict[str, Any]:
    """A ``samp.error`` response map with ``samp.errortxt``."""
    return {"samp.status": "samp.error", "samp.error": {"samp.errortxt": text}}
