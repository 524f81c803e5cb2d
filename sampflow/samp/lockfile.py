"""Standard Profile hub discovery: the lockfile (SAMP 1.3 sections 4.2.2 and 4.3).

The lockfile is found through the ``SAMP_HUB`` environment variable when it holds a
``std-lockurl:`` URL, otherwise it is ``~/.samp``. It holds ``key=value`` lines; ``#`` starts
a comment line. sampflow writes it atomically with mode 0600 from the first byte, never
replaces the lockfile of a live hub, and removes it on stop only if it is still its own.

What sits at the lockfile's path is not trusted:

- only a regular file (or a link to one) is ever opened, without blocking and for at most
  `MAX_LOCKFILE_BYTES`; a folder, a dangling link, a FIFO or a device is a `LockfileError`
  with a message that says so;
- a hub replaces only a stale file that parses as a SAMP lockfile (it has ``samp.secret``
  and ``samp.hub.xmlrpc.url``): anything else (``SAMP_HUB`` pointing at ``thesis.tex``, say)
  is a `LockfileError`, and the file is left as it is;
- a client refuses (`UntrustedLockfile`) a lockfile owned by another user or writable by
  everyone, and one whose ``samp.hub.xmlrpc.url`` is not on this machine: the lockfile is
  the key to the user's desktop, and SAMP 1.3 section 4.2 has it readable by its owner only
  and the hub on the local host. ``SAMPFLOW_TRUST_LOCKFILE=1`` (`TRUST_ENV`) or
  ``read_lockfile(..., trust=True)`` connects anyway.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import secrets
import socket
import stat
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
    "TRUST_ENV",
    "MAX_LOCKFILE_BYTES",
    "REQUIRED_KEYS",
    "default_lockfile_path",
    "lockfile_location",
    "parse_lockfile",
    "read_lockfile",
    "read_lockfile_unchecked",
    "read_local_lockfile",
    "is_samp_lockfile",
    "is_local_url",
    "format_lockfile",
    "create_lockfile",
    "remove_lockfile_if_ours",
    "LockfileExists",
    "LockfileError",
    "UntrustedLockfile",
]

SAMP_HUB_ENV = "SAMP_HUB"
STD_LOCKURL_PREFIX = "std-lockurl:"
#: Environment variable: ``1`` makes clients accept lockfiles that fail the trust checks.
TRUST_ENV = "SAMPFLOW_TRUST_LOCKFILE"
#: Most bytes read from a lockfile (a real one is a few hundred).
MAX_LOCKFILE_BYTES = 64 * 1024
#: The keys that make a file a SAMP Standard Profile lockfile (section 4.2.2).
REQUIRED_KEYS = ("samp.secret", "samp.hub.xmlrpc.url")


class LockfileExists(SAMPHubError):
    """The lockfile is already there (another hub may own it)."""


class LockfileError(SAMPHubError):
    """What is at the lockfile's path cannot be used as a lockfile: a folder, a dangling
    link, a FIFO, or a file that is not a SAMP lockfile."""


class UntrustedLockfile(SAMPHubError):
    """A lockfile that fails a trust check: owned by another user, writable by everyone, or
    naming a hub that is not on this machine."""


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


def read_local_lockfile(path: str | os.PathLike[str]) -> tuple[str, os.stat_result] | None:
    """Read the file at `path` as a lockfile would be read: safely, whatever is there.

    Parameters
    ----------
    path : str or path-like
        A local path.

    Returns
    -------
    (text, stat) or None
        The text (at most `MAX_LOCKFILE_BYTES`, decoded as UTF-8 with replacement) and the
        file's status; None when nothing is at `path` (no file and no link).

    Raises
    ------
    LockfileError
        If `path` is a dangling link, a folder, or anything but a regular file (a FIFO is
        never opened), or cannot be read.
    """
    where = os.fspath(path)
    try:
        link = os.lstat(where)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise LockfileError(f"cannot look at the lockfile path {where}: {exc}") from None
    try:
        info = os.stat(where)
    except FileNotFoundError:
        target = os.readlink(where) if stat.S_ISLNK(link.st_mode) else "?"
        raise LockfileError(f"{where} is a symbolic link to {target}, which does not exist; "
                            "remove the link (or point SAMP_HUB elsewhere)") from None
    except OSError as exc:
        raise LockfileError(f"cannot look at the lockfile path {where}: {exc}") from None
    if stat.S_ISDIR(info.st_mode):
        raise LockfileError(f"{where} is a folder, not a SAMP lockfile; move it away (or "
                            "point SAMP_HUB or --lockfile at a file)")
    if not stat.S_ISREG(info.st_mode):
        raise LockfileError(f"{where} is not a regular file, so not a SAMP lockfile")
    try:
        fd = os.open(where, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped since the stat
                raise LockfileError(f"{where} is not a regular file, so not a SAMP lockfile")
            data = os.read(fd, MAX_LOCKFILE_BYTES)
        finally:
            os.close(fd)
    except OSError as exc:
        raise LockfileError(f"cannot read the lockfile {where}: {exc}") from None
    return data.decode("utf-8", "replace"), info


def read_lockfile_unchecked(path: str | os.PathLike[str]) -> dict[str, str]:
    """The key-value pairs of the local lockfile at `path`, without `read_lockfile`'s checks.

    The file is read as `read_local_lockfile` reads it (a regular file only, never blocking,
    at most `MAX_LOCKFILE_BYTES`) and parsed by `parse_lockfile` (section 4.2.2), but it is
    neither checked for trust nor for the required keys. This is for code that waits for a
    hub it started itself to write its lockfile, where no file, or one without
    ``samp.hub.xmlrpc.url`` yet, means "not yet"; a client joining a hub uses `read_lockfile`.

    Parameters
    ----------
    path : str or path-like
        The lockfile's path on this machine (never a URL).

    Returns
    -------
    dict
        ``key -> value`` for each ``key=value`` line; empty when nothing is at `path`.

    Raises
    ------
    LockfileError
        As `read_local_lockfile`: for a dangling link, a folder, anything but a regular
        file, or a file that cannot be read.

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "lock")
    >>> read_lockfile_unchecked(path)
    {}
    >>> with open(path, "w") as f:
    ...     _ = f.write("# hub\\nsamp.secret=s3\\n")
    >>> read_lockfile_unchecked(path)
    {'samp.secret': 's3'}
    """
    found = read_local_lockfile(path)
    return {} if found is None else parse_lockfile(found[0])


def is_samp_lockfile(params: Mapping[str, str]) -> bool:
    """Tell whether parsed lockfile `params` has the keys of section 4.2.2 (`REQUIRED_KEYS`)."""
    return all(params.get(key) for key in REQUIRED_KEYS)


@functools.lru_cache(maxsize=1)
def _own_addresses() -> frozenset[str]:
    """The addresses this machine's own host name resolves to."""
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None)
    except OSError:
        return frozenset()
    return frozenset(str(info[4][0]) for info in infos)


