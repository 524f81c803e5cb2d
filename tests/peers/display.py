"""Xvfb displays on a free display number.

Part of the ``peers`` test helpers; see ``tests/peers/__init__.py``.
"""

from __future__ import annotations

import contextlib
import os
import select
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .base import PeerStartError, require
from .process import ManagedProcess, peer_env, spawn

# --------------------------------------------------------------------------------------------
# Xvfb


@dataclass(frozen=True)
class XDisplay:
    """A running virtual X server.

    Attributes
    ----------
    display : str
        Value for ``DISPLAY``, e.g. ``":7"``.
    process : ManagedProcess
        The Xvfb process.
    """

    display: str
    process: ManagedProcess


@contextlib.contextmanager
def xvfb(
    log_dir: Path, *, screen: str = "1280x1024x24", timeout: float = 20.0
) -> Iterator[XDisplay]:
    """Run ``Xvfb`` on a display number it picks itself (``-displayfd``).

    Parameters
    ----------
    log_dir : pathlib.Path
        Directory for Xvfb's log.
    screen : str
        Geometry and depth of screen 0.
    timeout : float
        Seconds to wait for Xvfb to report its display.

    Yields
    ------
    XDisplay
        Stopped (by process group) when the block exits.

    Raises
    ------
    PeerUnavailable
        If ``Xvfb`` is not installed.
    PeerStartError
        If Xvfb exits or reports no display in time.
    """
    require("Xvfb")
    read_fd, write_fd = os.pipe()
    try:
        proc = spawn(
            ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", screen, "-nolisten", "tcp"],
            name="xvfb",
            env=peer_env(home=Path(log_dir)),
            log_dir=Path(log_dir),
            pass_fds=(write_fd,),
        )
    finally:
        os.close(write_fd)
    try:
        try:
            number = _read_line(read_fd, timeout, proc)
        finally:
            os.close(read_fd)
        yield XDisplay(display=f":{number}", process=proc)
    finally:
        proc.stop()


def _read_line(fd: int, timeout: float, proc: ManagedProcess) -> str:
    data = b""
    deadline = time.monotonic() + timeout
    while b"\n" not in data:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise PeerStartError(f"Xvfb reported no display in {timeout:g} s:\n{proc.log_tail()}")
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            chunk = os.read(fd, 64)
            if not chunk:  # EOF: Xvfb exited
                proc.check_alive()
                raise PeerStartError(f"Xvfb closed -displayfd:\n{proc.log_tail()}")
            data += chunk
    return data.decode().strip()
