"""What travels over NATS between linked hubs: subjects and signed JSON envelopes.

SAMP values are strings, lists and maps (section 3.3), so JSON carries them exactly. Each
payload is ``{"hub": origin, "body": ...}``; with a shared secret it is followed by an
HMAC-SHA256 of those bytes (``<json>\\n<hex digest>``), and a payload whose digest is missing or
wrong is refused. Without a secret (the NATS server's credentials protect the federation)
payloads are sent unsigned and only unsigned payloads are accepted.

Subjects, below a prefix (``sampflow.link`` by default):

- ``<prefix>.beat``: every hub's heartbeat ``{"instance", "version"}``, once a second;
- ``<prefix>.state``: a hub's client list, published whenever it changes;
- ``<prefix>.sync.<hub>``: request/reply, ask `hub` for its client list;
- ``<prefix>.bye``: a hub leaves;
- ``<prefix>.to.<hub>``: notifications to `hub`'s clients, and calls as request/reply; the
  signed body names `hub` too, so a payload replayed onto another hub's subject is dropped.

Not protected: replaying a captured payload onto its own subject again (no timestamps, so
that desktops need no synchronised clocks).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from typing import Any

__all__ = ["Codec", "EnvelopeError", "Subjects", "valid_hub_name"]

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def valid_hub_name(name: str) -> bool:
    """Whether `name` can name a linked hub (one NATS subject token).

    >>> valid_hub_name("desk3"), valid_hub_name("a.b"), valid_hub_name("")
    (True, False, False)
    """
    return bool(_NAME.match(name))


class EnvelopeError(ValueError):
    """A payload from the federation could not be trusted or decoded."""


class Codec:
    """Encodes and checks envelopes for one hub.

    Parameters
    ----------
    hub : str
        This hub's name (the ``hub`` of what it sends).
    secret : bytes or None
        The federation's shared secret; None when NATS credentials are the protection.

    Examples
    --------
    >>> a, b = Codec("a", b"s3cret"), Codec("b", b"s3cret")
    >>> b.decode(a.encode({"x": ["1"]}))
    ('a', {'x': ['1']})
    >>> Codec("c", b"wrong").decode(a.encode({}))
    Traceback (most recent call last):
    ...
    sampflow.samp.link.envelope.EnvelopeError: bad signature from a payload claiming hub 'a'
    """

    def __init__(self, hub: str, secret: bytes | None) -> None:
        self.hub = hub
        self._secret = secret

    def encode(self, body: Any) -> bytes:
        """The payload carrying `body` (JSON-serialisable) from this hub."""
        data = json.dumps({"hub": self.hub, "body": body}, separators=(",", ":")).encode()
        if self._secret is None:
            return data
        return data + b"\n" + hmac.new(self._secret, data, hashlib.sha256).hexdigest().encode()

    def decode(self, payload: bytes) -> tuple[str, Any]:
        """Check and decode `payload`.

        Returns
        -------
        (str, object)
            The origin hub's name and the body.

        Raises
        ------
        EnvelopeError
            If the payload is not JSON of the right shape, or its signature is missing or
            wrong.
        """
        data, sep, digest = payload.rpartition(b"\n")
        if not sep:
            data, digest = payload, b""
        try:
            envelope = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            raise EnvelopeError("payload is not JSON") from None
        if not isinstance(envelope, dict) or not isinstance(envelope.get("hub"), str):
            raise EnvelopeError("payload has no origin hub")
        hub = envelope["hub"]
        if self._secret is not None:
            want = hmac.new(self._secret, data, hashlib.sha256).hexdigest().encode()
            if not hmac.compare_digest(want, digest):
                raise EnvelopeError(f"bad signature from a payload claiming hub {hub!r}")
        elif digest:
            raise EnvelopeError(f"signed payload from {hub!r} but this hub has no secret")
        return hub, envelope.get("body")


class Subjects:
    """NATS subject names under `prefix`.

    >>> s = Subjects("sampflow.link")
    >>> s.to("desk3"), s.sync("desk3"), s.beat
    ('sampflow.link.to.desk3', 'sampflow.link.sync.desk3', 'sampflow.link.beat')
    """

    def __init__(self, prefix: str = "sampflow.link") -> None:
        self.prefix = prefix
        self.beat = f"{prefix}.beat"
        self.state = f"{prefix}.state"
        self.bye = f"{prefix}.bye"

    def to(self, hub: str) -> str:
        """Where messages for `hub`'s clients go."""
        return f"{self.prefix}.to.{hub}"

    def sync(self, hub: str) -> str:
        """Where `hub` answers requests for its client list."""
        return f"{self.prefix}.sync.{hub}"
