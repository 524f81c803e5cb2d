"""File facts: what a file is (image, table or neither), its FITS header values, size and time.

Rules look at watched files (``file.kind``, ``header(...)``) and ``send_file`` picks an MType
from the content. Files come from anywhere, so looking at one is bounded and never happens on
the event loop:

* only regular files are opened: ``lstat`` first (a FIFO, a device, a socket, a symbolic link
  or a folder is reported with a reason, never opened), then ``open`` with ``O_NONBLOCK`` and
  ``O_NOFOLLOW``, and ``fstat`` checks it is still the same regular file;
* only headers are read, never FITS data units: after each header the data are skipped with a
  seek (plain files) or, for gzip and bzip2, by decompressing within a byte budget; at most
  :data:`MAX_HDUS` headers, :data:`MAX_HEADER_BYTES` of header text, :data:`MAX_READ_BYTES`
  read from the disk and :data:`MAX_DECOMPRESSED_BYTES` decompressed;
* a VOTable is recognised by its root element within the first :data:`SNIFF_BYTES`;
* the work runs in a small pool of daemon threads (:mod:`~sampflow.rules.offload`), so a
  slow file system never starves the default executor and cannot keep the process from
  exiting, and each look is given :data:`TIMEOUT` seconds.

Results are cached per ``(path, size, mtime_ns, inode)``, so two rules looking at one file
(and then ``send_file``) read it once.

The API is :func:`facts_for` (``await facts_for(path) -> FileFacts``) and :func:`read_facts`
(the synchronous, bounded reader itself, for worker threads); :func:`offload` (any other small
blocking call in the same pool) is re-exported from :mod:`~sampflow.rules.offload`. This
module imports nothing else of sampflow's but those two modules and
:mod:`~sampflow.rules.astropy_warnings` (astropy's warnings about a file are kept in
:attr:`FileFacts.warnings` for the file's log line), so both :mod:`~sampflow.rules.expr` and
the actions can use it.
"""

from __future__ import annotations

import asyncio
import bz2
import gzip
import os
import re
import stat
import threading
import types
import zlib
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from . import astropy_warnings
from .offload import offload

__all__ = [
    "MAX_DECOMPRESSED_BYTES",
    "MAX_HDUS",
    "MAX_HEADER_BYTES",
    "MAX_READ_BYTES",
    "SNIFF_BYTES",
    "TIMEOUT",
    "FileFacts",
    "facts_for",
    "offload",
    "read_facts",
]

#: FITS headers read per file, at most.
MAX_HDUS = 8
#: Header text read per file (all headers together), in bytes.
MAX_HEADER_BYTES = 1024 * 1024
#: Bytes read from the disk per file, at most (compressed bytes for a compressed file).
MAX_READ_BYTES = 4 * 1024 * 1024
#: Bytes decompressed per file, at most (to reach the headers after a data unit).
MAX_DECOMPRESSED_BYTES = 16 * 1024 * 1024
#: Bytes looked at for a VOTable's root element.
SNIFF_BYTES = 64 * 1024
#: Seconds one look may take before it is given up (the file counts as unreadable).
TIMEOUT = 10.0

_BLOCK = 2880
_CARD = 80
_GZIP = b"\x1f\x8b"
_BZIP = b"BZh"
_END = re.compile(rb"END {77}")

_MTYPES = {"image": "image.load.fits", "table": "table.load.fits"}


@dataclass(frozen=True, slots=True, eq=False)
class FileFacts:
    """What is known about one file, as rules see it.

    Parameters
    ----------
    path : str
        The path looked at (absolute).
    mtype : str or None
        The MType that loads it: ``image.load.fits``, ``table.load.fits``,
        ``table.load.votable``, or None.
    reason : str or None
        Why `mtype` is None (not a regular file, not FITS nor VOTable, timed out, ...).
    size : int
        Size in bytes; -1 when the file could not be looked at.
    mtime_ns : int
        Modification time in nanoseconds; 0 when unknown.
    url : str
        ``file://`` URL of the file (its real path).
    headers : mapping of str to value
        FITS keywords of the first headers, upper case; the primary header's value wins over
        an extension's. Empty when the file is not FITS.
    bytes_read : int
        Bytes read from the disk to find all this.
    warnings : tuple of str
        What astropy warned about while reading the headers, and the cards it could not parse
        (short text, at most :data:`~sampflow.rules.astropy_warnings.MAX_NOTES` and a count);
        reported on the file's log line, never printed bare.
    """

    path: str
    mtype: str | None
    reason: str | None
    size: int = -1
    mtime_ns: int = 0
    url: str = ""
    headers: Mapping[str, Any] = field(default_factory=lambda: types.MappingProxyType({}))
    bytes_read: int = 0
    warnings: tuple[str, ...] = ()

    @property
    def kind(self) -> str | None:
        """``"image"``, ``"table"`` (a FITS table or a VOTable) or None."""
        if self.mtype is None:
            return None
        return "image" if self.mtype.startswith("image.") else "table"

    @classmethod
    def unknown(cls, path: str, reason: str) -> FileFacts:
        """Facts of a file that could not be looked at."""
        return cls(path, None, reason, url=_url(path))


