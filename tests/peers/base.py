"""Constants and errors shared by the peer helpers.

Part of the ``peers`` test helpers; see ``tests/peers/__init__.py``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

JSAMP_JAR = Path(os.environ.get("SAMPFLOW_JSAMP_JAR", "/usr/share/java/jsamp.jar"))

#: Seconds between SIGTERM and SIGKILL when stopping a process group.
DEFAULT_GRACE = 5.0

#: Seconds between two checks of a condition being waited for (`wait_until`).
POLL_INTERVAL = 0.1


# --------------------------------------------------------------------------------------------
# Errors


class PeerError(Exception):
    """Base class of every error raised by this module."""


class PeerUnavailable(PeerError):
    """A program or file a peer needs is not installed.

    Parameters
    ----------
    missing : sequence of str
        The programs or paths that were not found.
    """

    def __init__(self, missing: Sequence[str]) -> None:
        self.missing = tuple(missing)
        super().__init__(
            "not installed: " + ", ".join(self.missing) + " (install them as .ci/run does)"
        )


class PeerStartError(PeerError):
    """A peer exited early, or did not become ready before its deadline."""


def missing(*names: str) -> PeerUnavailable | None:
    """Return a :class:`PeerUnavailable` naming the programs or paths not installed, or None.

    Parameters
    ----------
    *names : str
        Program names looked up on ``PATH``, or absolute file paths.
    """
    absent = [n for n in names if not (Path(n).exists() if os.path.isabs(n) else shutil.which(n))]
    return PeerUnavailable(absent) if absent else None


def require(*names: str) -> None:
    """Check that programs (looked up on ``PATH``) or absolute paths exist.

    Parameters
    ----------
    *names : str
        Program names such as ``"ds9"``, or absolute file paths such as ``"/usr/share/java/x.jar"``.

    Raises
    ------
    PeerUnavailable
        Listing every name that is missing.
    """
    exc = missing(*names)
    if exc is not None:
        raise exc
