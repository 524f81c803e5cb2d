"""What web clients may do: the MType restriction and the URL control (SAMP 1.3 section 5.4).

Both are plain, socket-free objects that the Web Profile transport plugs into the hub core:

`MTypeRestriction` is a `MessageFilter` (``core.message_filter``). A message from a web
client reaches a recipient only when the recipient's subscription annotation for that MType
says ``"x-samp.mostly-harmless": "1"``, or, when the annotation says nothing, when the MType
matches a list of MTypes known to be harmless (`DEFAULT_HARMLESS_MTYPES`). ``"0"`` always
refuses. This is the rule JSAMP's web hub applies; the key is described on the IVOA wiki
page *SampXSamp* ("Subscription Annotations").

`UrlControl` is a `MessageObserver` (``core.message_observers``). Section 5.4.3 lets a hub
offer a URL translator so that web pages can read resources their sandbox forbids, and asks
that it not become a way to read arbitrary local files. `UrlControl` records every URL that a
trusted (non-web) client mentions in a message or a response; the translator serves those
and nothing else.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

from ..types import mtype_matches
from .registry import ClientRecord, Profile

__all__ = [
    "DEFAULT_HARMLESS_MTYPES",
    "HARMLESS_KEY",
    "MTypeRestriction",
    "UrlControl",
    "iter_urls",
]

#: The subscription-annotation key a recipient uses to mark an MType safe ("1") or unsafe
#: ("0") for untrusted (web) senders.
HARMLESS_KEY = "x-samp.mostly-harmless"

#: MType patterns a web client may send when the recipient's annotation says nothing: they
#: load or point at data, and none runs code or reveals the user's environment.
DEFAULT_HARMLESS_MTYPES: tuple[str, ...] = (
    "samp.app.*",
    "samp.msg.progress",
    "table.*",
    "image.*",
    "coord.*",
    "spectrum.*",
    "bibcode.*",
    "voresource.*",
)

#: URL schemes the translator may serve.
TRANSLATABLE_SCHEMES = frozenset({"http", "https", "file", "ftp"})


class MTypeRestriction:
    """Keeps web clients to the MTypes their recipients consider harmless.

    Parameters
    ----------
    harmless : iterable of str
        MType patterns allowed when the recipient's annotation has no `HARMLESS_KEY`.
    previous : callable, optional
        A filter already installed on the core; consulted first.

    Examples
    --------
    >>> from sampflow.samp.hub.registry import Registry
    >>> reg = Registry()
    >>> web, desk = reg.new_client(Profile.WEB), reg.new_client(Profile.STANDARD)
    >>> desk.subscriptions = {"table.load.votable": {}, "script.run": {},
    ...                       "x.safe": {HARMLESS_KEY: "1"}}
    >>> allow = MTypeRestriction()
    >>> allow(web, desk, {"samp.mtype": "table.load.votable"}) is None
    True
    >>> allow(web, desk, {"samp.mtype": "script.run"})
    'web clients may not send script.run to c2 (not marked x-samp.mostly-harmless)'
    >>> allow(web, desk, {"samp.mtype": "x.safe"}) is None
    True
    >>> allow(desk, web, {"samp.mtype": "script.run"}) is None   # only web senders
    True
    """

    def __init__(self, harmless: Iterable[str] = DEFAULT_HARMLESS_MTYPES,
                 previous: Any = None) -> None:
        self.harmless = tuple(harmless)
        self.previous = previous

    def is_harmless(self, recipient: ClientRecord, mtype: str) -> bool:
        """Whether a web client may send `mtype` to `recipient`."""
        annotation = recipient.subscription_for(mtype)
        if isinstance(annotation, dict):
            flag = annotation.get(HARMLESS_KEY)
            if flag == "1":
                return True
            if flag == "0":
                return False
        return any(mtype_matches(pattern, mtype) for pattern in self.harmless)

    def __call__(self, sender: ClientRecord, recipient: ClientRecord,
                 message: dict[str, Any]) -> str | None:
        if self.previous is not None:
            reason = self.previous(sender, recipient, message)
            if reason is not None:
                return reason  # type: ignore[no-any-return]
        if sender.profile is not Profile.WEB:
            return None
        mtype = message.get("samp.mtype")
        if not isinstance(mtype, str) or self.is_harmless(recipient, mtype):
            return None
        return (f"web clients may not send {mtype} to {recipient.public_id} "
                f"(not marked {HARMLESS_KEY})")


def iter_urls(value: Any, depth: int = 0) -> Iterator[str]:
    """Every string in a SAMP value (nested maps and lists) that is a translatable URL.

    >>> list(iter_urls({"url": "file:///tmp/a.vot", "n": ["x", "http://h/t?x=1"]}))
    ['file:///tmp/a.vot', 'http://h/t?x=1']
    """
    if depth > 32:
        return
    if isinstance(value, str):
        head = value[:8].lower()
        if ":" in head and head.split(":", 1)[0] in TRANSLATABLE_SCHEMES:
            yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from iter_urls(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            yield from iter_urls(item, depth + 1)


def _key(url: str) -> str:
    """The form URLs are compared in: percent-decoded, ``file:/x`` read as ``file:///x``."""
    parts = urlsplit(unquote(url.strip()))
    path = parts.path
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{path}" + (
        f"?{parts.query}" if parts.query else "")


class UrlControl:
    """Remembers the URLs that trusted clients mentioned; the translator serves only those.

    Parameters
    ----------
    max_urls : int
        How many URLs to remember; the oldest are forgotten first.

    Examples
    --------
    >>> from sampflow.samp.hub.registry import Registry
    >>> reg = Registry()
    >>> web, desk = reg.new_client(Profile.WEB), reg.new_client(Profile.STANDARD)
    >>> urls = UrlControl()
    >>> urls(desk, {"samp.mtype": "table.load.votable",
    ...             "samp.params": {"url": "file:///tmp/t%201.vot"}})
    >>> urls(web, {"samp.mtype": "table.load.votable",
    ...            "samp.params": {"url": "file:///etc/passwd"}})
    >>> urls.allows("file:///tmp/t 1.vot"), urls.allows("file:///etc/passwd")
    (True, False)
    """

    def __init__(self, max_urls: int = 10000) -> None:
        self.max_urls = max_urls
        self._urls: OrderedDict[str, None] = OrderedDict()

    def offer(self, url: str) -> None:
        """Allow the translator to serve `url`."""
        key = _key(url)
        self._urls[key] = None
        self._urls.move_to_end(key)
        while len(self._urls) > self.max_urls:
            self._urls.popitem(last=False)

    def allows(self, url: str) -> bool:
        """Whether `url` was offered (compared after percent-decoding)."""
        return _key(url) in self._urls

    def __call__(self, sender: ClientRecord, message: dict[str, Any]) -> None:
        """The `MessageObserver`: learn the URLs in what a non-web client sent."""
        if sender.profile is Profile.WEB:
            return
        for url in iter_urls(message):
            self.offer(url)