def _is_local_address(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    return ip.is_loopback or address in _own_addresses()


def is_local_url(url: str) -> bool:
    """Tell whether `url`'s host is this machine: a loopback address, ``localhost``, this
    machine's host name, or a name that resolves only to those addresses.

    Examples
    --------
    >>> is_local_url("http://127.0.0.1:4000/xmlrpc"), is_local_url("http://[::1]:1/")
    (True, True)
    >>> is_local_url("http://localhost:21012/")
    True
    >>> is_local_url("http://192.0.2.7:4000/xmlrpc")
    False
    """
    host = (urllib.parse.urlsplit(url).hostname or "").lower()
    if not host:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    else:
        return _is_local_address(host)
    if host == socket.gethostname().lower():
        return True
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    addresses = {str(info[4][0]) for info in infos}
    return bool(addresses) and all(_is_local_address(a) for a in addresses)


def _trusted(env: Mapping[str, str] | None) -> bool:
    source: Mapping[str, str] = os.environ if env is None else env
    return source.get(TRUST_ENV, "").strip().lower() in ("1", "yes", "true")


def read_lockfile(location: str | os.PathLike[str], *, trust: bool | None = None,
                  env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Read, parse and check the lockfile at `location` (a path or an http/file URL).

    Parameters
    ----------
    location : str or path-like
        A local path, or an ``http(s):`` URL (from ``SAMP_HUB=std-lockurl:...``).
    trust : bool, optional
        Skip the trust checks; by default they are skipped only when the environment
        variable ``SAMPFLOW_TRUST_LOCKFILE`` (`TRUST_ENV`) is ``1``.
    env : dict, optional
        The environment to read `TRUST_ENV` from; `os.environ` when omitted.

    Returns
    -------
    dict
        At least ``samp.secret`` and ``samp.hub.xmlrpc.url``.

    Raises
    ------
    SAMPHubError
        If there is no lockfile, it cannot be read, or lacks the two required keys.
    LockfileError
        If the path holds a folder, a dangling link or something other than a file.
    UntrustedLockfile
        Unless trusted: if a local lockfile is owned by another user or writable by
        everyone, or ``samp.hub.xmlrpc.url`` is not on this machine (SAMP 1.3 section 4.2).
    """
    loc = os.fspath(location)
    trusted = _trusted(env) if trust is None else trust
    hint = f"(set {TRUST_ENV}=1 to connect anyway)"
    if loc.startswith(("http:", "https:")):
        try:
            with urllib.request.urlopen(loc, timeout=5) as response:  # noqa: S310 (SAMP_HUB URL)
                text = response.read(MAX_LOCKFILE_BYTES).decode("utf-8", "replace")
        except OSError as exc:
            raise SAMPHubError(f"no SAMP hub lockfile at {loc}: {exc}") from None
    else:
        found = read_local_lockfile(loc)
        if found is None:
            raise SAMPHubError(f"no SAMP hub lockfile at {loc} (no hub is running, or "
                               f"{SAMP_HUB_ENV} points elsewhere)")
        text, info = found
        if not trusted and info.st_uid != os.geteuid():
            raise UntrustedLockfile(f"the lockfile {loc} belongs to another user (uid "
                                    f"{info.st_uid}): not using it {hint}")
        if not trusted and info.st_mode & stat.S_IWOTH:
            raise UntrustedLockfile(f"the lockfile {loc} is writable by everyone (mode "
                                    f"{stat.S_IMODE(info.st_mode):o}): not using it {hint}")
    params = parse_lockfile(text)
    missing = [k for k in REQUIRED_KEYS if k not in params]
    if missing:
        raise SAMPHubError(f"{loc} is not a SAMP lockfile: it lacks {', '.join(missing)}")
    url = params["samp.hub.xmlrpc.url"]
    if not trusted and not is_local_url(url):
        raise UntrustedLockfile(f"the lockfile {loc} names a hub at {url}, which is not on "
                                f"this machine: not connecting {hint}")
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


def create_lockfile(path: str | os.PathLike[str], params: dict[str, str], *,
                    replace: bool = False) -> None:
    """Create the lockfile at `path` atomically, mode 0600, failing if it exists.

    The text (`format_lockfile`) is written to a private temporary file in the same folder,
    which is then hard-linked to `path`: the link fails if `path` exists, and readers never
    see a partial lockfile.

    Parameters
    ----------
    path : str or path-like
        Where the lockfile goes; missing folders are made.
    params : dict
        Its key-value pairs.
    replace : bool
        Replace whatever lockfile is at `path` (atomically, with a rename) instead of
        failing; for astropy's ``write_lockfile``, never for a hub's own start.

    Raises
    ------
    LockfileExists
        If `path` already exists (unless `replace`).
    OSError
        If the folder is not writable.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".samp-", dir=target.parent)  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(format_lockfile(params))
        if replace:
            os.replace(tmp, target)
            return
        try:
            os.link(tmp, target)
        except FileExistsError:
            raise LockfileExists(f"lockfile {target} already exists") from None
    finally:
        Path(tmp).unlink(missing_ok=True)


def remove_lockfile_if_ours(path: str | os.PathLike[str], secret: str) -> bool:
    """Remove the lockfile at `path` if it still holds `secret`.

    Returns
    -------
    bool
        Whether a lockfile was removed.
    """
    try:
        params = read_lockfile_unchecked(path)
    except LockfileError:
        return False
    if not secrets.compare_digest(params.get("samp.secret", ""), secret):
        return False
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True