def _url(path: str) -> str:
    return Path(os.path.abspath(path)).as_uri()


# ---------------------------------------------------------------------------------- reading

class _Budget:
    """A binary file read through a byte budget (what was read is counted)."""

    def __init__(self, raw: BinaryIO, limit: int) -> None:
        self.raw = raw
        self.limit = limit
        self.used = 0

    def read(self, n: int = -1) -> bytes:
        left = self.limit - self.used
        if left <= 0:
            raise _Exhausted("read budget")
        if n is None or n < 0 or n > left:
            n = left
        data = self.raw.read(n)
        self.used += len(data)
        return data

    def readinto(self, b: Any) -> int:  # used by gzip / bz2
        data = self.read(len(b))
        b[:len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    @property
    def closed(self) -> bool:
        return self.raw.closed

    def close(self) -> None:  # the caller closes the raw file
        pass

    def flush(self) -> None:
        pass


class _Exhausted(Exception):
    """A byte budget ran out."""


class _NotFits(Exception):
    """The bytes are not a FITS header."""


def _read_exact(f: Any, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        data = f.read(n - got)
        if not data:
            break
        chunks.append(data)
        got += len(data)
    return b"".join(chunks)


def _read_header(f: Any, budget: list[int], first: bytes) -> bytes | None:
    """One FITS header's bytes (up to its END card), or None at the end of the file or when
    what follows is not a header starting with the keyword `first`."""
    blocks: list[bytes] = []
    while True:
        if budget[0] < _BLOCK:
            raise _Exhausted("header bytes")
        block = _read_exact(f, _BLOCK)
        if not block:
            if blocks:
                raise _NotFits("the file ends inside a header")
            return None
        if len(block) < _BLOCK or not (blocks or block.startswith(first)):
            if not blocks:
                return None  # trailing bytes after the last data unit
            raise _NotFits("the file ends inside a header")
        budget[0] -= _BLOCK
        blocks.append(block)
        for i in range(0, _BLOCK, _CARD):
            if _END.fullmatch(block, i, i + _CARD):
                return b"".join(blocks)


def _cards(data: bytes, notes: list[str]) -> dict[str, Any]:
    """The keywords of one header; astropy's warnings and the cards it cannot parse are
    appended to `notes` (they end up on the file's log line)."""
    from astropy.io import fits

    out: dict[str, Any] = {}
    with astropy_warnings.collect(notes):
        try:
            header = fits.Header.fromstring(data.decode("ascii", "replace"))
        except Exception as exc:
            raise _NotFits(f"bad header: {exc}") from None
        for card in header.cards:
            try:
                key, value = card.keyword, card.value
            except Exception:
                bad = f"unparsable card {card.keyword or card.image[:8].strip()!r}"
                if bad not in notes:
                    notes.append(bad)
                continue
            if key and key not in ("COMMENT", "HISTORY", "END"):
                out.setdefault(key.upper(), value)
    return out


def _int(cards: Mapping[str, Any], key: str, default: int = 0) -> int:
    value = cards.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        if key == "BITPIX" and isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _NotFits(f"bad {key}")
    return value


def _data_size(cards: Mapping[str, Any]) -> int:
    """Bytes of the data unit after a header (padded to whole blocks); FITS 4.0 section 4.4.1."""
    bitpix = abs(_int(cards, "BITPIX"))
    if bitpix not in (8, 16, 32, 64):
        raise _NotFits(f"BITPIX {bitpix}")
    naxis = _int(cards, "NAXIS")
    if naxis == 0:
        return 0
    axes = [_int(cards, f"NAXIS{i}") for i in range(1, naxis + 1)]
    if cards.get("GROUPS") is True and axes and axes[0] == 0:
        axes = axes[1:]  # random groups
    count = 1
    for n in axes:
        count *= n
    size = bitpix // 8 * _int(cards, "GCOUNT", 1) * (_int(cards, "PCOUNT", 0) + count)
    return -(-size // _BLOCK) * _BLOCK


def _hdu_kind(cards: Mapping[str, Any]) -> str | None:
    """``image``, ``table`` or None (no data here) for one HDU."""
    xtension = str(cards.get("XTENSION", "")).strip().upper()
    if xtension in ("BINTABLE", "TABLE", "A3DTABLE"):
        return "image" if cards.get("ZIMAGE") is True else "table"
    naxis = cards.get("NAXIS", 0)
    if isinstance(naxis, int) and naxis > 0 and xtension in ("", "IMAGE", "IUEIMAGE") and all(
            isinstance(cards.get(f"NAXIS{i}"), int) and cards[f"NAXIS{i}"] > 0
            for i in range(1, naxis + 1)):
        return "image"
    return None


def _skip(f: Any, n: int, seekable: bool, size: int) -> bool:
    """Skip `n` bytes of data; False when that reaches the end of the file."""
    if n == 0:
        return True
    if seekable:
        pos = f.tell() + n
        if pos >= size:
            return False
        f.seek(pos)
        return True
    while n > 0:
        data = f.read(min(n, 1 << 20))
        if not data:
            return False
        n -= len(data)
    return True


def _fits(f: Any, seekable: bool, size: int, notes: list[str]
          ) -> tuple[str | None, dict[str, Any], str | None]:
    """Read FITS headers from `f`: (kind, cards, reason)."""
    budget = [MAX_HEADER_BYTES]
    cards: dict[str, Any] = {}
    kind: str | None = None
    for index in range(MAX_HDUS):
        try:
            data = _read_header(f, budget, b"XTENSION=" if index else b"SIMPLE  =")
        except (_NotFits, _Exhausted) as exc:
            if index == 0:
                raise _NotFits(str(exc)) from None
            break
        if data is None:
            break
        hdu = _cards(data, notes)
        if index == 0 and hdu.get("SIMPLE") is not True:
            raise _NotFits("no SIMPLE = T card")
        for key, value in hdu.items():
            cards.setdefault(key, value)
        if kind is None:
            kind = _hdu_kind(hdu)
        try:
            if not _skip(f, _data_size(hdu), seekable, size):
                break
        except (_NotFits, _Exhausted, OSError, EOFError):
            break
    reason = None if kind else "a FITS file with neither an image nor a table"
    return kind, cards, reason


_XML_PROLOG = re.compile(
    r"\s*(?:<\?.*?\?>\s*|<!--.*?-->\s*|<!DOCTYPE(?:[^\[>]|\[.*?\])*>\s*)*", re.DOTALL)
_ROOT = re.compile(r"<(?:[A-Za-z_][\w.-]*:)?([A-Za-z_][\w.-]*)[\s/>]")


def _is_votable(head: bytes) -> bool:
    """Whether `head` starts an XML document whose root element is ``VOTABLE``."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = head.decode("utf-16", "replace")
    else:
        text = head.removeprefix(b"\xef\xbb\xbf").decode("utf-8", "replace")
    m = _XML_PROLOG.match(text)
    root = _ROOT.match(text, m.end() if m else 0)
    return root is not None and root.group(1) == "VOTABLE"


class _Prefixed:
    """A non-seekable stream with bytes already read put back in front."""

    def __init__(self, prefix: bytes, f: Any) -> None:
        self._prefix = prefix
        self._f = f

    def read(self, n: int = -1) -> bytes:
        if self._prefix:
            out, self._prefix = self._prefix[:n], self._prefix[n:]
            return out
        data: bytes = self._f.read(n)
        return data


def _look(f: Any, seekable: bool, size: int, notes: list[str]
          ) -> tuple[str | None, dict[str, Any], str | None]:
    """(mtype, FITS cards, reason) of the content of `f`."""
    head = _read_exact(f, _CARD)
    if seekable:
        f.seek(0)
    else:
        f = _Prefixed(head, f)
    if head.startswith(b"SIMPLE  ="):
        try:
            kind, cards, reason = _fits(f, seekable, size, notes)
        except _NotFits as exc:
            return None, {}, f"not a valid FITS file ({exc})"
        return (_MTYPES[kind] if kind else None), cards, reason
    if _is_votable(_read_exact(f, SNIFF_BYTES)):
        return "table.load.votable", {}, None
    return None, {}, "not a FITS image, FITS table or VOTable"


def read_facts(path: str) -> FileFacts:
    """Look at `path`, bounded in bytes and never blocking on a non-regular file.

    This is the blocking part of :func:`facts_for` (call it from a worker thread).

    Parameters
    ----------
    path : str
        The file (absolute or relative to the working folder); a symbolic link is not
        followed.

    Returns
    -------
    FileFacts
        Never raises for a bad file: `FileFacts.reason` says what is wrong.
    """
    path = os.path.abspath(path)
    try:
        st = os.lstat(path)
    except OSError as exc:
        return FileFacts.unknown(path, f"cannot look at it: {exc.strerror or exc}")
    if not stat.S_ISREG(st.st_mode):
        return FileFacts(path, None, f"not a regular file ({_what(st.st_mode)}); not opened",
                         st.st_size, st.st_mtime_ns, _url(path))
    key = (path, st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev)
    cached = _CACHE.get(key)
    if cached is not None:
        return cached
    facts = _read_regular(path, st)
    _CACHE.put(key, facts)
    return facts


def _what(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISLNK, "a symbolic link"),
                       (stat.S_ISDIR, "a folder"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a plain file"


def _read_regular(path: str, st: os.stat_result) -> FileFacts:
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(
        os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        return FileFacts(path, None, f"cannot open it: {exc.strerror or exc}", st.st_size,
                         st.st_mtime_ns, _url(path))
    with open(fd, "rb", buffering=0) as raw:
        fst = os.fstat(fd)
        if not stat.S_ISREG(fst.st_mode) or (fst.st_ino, fst.st_dev) != (st.st_ino, st.st_dev):
            return FileFacts(path, None, "it was replaced while being looked at", st.st_size,
                             st.st_mtime_ns, _url(path))
        url = Path(os.path.realpath(path)).as_uri()
        budget = _Budget(raw, MAX_READ_BYTES)
        notes: list[str] = []
        mtype: str | None
        try:
            magic = budget.read(3)
            raw.seek(0)
            if magic.startswith((_GZIP, _BZIP)):
                source: Any = budget
                stream: Any = (gzip.GzipFile(fileobj=source, mode="rb")
                               if magic.startswith(_GZIP) else bz2.BZ2File(source, "rb"))
                mtype, cards, reason = _look(_Budget(stream, MAX_DECOMPRESSED_BYTES), False, -1,
                                             notes)
            else:
                mtype, cards, reason = _look(_Seekable(budget, raw), True, fst.st_size, notes)
        except _Exhausted as exc:
            mtype, cards, reason = None, {}, f"gave up: the {exc} limit was reached"
        except (OSError, EOFError, zlib.error, ValueError) as exc:
            mtype, cards, reason = None, {}, f"cannot read it: {exc}"
        return FileFacts(path, mtype, reason, fst.st_size, fst.st_mtime_ns, url,
                         types.MappingProxyType(cards), budget.used,
                         astropy_warnings.capped(notes))


class _Seekable:
    """A budgeted plain file that can also seek (skipping data costs no reads)."""

    def __init__(self, budget: _Budget, raw: BinaryIO) -> None:
        self._budget = budget
        self._raw = raw

    def read(self, n: int = -1) -> bytes:
        return self._budget.read(n)

    def tell(self) -> int:
        return self._raw.tell()

    def seek(self, pos: int) -> None:
        self._raw.seek(pos)


class _Cache:
    """A small thread-safe LRU of facts by ``(path, size, mtime_ns, inode, device)``."""

    def __init__(self, size: int = 1024) -> None:
        self._items: OrderedDict[tuple[Any, ...], FileFacts] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> FileFacts | None:
        with self._lock:
            facts = self._items.get(key)
            if facts is not None:
                self._items.move_to_end(key)
            return facts

    def put(self, key: tuple[Any, ...], facts: FileFacts) -> None:
        with self._lock:
            self._items[key] = facts
            while len(self._items) > self._size:
                self._items.popitem(last=False)


_CACHE = _Cache()


_INFLIGHT: dict[tuple[int, str], asyncio.Future[FileFacts]] = {}


async def facts_for(path: str, *, timeout: float = TIMEOUT) -> FileFacts:
    """The facts of `path`, looked at off the event loop (see the module docstring).

    Concurrent requests for one path share one look; results are cached per
    ``(path, size, mtime_ns)``.

    Parameters
    ----------
    path : str
        The file; a symbolic link is not followed.
    timeout : float
        Seconds to wait; after that the facts say it timed out (and are not cached).

    Returns
    -------
    FileFacts
        Never raises for a bad or slow file.
    """
    path = os.path.abspath(path)  # noqa: ASYNC240 -- string work and getcwd(); no file is touched
    key = (id(asyncio.get_running_loop()), path)
    running = _INFLIGHT.get(key)
    if running is None:
        running = asyncio.ensure_future(_look_off_loop(path, timeout))
        _INFLIGHT[key] = running
        running.add_done_callback(lambda _: _INFLIGHT.pop(key, None))
    return await asyncio.shield(running)


async def _look_off_loop(path: str, timeout: float) -> FileFacts:
    try:
        return await offload(read_facts, path, timeout=timeout)
    except TimeoutError:
        return FileFacts.unknown(path, f"looking at it took longer than {timeout:g} s")
    except Exception as exc:  # a bug in the reader must not stop the engine
        return FileFacts.unknown(path, f"cannot look at it: {exc!r}")
