"""What web clients may do: the MType restriction and the URL control (SAMP 1.3 section 5.4).

Both are plain, socket-free objects behind the Web Profile's hooks
(`sampflow.samp.hub.profiles`):

`MTypeRestriction` is a `MessageFilter` (`WebProfile.filter`). A message from a web
client reaches a recipient only when the recipient's subscription annotation for that MType
says ``"x-samp.mostly-harmless": "1"``, or, when the annotation says nothing, when the MType
matches a list of MTypes known to be harmless (`DEFAULT_HARMLESS_MTYPES`). ``"0"`` always
refuses. This is the rule JSAMP's web hub applies; the key is described on the IVOA wiki
page *SampXSamp* ("Subscription Annotations").

`UrlControl` is a `MessageObserver` (`WebProfile.observe`). Section 5.4.3 lets a hub
offer a URL translator so that web pages can read resources their sandbox forbids, and asks
that it not become a way to read arbitrary local files. `UrlControl` records who first
mentioned each URL: the translator serves the URLs a trusted (Standard Profile) client
mentioned before any web client did, and nothing else, whoever repeats a web page's URL.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from yarl import URL

from ..constants import SAFE_MTYPES
from ..types import mtype_matches
from .registry import ClientRecord, Profile

__all__ = [
    "DEFAULT_HARMLESS_MTYPES",
    "HARMLESS_KEY",
    "MTypeRestriction",
    "UrlControl",
    "file_path",
    "iter_urls",
    "url_key",
]

log = logging.getLogger("sampflow.hub.web")

#: The subscription-annotation key a recipient uses to mark an MType safe ("1") or unsafe
#: ("0") for untrusted (web) senders.
HARMLESS_KEY = "x-samp.mostly-harmless"

#: MType patterns a web client may send when the recipient's annotation says nothing: they
#: load or point at data, and none runs code or reveals the user's environment (the list is
#: `sampflow.samp.constants.SAFE_MTYPES`, astropy's name for it).
DEFAULT_HARMLESS_MTYPES: tuple[str, ...] = tuple(SAFE_MTYPES)

#: Nesting levels searched for URLs in what web clients send: deeper than what is searched
#: in what trusted clients send (32), and than XML-RPC requests may nest (`xmlrpc.MAX_DEPTH`).
TAINT_DEPTH = 256

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


def iter_urls(value: Any, max_depth: int = 32) -> Iterator[str]:
    """Every string in a SAMP value (nested maps and lists) that is a translatable URL.

    Parameters
    ----------
    value : object
        A SAMP value.
    max_depth : int
        Nesting levels to look into.

    Examples
    --------
    >>> list(iter_urls({"url": "file:///tmp/a.vot", "n": ["x", " http://h/t?x=1"]}))
    ['file:///tmp/a.vot', ' http://h/t?x=1']
    """
    found: list[str] = []
    _collect(value, max_depth, found)
    return iter(found)


def _collect(value: Any, depth: int, found: list[str], paths: bool = False) -> None:
    if isinstance(value, str):
        if ":" in value[:32]:
            head = value[:32].lstrip()[:8].lower()
            if head.split(":", 1)[0] in TRANSLATABLE_SCHEMES:
                found.append(value)
        elif paths and value.lstrip().startswith("/"):
            found.append("file://" + quote(value.strip()))
    elif depth > 0:
        if isinstance(value, dict):
            for item in value.values():
                _collect(item, depth - 1, found, paths)
        elif isinstance(value, (list, tuple)):
            for item in value:
                _collect(item, depth - 1, found, paths)


def url_key(url: str) -> str:
    """The form in which URLs are compared.

    A ``file:`` URL's key is the local path the translator would open (`file_path`: split
    first, then the path percent-decoded once), so ``.../secret%3F.vot`` and
    ``.../secret?.vot`` are different keys, and ``file:/x``, ``file:///x`` and
    ``file://localhost/x`` the same. Other URLs are normalised as RFC 3986 section 6.2.2 says
    (case of scheme and host, percent-encoding of unreserved characters, default port; by
    `yarl`), without decoding any delimiter; the fragment is dropped.

    >>> url_key("FILE://localhost/tmp/a%20b.vot"), url_key("file:/tmp/a%3F.vot?x")
    ('file:///tmp/a b.vot', 'file:///tmp/a?.vot')
    >>> url_key("http://Host:80/t%3Fx%7e?q=a b#frag"), url_key("http://host/t?x~")
    ('http://host/t%3Fx~?q=a+b', 'http://host/t?x~')
    """
    text = url.strip()
    path = file_path(text)
    if path is not None:
        return f"file://{path}"
    try:
        return str(URL(text).with_fragment(None))
    except (ValueError, TypeError):
        return text

def file_path(url: str) -> str | None:
    """The local path a ``file:`` URL names, as the translator opens it; None for another
    scheme or a remote host. The URL is split first, then the path percent-decoded once.

    >>> file_path("file:///tmp/secret%3F.vot"), file_path("file:///tmp/secret?.vot")
    ('/tmp/secret?.vot', '/tmp/secret')
    >>> file_path("file://localhost/a%2520b"), file_path("file://host/x"), file_path("http://h/")
    ('/a%20b', None, None)
    """
    parts = urlsplit(url.strip())
    if parts.scheme.lower() != "file" or parts.netloc.lower() not in ("", "localhost"):
        return None
    return unquote(parts.path)


class _Provenance:
    """A fixed-size, set-like memory of URL keys (a Bloom filter) that never forgets.

    Membership tests have no false negatives: a key once added is found for the hub's
    lifetime, however many keys are added after it. False positives grow with the number of
    keys (about 0.2 % after 500,000, 14 % after 2 million) and only ever make the translator
    refuse more.
    """

    BITS = 1 << 23  # 1 MiB
    WARN_AFTER = 1_000_000

    def __init__(self) -> None:
        self._bits = bytearray(self.BITS // 8)
        self.count = 0

    def _positions(self, key: str) -> list[int]:
        digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        return [int.from_bytes(digest[i:i + 4], "little") % self.BITS for i in range(0, 16, 4)]

    def add(self, key: str) -> None:
        for pos in self._positions(key):
            self._bits[pos >> 3] |= 1 << (pos & 7)
        self.count += 1
        if self.count == self.WARN_AFTER:
            log.warning("web clients have mentioned %d URLs; the URL translator will refuse "
                        "more of the URLs desktop clients mention from now on", self.count)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        return all(self._bits[pos >> 3] & (1 << (pos & 7)) for pos in self._positions(key))


class UrlControl:
    """Tracks who first mentioned each URL; the translator serves only what trusted clients did.

    A URL becomes translatable when a Standard Profile client (or the hub) mentions it in a
    message or a response *before any web client has*. A URL (or an absolute path) that a
    web client mentioned first (in a message, a response, its metadata or subscriptions)
    never becomes translatable, whoever repeats it later: a desktop tool or a rule that relays a
    web page's message must not turn the page's ``file:///etc/passwd`` into one it may read (the
    "confused deputy"). URLs are compared by `url_key`.

    Parameters
    ----------
    max_urls : int
        How many translatable URLs to remember; the oldest are forgotten first (they become
        untranslatable, never the other way round). What web clients mentioned is kept in a
        fixed-size memory that does not forget.

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
    >>> urls(desk, {"samp.mtype": "table.select.rowList",        # a relay repeats it
    ...             "samp.params": {"url": "file:///etc/passwd"}})
    >>> urls.allows("file:///etc/passwd")
    False
    """

    #: Profiles whose clients' URLs may be offered; every other profile's are web-like.
    TRUSTED = frozenset({Profile.STANDARD, Profile.HUB})

    def __init__(self, max_urls: int = 10000) -> None:
        self.max_urls = max_urls
        self._urls: OrderedDict[str, str] = OrderedDict()
        self._untrusted = _Provenance()

    def offer(self, url: str) -> bool:
        """Let the translator serve `url`, unless a web client mentioned it first.

        Returns
        -------
        bool
            Whether `url` is translatable now.
        """
        key = url_key(url)
        if key in self._urls:
            self._urls.move_to_end(key)
            return True
        if key in self._untrusted:
            return False
        self._urls[key] = url.strip()
        while len(self._urls) > self.max_urls:
            self._urls.popitem(last=False)
        return True

    def taint(self, value: Any) -> None:
        """Note the URLs in a SAMP value that came from a web client: unless already
        translatable, they never will be. Absolute paths count as ``file:`` URLs, so that a
        rule building a URL from a page's path does not make it translatable either."""
        found: list[str] = []
        _collect(value, TAINT_DEPTH, found, paths=True)
        for url in found:
            key = url_key(url)
            if key not in self._urls:
                self._untrusted.add(key)

    def lookup(self, url: str) -> str | None:
        """The URL as the trusted client first gave it, if `url` (compared by `url_key`) is
        translatable; else None. The translator fetches or opens this one, not `url`."""
        return self._urls.get(url_key(url))

    def allows(self, url: str) -> bool:
        """Whether `url` is translatable."""
        return url_key(url) in self._urls

    def __call__(self, sender: ClientRecord, message: dict[str, Any]) -> None:
        """The `MessageObserver`: learn the URLs in what a client sent, by its profile."""
        if sender.profile not in self.TRUSTED:
            self.taint(message)
            return
        for url in iter_urls(message):
            self.offer(url)
