"""Standard Profile hub discovery: the lockfile (SAMP 1.3 sections 4.2.2 and 4.3).

The lockfile is found through the ``SAMP_HUB`` environment variable when it holds a
``std-lockurl:`` URL, otherwise it is ``~/.samp``. It holds ``key=value`` lines; ``#`` starts
a comment line. sampflow writes it atomically with mode 0600 from the first byte, never
replaces the lockfile of a live hub, and removes it on stop only if it is still its own.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from .constants import SAMP_PROFILE_VERSION
from .errors import SAMPHubError

__all__ = [
    "SAMP_HUB_ENV",
    "STD_LOCKURL_PREFIX",
    "default_lockfile_path",
    "lockfile_location",
    "parse_lockfile",
    "read_lockfile",
    "format_lockfile",
    "create_lockfile",
    "remove_lockfile_if_ours",
    "LockfileExists",
]

SAMP_HUB_ENV = "SAMP_HUB"
STD_LOCKURL_PREFIX = "std-lockurl:"


class LockfileExists(SAMPHubError):
    """The lockfile is already there (another hub may own it)."""


def default_lockfile_path() -> Path:
    """``~/.samp``, the Standard Profile's default lockfile (section 4.3)."""
    return Path(os.path.expanduser("~")) / ".samp"


def lockfile_location(env: Mapping[str, str] | None = None) -> str:
    """Where the Standard Profile lockfile is, as a local path or a URL (section 4.3).

    Parameters
    ----------
    env : dict, optional
        The environment to read ``SAMP_HUB`` from; `os.environ` when omitted.

    Returns
    -------
    str
        A filesystem path, or a URL (``file:`` or ``http:``) from ``SAMP_HUB``.

    Raises
    ------
    SAMPHubError
        If ``SAMP_HUB`` is set to something other than a ``std-lockurl:`` URL (for example a
        Web Profile ``web-appname:`` value, which a Standard Profile client cannot use).
    """
    source: Mapping[str, str] = os.environ if env is None else env
    value = source.get(SAMP_HUB_ENV, "").strip()
    if not value:
        return str(default_lockfile_path())
    if value.startswith(STD_LOCKURL_PREFIX):
        url = value[len(STD_LOCKURL_PREFIX):]
        if url.startswith("file:"):
            return urllib.request.url2pathname(urllib.parse.urlparse(url).path)
        return url
    raise SAMPHubError(f"{SAMP_HUB_ENV}={value!r} is not a std-lockurl: value")


def parse_lockfile(text: str) -> dict[str, str]:
    """Parse lockfile text into a dict (section 4.2.2), tolerantly.

    Blank lines and ``#`` comments are skipped; a value may contain ``=``; lines without
    ``=`` are ignored; surrounding white space is stripped.

    Examples
    --------
    >>> parse_lockfile("# hub\\nsamp.secret=a=b\\n\\nsamp.hub.xmlrpc.url = http://x/\\nodd")
    {'samp.secret': 'a=b', 'samp.hub.xmlrpc.url': 'http://x/'}
    """
    params: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        params[key.strip()] = value.strip()
    return params


def read_lockfile(location: str | os.PathLike[str]) -> dict[str, str]:
    """Read and parse the lockfile at `location` (a path or an http/file URL).

    Returns
    -------
    dict
        At least ``samp.secret`` and ``samp.hub.xmlrpc.url``.

    Raises
    ------
    SAMPHubError
        If the lockfile cannot be read, or lacks the two required keys.
    """
    loc = os.fspath(location)
    try:
        if loc.startswith(("http:", "https:")):
            with urllib.request.urlopen(loc, timeout=5) as response:  # noqa: S310 (SAMP_HUB URL)
                text = response.read(1 << 20).decode("utf-8", "replace")
        else:
            text = Path(loc).read_text("utf-8", "replace")
    except OSError as exc:
        raise SAMPHubError(f"no SAMP hub lockfile at {loc}: {exc}") from None
    params = parse_lockfile(text)
    missing = [k for k in ("samp.secret", "samp.hub.xmlrpc.url") if k not in params]
    if missing:
        raise SAMPHubError(f"lockfile {loc} lacks {', '.join(missing)}")
    return params


def format_lockfile(params: dict[str, str]) -> str:
    """Lockfile text for `params`, with a header comment and the profile version."""
    lines = [
        "# SAMP Standard Profile lockfile written by sampflow",
        "# https://www.ivoa.net/documents/SAMP/",
    ]
    merged = {"samp.profile.version": SAMP_PROFILE_VERSION, **params}
    lines += [f"{key}={value}" for key, value in merged.items()]
    return "\n".join(lines) + "\n"


def create_lockfile(path: str | os.PathLike[str], params: dict[str, str]) -> None:
    """Create the lockfile at `path` atomically, mode 0600, failing if it exists.

    The text is written to a private temporary file in the same folder, which is then
    hard-linked to `path`: the link fails if `path` exists, and readers never see a
    partial lockfile.

    Raises
    ------
    LockfileExists
        If `path` already exists.
    OSError
        If the folder is not writable.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".samp-", dir=target.parent)  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(format_lockfile(params))
        try:
            os.link(tmp, target)
        except FileExistsError:
            raise LockfileExists(f"lockfile {target} already exists") from None
    finally:
        os.unlink(tmp)


def remove_lockfile_if_ours(path: str | os.PathLike[str], secret: str) -> bool:
    """Remove the lockfile at `path` if it still holds `secret`.

    Returns
    -------
    bool
        Whether a lockfile was removed.
    """
    try:
        params = parse_lockfile(Path(path).read_text("utf-8", "replace"))
    except OSError:
        return False
    if not secrets.compare_digest(params.get("samp.secret", ""), secret):
        return False
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True
