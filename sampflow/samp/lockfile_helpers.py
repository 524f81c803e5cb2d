"""astropy's ``astropy.samp.lockfile_helpers`` functions, over sampflow's lockfile code
(`sampflow.samp.lockfile`; SAMP 1.3 sections 4.2.2 and 4.3).

Single-instance hubs use the Standard Profile lockfile (``SAMP_HUB`` or ``~/.samp``);
multi-instance hubs, a non-standard astropy convention sampflow's ``SAMPHubServer`` keeps,
put theirs in ``~/.samp-1/``. Every lockfile is written atomically with mode 0600. Checking
whether a hub runs sends it ``samp.hub.ping`` on loopback; nothing here contacts the
internet.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from . import background
from .errors import SAMPHubError
from .lockfile import (
    LockfileExists,
    create_lockfile,
    default_lockfile_path,
    lockfile_location,
)
from .lockfile import read_lockfile as _read_lockfile

__all__ = [
    "check_running_hub",
    "create_lock_file",
    "get_main_running_hub",
    "get_running_hubs",
    "hub_answers",
    "read_lockfile",
    "remove_garbage_lock_files",
    "write_lockfile",
]


def _multi_folder() -> Path:
    return Path(os.path.expanduser("~")) / ".samp-1"


def read_lockfile(lockfilename: str | os.PathLike[str]) -> dict[str, str]:
    """The key-value pairs of the lockfile at `lockfilename` (a path or an http/file URL).

    Raises
    ------
    SAMPHubError
        If it cannot be read or lacks ``samp.secret`` / ``samp.hub.xmlrpc.url`` (astropy
        returns whatever it parsed instead).
    """
    return _read_lockfile(lockfilename)


def write_lockfile(lockfilename: str | os.PathLike[str], lockfiledict: dict[str, str]) -> None:
    """Write `lockfiledict` to `lockfilename`, replacing it atomically, mode 0600.

    Raises
    ------
    OSError
        If the folder is not writable.
    """
    create_lockfile(lockfilename, dict(lockfiledict), replace=True)


def hub_answers(url: str, timeout: float = 3.0) -> bool:
    """Tell whether a SAMP hub answers ``samp.hub.ping`` at `url`, blocking until it does,
    refuses or `timeout` passes (SAMP 1.3 section 4.2.3).

    Parameters
    ----------
    url : str
        The hub's ``samp.hub.xmlrpc.url``, from its lockfile.
    timeout : float
        Seconds to wait for the answer.

    Returns
    -------
    bool
        True when the hub answered without a fault; False when nothing listens there, it
        timed out, or answered with a fault or with something other than XML-RPC.

    Raises
    ------
    SAMPClientError
        If called from sampflow's event-loop thread (use
        `sampflow.samp.hub.server.probe_hub` there).
    """
    from .hub.server import probe_hub

    return background.run(probe_hub(url, timeout))


def check_running_hub(lockfilename: str | os.PathLike[str]) -> tuple[bool, dict[str, str]]:
    """Whether the hub of `lockfilename` answers ``samp.hub.ping``, and the lockfile's
    contents (empty when it cannot be read).

    Returns
    -------
    is_running : bool
    lockfiledict : dict
    """
    try:
        params = _read_lockfile(lockfilename)
    except SAMPHubError:
        return False, {}
    return hub_answers(params["samp.hub.xmlrpc.url"]), params


def create_lock_file(lockfilename: str | None = None, mode: str | None = None,
                     hub_id: str | None = None,
                     hub_params: dict[str, str] | None = None) -> str | bool:
    """Create a hub's lockfile, unless a running hub owns it.

    Parameters
    ----------
    lockfilename : str, optional
        Where; by default the Standard Profile lockfile (mode ``single``) or a new file
        ``~/.samp-1/samp-hub-<pid>-<hub_id>`` (mode ``multiple``).
    mode : {'single', 'multiple'}, optional
        ``single`` by default.
    hub_id : str, optional
        Names the multi-instance file; random when omitted.
    hub_params : dict, optional
        The key-value pairs to write.

    Returns
    -------
    str or False
        The lockfile's path, or False when a running hub already owns it. A stale lockfile
        (its hub does not answer) is replaced.

    Raises
    ------
    SAMPHubError
        If `mode` is unknown, or the lockfile location is a URL.
    """
    if mode not in (None, "single", "multiple"):
        raise SAMPHubError(f"mode must be 'single' or 'multiple', not {mode!r}")
    if lockfilename is None:
        if mode == "multiple":
            folder = _multi_folder()
            folder.mkdir(mode=0o700, exist_ok=True)
            name = f"samp-hub-{os.getpid()}-{hub_id or secrets.token_hex(4)}"
            lockfilename = str(folder / name)
        else:
            lockfilename = lockfile_location()
    if "://" in lockfilename:
        raise SAMPHubError(f"cannot write a lockfile at URL {lockfilename}")
    params = dict(hub_params or {})
    for _ in range(2):
        try:
            create_lockfile(lockfilename, params)
            return lockfilename
        except LockfileExists:
            running, _ = check_running_hub(lockfilename)
            if running:
                return False
            Path(lockfilename).unlink(missing_ok=True)
    return False


def _candidates() -> list[Path]:
    found = []
    try:
        found.append(Path(lockfile_location()))
    except SAMPHubError:
        pass
    folder = _multi_folder()
    if folder.is_dir():
        found += sorted(p for p in folder.glob("samp-hub-*"))
    return [p for p in found if _is_regular(p)]


def _is_regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except OSError:
        return False


def get_running_hubs() -> dict[str, dict[str, str]]:
    """The running hubs: lockfile path -> its key-value pairs, for the Standard Profile
    lockfile and the multi-instance ones in ``~/.samp-1``."""
    hubs = {}
    for path in _candidates():
        running, params = check_running_hub(path)
        if running:
            hubs[str(path)] = params
    return hubs


def get_main_running_hub() -> dict[str, str]:
    """The lockfile key-value pairs of the desktop's hub (``SAMP_HUB`` or ``~/.samp``).

    Raises
    ------
    SAMPHubError
        If that hub is not running.
    """
    location = lockfile_location()
    running, params = check_running_hub(location)
    if not running:
        raise SAMPHubError(f"no running SAMP hub (lockfile {location})")
    return params


def remove_garbage_lock_files() -> None:
    """Remove lockfiles whose hub no longer answers: ``~/.samp`` (only the default one,
    never a ``SAMP_HUB`` URL) and the multi-instance ones in ``~/.samp-1``."""
    paths = [default_lockfile_path()]
    folder = _multi_folder()
    if folder.is_dir():
        paths += sorted(folder.glob("samp-hub-*"))
    for path in paths:
        if _is_regular(path) and not check_running_hub(path)[0]:
            path.unlink(missing_ok=True)
