"""Desktop peers (DS9, TOPCAT, Aladin): specs, launch, and a scoped launcher.

Part of the ``peers`` test helpers; see ``tests/peers/__init__.py``.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .base import PeerError, PeerUnavailable, require
from .display import xvfb
from .hubs import (
    HubHandle,
    ProbeClient,
    SampHub,
    ToolResult,
    jsamp_hub,
    run_jsamp_tool,
    wait_for_client,
)
from .process import ManagedProcess, peer_env, spawn, surviving_processes

# --------------------------------------------------------------------------------------------
# GUI peers


@dataclass(frozen=True)
class PeerSpec:
    """How to start one kind of GUI peer.

    Attributes
    ----------
    key : str
        Short name (``"ds9"``).
    argv : tuple of str
        Command line.
    samp_name : str
        ``samp.name`` it registers with.
    ready_mtype : str
        It is ready once subscribed to this MType.
    requires : tuple of str
        Programs or paths that must be installed.
    timeout : float
        Default seconds to wait for registration.
    java : bool
        Whether it is a JVM (gets ``-Duser.home`` through ``JAVA_TOOL_OPTIONS``).
    needs_dot_samp : bool
        Whether it ignores ``SAMP_HUB`` and reads only ``<user.home>/.samp``.
    """

    key: str
    argv: tuple[str, ...]
    samp_name: str
    ready_mtype: str
    requires: tuple[str, ...]
    timeout: float
    java: bool = False
    needs_dot_samp: bool = False


#: The GUI peers known to the test suite, by key.
PEERS: dict[str, PeerSpec] = {
    "ds9": PeerSpec(
        key="ds9",
        argv=("ds9", "-samp", "connect"),
        samp_name="SAOImageDS9",
        ready_mtype="ds9.get",
        requires=("ds9",),
        timeout=60.0,
    ),
    "topcat": PeerSpec(
        key="topcat",
        # -samp: SAMP (not PLASTIC); -nohub: never start an internal hub of its own.
        argv=("topcat", "-samp", "-nohub"),
        samp_name="topcat",
        ready_mtype="table.load.votable",
        requires=("topcat", "java"),
        timeout=90.0,
        java=True,
    ),
    "aladin": PeerSpec(
        key="aladin",
        argv=("aladin",),
        samp_name="Aladin",
        ready_mtype="coord.pointAt.sky",
        requires=("aladin", "java"),
        timeout=120.0,
        java=True,
        needs_dot_samp=True,
    ),
}


@dataclass(frozen=True)
class PeerHandle:
    """A GUI peer registered with a hub.

    Attributes
    ----------
    spec : PeerSpec
        What was started.
    public_id : str
        Its SAMP public id on that hub.
    process : ManagedProcess
        Its process (``process.pid``; log in ``process.log_path``).
    lockfile : pathlib.Path
        Lockfile of the hub it registered with.
    home : pathlib.Path
        Its temporary home.
    started_in : float
        Seconds from launch until registered and subscribed.
    """

    spec: PeerSpec
    public_id: str
    process: ManagedProcess
    lockfile: Path
    home: Path
    started_in: float

    @property
    def pid(self) -> int:
        """Process id of the peer (and of its process group)."""
        return self.process.pid

    @property
    def samp_name(self) -> str:
        """``samp.name`` the peer registered with."""
        return self.spec.samp_name


@contextlib.contextmanager
def start_peer(
    spec: PeerSpec | str,
    lockfile: Path,
    *,
    display: str,
    home: Path,
    log_dir: Path | None = None,
    timeout: float | None = None,
    extra_args: Sequence[str] = (),
) -> Iterator[PeerHandle]:
    """Start a GUI peer against the hub of ``lockfile`` and wait until it is registered.

    Parameters
    ----------
    spec : PeerSpec or str
        A spec, or a key of :data:`PEERS` (``"ds9"``, ``"topcat"``, ``"aladin"``).
    lockfile : pathlib.Path
        Lockfile of a running hub (any hub).
    display : str
        X display (see :func:`xvfb`).
    home : pathlib.Path
        Temporary home for this peer; for Aladin the lockfile is copied to ``home/.samp``.
    log_dir : pathlib.Path, optional
        Directory for the peer's log; defaults to ``home``.
    timeout : float, optional
        Seconds to wait for registration; defaults to ``spec.timeout``.
    extra_args : sequence of str
        Appended to the command line.

    Yields
    ------
    PeerHandle
        The peer's process group is stopped when the block exits, even on error.

    Raises
    ------
    PeerUnavailable, PeerStartError
    """
    spec = PEERS[spec] if isinstance(spec, str) else spec
    require(*spec.requires)
    lockfile = Path(lockfile).resolve()
    home = Path(home).resolve()
    home.mkdir(parents=True, exist_ok=True)
    if spec.needs_dot_samp:
        shutil.copyfile(lockfile, home / ".samp")
        (home / ".samp").chmod(0o600)
    with ProbeClient(lockfile) as probe:  # clients of that name already there are not ours
        before = probe.find(spec.samp_name)
    t0 = time.monotonic()
    proc = spawn(
        [*spec.argv, *extra_args],
        name=spec.key,
        env=peer_env(home=home, lockfile=lockfile, display=display),
        log_dir=Path(log_dir or home),
    )
    try:
        public_id = wait_for_client(
            lockfile,
            spec.samp_name,
            timeout=timeout or spec.timeout,
            mtype=spec.ready_mtype,
            process=proc,
            exclude=before,
        )
        yield PeerHandle(spec, public_id, proc, lockfile, home, time.monotonic() - t0)
    finally:
        proc.stop()


def ds9(lockfile: Path, **kwargs: Any) -> contextlib.AbstractContextManager[PeerHandle]:
    """Start SAO DS9 (``ds9 -samp connect``); see :func:`start_peer` for the arguments."""
    return start_peer(PEERS["ds9"], lockfile, **kwargs)


def topcat(lockfile: Path, **kwargs: Any) -> contextlib.AbstractContextManager[PeerHandle]:
    """Start TOPCAT (``topcat -samp -nohub``); see :func:`start_peer` for the arguments."""
    return start_peer(PEERS["topcat"], lockfile, **kwargs)


def aladin(lockfile: Path, **kwargs: Any) -> contextlib.AbstractContextManager[PeerHandle]:
    """Start Aladin Desktop (reads ``home/.samp``); see :func:`start_peer` for the arguments."""
    return start_peer(PEERS["aladin"], lockfile, **kwargs)


# --------------------------------------------------------------------------------------------
# A launcher bound to a scope (what the fixtures hand out)


@dataclass
class PeerLauncher:
    """Start peers whose lifetime ends with :meth:`close` (a fixture's scope).

    Parameters
    ----------
    make_dir : callable
        ``make_dir(label) -> Path`` returns a new, empty directory (``tmp_path_factory.mktemp``).
    display : callable, optional
        Returns the X display to use (called lazily, only for GUI peers), so that tests
        which start no GUI peer need no Xvfb.
    on_unavailable : callable, optional
        Called with a :class:`PeerUnavailable` before it propagates; it may raise instead
        (the test suite skips or fails there, per its ``--peers`` policy).

    Example (not run: it starts real programs)::

        launcher = PeerLauncher(make_dir=lambda label: Path(tempfile.mkdtemp()))
        hub = launcher.jsamp_hub()
        launcher.close()
    """

    make_dir: Callable[[str], Path]
    display: Callable[[], str] | None = None
    on_unavailable: Callable[[PeerUnavailable], None] | None = None
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack, repr=False)

    def _guarded(self, start: Callable[[], Any]) -> Any:
        missing_exc: PeerUnavailable | None = None
        try:
            return start()
        except PeerUnavailable as exc:
            missing_exc = exc
        assert missing_exc is not None
        # Outside the except block, so that a skip or fail carries no chained traceback.
        if self.on_unavailable is not None:
            self.on_unavailable(missing_exc)
        raise missing_exc

    def x_display(self) -> str:
        """The X display (``:N``) GUI peers of this launcher use, started on first use.

        Raises
        ------
        PeerError
            If the launcher was made without a display.
        """
        if self.display is None:
            raise PeerError("this launcher has no X display")
        return self.display()

    def jsamp_hub(self, lockfile: Path | None = None, **kwargs: Any) -> HubHandle:
        """Start JSAMP's hub; its lockfile defaults to a new temporary path.

        Parameters
        ----------
        lockfile : pathlib.Path, optional
        **kwargs
            Passed to :func:`jsamp_hub` (``profiles``, ``timeout``).
        """
        home = self.make_dir("jsamp-hub")
        return self._guarded(
            lambda: self._stack.enter_context(
                jsamp_hub(lockfile or home / "samp.lock", home=home, **kwargs)
            )
        )

    def peer(self, key: str | PeerSpec, hub: SampHub | Path, **kwargs: Any) -> PeerHandle:
        """Start a GUI peer registered with ``hub`` (a :class:`SampHub` or a lockfile path).

        Parameters
        ----------
        key : str or PeerSpec
            ``"ds9"``, ``"topcat"``, ``"aladin"`` or a spec.
        hub : SampHub or pathlib.Path
        **kwargs
            Passed to :func:`start_peer` (``timeout``, ``extra_args``).
        """
        lockfile = Path(hub if isinstance(hub, (str, Path)) else hub.lockfile)
        spec = PEERS[key] if isinstance(key, str) else key

        def start() -> PeerHandle:
            require(*spec.requires)
            display = self.x_display()
            return self._stack.enter_context(
                start_peer(spec, lockfile, display=display, home=self.make_dir(spec.key), **kwargs)
            )

        return self._guarded(start)

    def ds9(self, hub: SampHub | Path, **kwargs: Any) -> PeerHandle:
        """Start DS9 registered with ``hub``; see :meth:`peer`."""
        return self.peer("ds9", hub, **kwargs)

    def topcat(self, hub: SampHub | Path, **kwargs: Any) -> PeerHandle:
        """Start TOPCAT registered with ``hub``; see :meth:`peer`."""
        return self.peer("topcat", hub, **kwargs)

    def aladin(self, hub: SampHub | Path, **kwargs: Any) -> PeerHandle:
        """Start Aladin registered with ``hub``; see :meth:`peer`."""
        return self.peer("aladin", hub, **kwargs)

    def run_jsamp_tool(
        self, tool: str, *args: str, hub: SampHub | Path, **kwargs: Any
    ) -> ToolResult:
        """Run a JSAMP tool against ``hub``; see :func:`run_jsamp_tool`."""
        lockfile = Path(hub if isinstance(hub, (str, Path)) else hub.lockfile)
        return self._guarded(
            lambda: run_jsamp_tool(
                tool, *args, lockfile=lockfile, home=self.make_dir(f"jsamp-{tool}"), **kwargs
            )
        )

    def close(self) -> None:
        """Stop everything started through this launcher, newest first."""
        self._stack.close()


if __name__ == "__main__":  # pragma: no cover - manual check: cd tests; python -m peers.desktop ds9
    import tempfile

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        with xvfb(tmp) as x, jsamp_hub(tmp / "lock", home=tmp / "hub") as h:
            print("display", x.display, "hub", h.url, f"{h.started_in:.1f} s")
            with start_peer(
                sys.argv[1] if len(sys.argv) > 1 else "ds9",
                h.lockfile,
                display=x.display,
                home=tmp / "peer",
            ) as p:
                print(p.samp_name, p.public_id, p.pid, f"{p.started_in:.1f} s")
    print("survivors:", surviving_processes())
