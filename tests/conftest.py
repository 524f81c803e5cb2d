"""Shared pytest fixtures: real SAMP peers (see ``tests/peers/``) and the ``--peers`` policy.

Peer policy
-----------
``--peers=auto`` (default locally)
    A test whose peer program is not installed is skipped, with the reason.
``--peers=require`` (forced when the ``CI`` environment variable is set)
    A missing peer program makes the test fail; nothing is skipped for that reason.
``--peers=skip``
    Every test marked ``peer`` is skipped without starting anything (refused under ``CI``).

Fixtures
--------
========================  =========  =====================================================
name                      scope      gives
========================  =========  =====================================================
``peer_policy``           session    the resolved :class:`PeerPolicy`
``xvfb_display``          session    an :class:`peers.XDisplay` on a free display number
``peer_home``             function   a fresh temporary home directory
``samp_lockfile``         function   a lockfile path that does not exist yet
``peers``                 function   a :class:`peers.PeerLauncher`; all stopped after the test
``module_peers``          module     the same, stopped after the module (for slow peers)
``jsamp_hub``             function   JSAMP's hub (:class:`peers.HubHandle`) on ``samp_lockfile``
``samp_hub``              function   the hub peers talk to: ``jsamp_hub`` unless overridden
``ds9_peer``              function   DS9 registered with ``samp_hub``
``topcat_peer``           function   TOPCAT registered with ``samp_hub``
``aladin_peer``           function   Aladin registered with ``samp_hub``
``run_jsamp``             function   ``run_jsamp(tool, *args, hub=None, timeout=120)``
========================  =========  =====================================================

Pointing the peers at another hub: override ``samp_hub`` in a test module or a nearer
``conftest.py`` with a fixture returning any object with a ``lockfile`` attribute, e.g.
``peers.HubHandle.from_lockfile(path)`` once sampflow's hub has written ``path``. For
module-scoped peers, use ``module_peers`` with a module-scoped hub::

    @pytest.fixture(scope="module")
    def ds9_m(module_peers):
        hub = module_peers.jsamp_hub()          # or a module-scoped sampflow hub
        return hub, module_peers.ds9(hub)

Test modules import the helpers as ``import peers as peerlib`` (``tests/`` is put on
``sys.path`` here), since ``peers`` is the launcher fixture's name.

No process left behind
----------------------
* Every peer runs in its own process group, stopped by fixture teardown (SIGTERM, then
  SIGKILL); the context managers in ``tests/peers/`` stop it in ``finally``.
* SIGTERM and SIGHUP (CI cancelling, ``timeout``) become KeyboardInterrupt, so teardown runs.
* After the session an autouse fixture fails the run if a process started through
  ``tests/peers/`` is still alive, or if this pytest process has any child left at all
  (a hub a test launched with ``subprocess``, say); either way they are killed.
* At session start, peers orphaned by an earlier run that was SIGKILLed are stopped
  (``peers.reap_orphans``: only processes marked as started by a now-dead test process).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# tests/ has no __init__.py: make ``import peers`` work for this file and for every test module.
_TESTS_DIR = str(Path(__file__).resolve().parent)
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)

import peers as _peers  # noqa: E402  (found through the sys.path entry above)

_POLICIES = ("auto", "require", "skip")
_POLICY_KEY = pytest.StashKey["PeerPolicy"]()


@dataclass(frozen=True)
class PeerPolicy:
    """What to do when a peer program is missing.

    Attributes
    ----------
    mode : str
        ``"auto"``, ``"require"`` or ``"skip"`` (see the module docstring).
    ci : bool
        Whether the ``CI`` environment variable is set.
    """

    mode: str
    ci: bool

    def unavailable(self, exc: _peers.PeerUnavailable) -> None:
        """Skip or fail the current test because of ``exc``, as the policy says."""
        if self.mode == "require":
            where = "CI is set" if self.ci else "--peers=require"
            pytest.fail(f"{exc} [{where}: missing peers fail instead of skipping]", pytrace=False)
        pytest.skip(f"{exc} [--peers={self.mode}]")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--peers",
        choices=_POLICIES,
        default=None,
        help="real SAMP peers (JSAMP, DS9, TOPCAT, Aladin): auto = skip a test whose peer is "
        "not installed; require = fail it instead (forced when $CI is set); "
        "skip = skip every test marked 'peer'. Default: require under CI, else auto.",
    )


def pytest_configure(config: pytest.Config) -> None:
    ci = bool(os.environ.get("CI"))
    mode = config.getoption("--peers") or ("require" if ci else "auto")
    if ci and mode != "require":
        raise pytest.UsageError(f"--peers={mode} is not allowed when CI is set")
    config.stash[_POLICY_KEY] = PeerPolicy(mode=mode, ci=ci)
    _unwind_on_termination()


def _unwind_on_termination() -> None:
    """Turn SIGTERM and SIGHUP into KeyboardInterrupt, so that fixtures stop their peers.

    CI runners and ``timeout`` end a job with SIGTERM, whose default action would skip every
    ``finally`` and leave peers running. Handlers somebody else installed are left alone.
    """
    if threading.current_thread() is not threading.main_thread():
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"received signal {signal.Signals(signum).name}")

    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) is signal.SIG_DFL:
            signal.signal(sig, interrupt)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.stash[_POLICY_KEY].mode == "skip":
        marker = pytest.mark.skip(reason="--peers=skip")
        for item in items:
            if item.get_closest_marker("peer"):
                item.add_marker(marker)


def pytest_report_header(config: pytest.Config) -> str:
    policy = config.stash[_POLICY_KEY]
    return f"sampflow peers: --peers={policy.mode} (CI={'set' if policy.ci else 'unset'})"


# --------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="session", autouse=True)
def _no_surviving_peer_processes() -> Iterator[None]:
    """Fail the session if a process started by ``tests/peers/`` outlives its fixture.

    Being autouse and session-scoped it is set up first and torn down last, after every other
    fixture has stopped its processes. On the way in it also stops peers orphaned by an earlier
    run that was killed outright (:func:`peers.reap_orphans`).
    """
    orphans = _peers.reap_orphans()
    if orphans:
        warnings.warn(
            f"stopped peers left behind by an earlier, killed run: {orphans}", stacklevel=1
        )
    yield
    survivors = _peers.kill_survivors()
    if survivors:
        pytest.fail(
            f"peer processes survived their fixtures (now killed): {survivors}", pytrace=False
        )
    children = _peers.descendants()
    if children:
        # Not started through tests/peers/ (e.g. a hub a test ran with subprocess), so they
        # are reported; they are stopped too, lest they outlive the run.
        for pid, _ in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        pytest.fail(f"child processes outlived every test (now killed): {children}", pytrace=False)


@pytest.fixture(autouse=True)
def _private_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own sampflow state directory (the delivery ledger), inherited by
    the ``sampflow`` processes it starts: never the user's ``~/.local/state/sampflow``."""
    state = tmp_path / "sampflow-state"
    monkeypatch.setenv("SAMPFLOW_STATE_DIR", str(state))
    return state


@pytest.fixture(scope="session")
def peer_policy(pytestconfig: pytest.Config) -> PeerPolicy:
    """The resolved ``--peers`` policy (``require`` whenever ``CI`` is set)."""
    return pytestconfig.stash[_POLICY_KEY]


@pytest.fixture(scope="session")
def _xvfb_on_demand(
    tmp_path_factory: pytest.TempPathFactory, peer_policy: PeerPolicy
) -> Iterator[Callable[[], _peers.XDisplay]]:
    """Return a callable that starts this worker's Xvfb on first call; stopped at session end."""
    stack = contextlib.ExitStack()
    started: list[_peers.XDisplay] = []

    def get() -> _peers.XDisplay:
        if not started:
            missing = _peers.missing("Xvfb")
            if missing is not None:
                peer_policy.unavailable(missing)
            started.append(stack.enter_context(_peers.xvfb(tmp_path_factory.mktemp("xvfb"))))
        return started[0]

    with stack:
        yield get


@pytest.fixture(scope="session")
def xvfb_display(_xvfb_on_demand: Callable[[], _peers.XDisplay]) -> _peers.XDisplay:
    """An Xvfb server on a display number it chose itself; one per xdist worker.

    Returns
    -------
    peers.XDisplay
        ``.display`` is the ``DISPLAY`` string, ``.process.pid`` the server's pid.
    """
    return _xvfb_on_demand()


@pytest.fixture
def peer_home(tmp_path: Path) -> Path:
    """A fresh, empty temporary home directory (never the real ``~``)."""
    home = tmp_path / "home"
    home.mkdir()
    return home


@pytest.fixture
def samp_lockfile(tmp_path: Path) -> Path:
    """A path for a hub's lockfile, inside ``tmp_path``; the file does not exist yet."""
    return tmp_path / "samp-hub.lock"


def _launcher(
    xvfb: Callable[[], _peers.XDisplay],
    tmp_path_factory: pytest.TempPathFactory,
    policy: PeerPolicy,
) -> _peers.PeerLauncher:
    return _peers.PeerLauncher(
        make_dir=lambda label: tmp_path_factory.mktemp(label),
        display=lambda: xvfb().display,
        on_unavailable=policy.unavailable,
    )


@pytest.fixture
def peers(
    _xvfb_on_demand: Callable[[], _peers.XDisplay],
    tmp_path_factory: pytest.TempPathFactory,
    peer_policy: PeerPolicy,
) -> Iterator[_peers.PeerLauncher]:
    """A :class:`peers.PeerLauncher` whose peers are all stopped when the test ends.

    Methods: ``jsamp_hub(lockfile=None)``, ``ds9(hub)``, ``topcat(hub)``, ``aladin(hub)``,
    ``peer(key, hub)``, ``run_jsamp_tool(tool, *args, hub=...)``. Xvfb is started on first use.
    """
    launcher = _launcher(_xvfb_on_demand, tmp_path_factory, peer_policy)
    try:
        yield launcher
    finally:
        launcher.close()


@pytest.fixture(scope="module")
def module_peers(
    _xvfb_on_demand: Callable[[], _peers.XDisplay],
    tmp_path_factory: pytest.TempPathFactory,
    peer_policy: PeerPolicy,
) -> Iterator[_peers.PeerLauncher]:
    """Like ``peers`` but stopped after the module: share one slow JVM peer between tests."""
    launcher = _launcher(_xvfb_on_demand, tmp_path_factory, peer_policy)
    try:
        yield launcher
    finally:
        launcher.close()


@pytest.fixture
def jsamp_hub(peers: _peers.PeerLauncher, samp_lockfile: Path) -> _peers.HubHandle:
    """JSAMP's own hub (``hub -mode no-gui -profiles std``), its lockfile at ``samp_lockfile``."""
    return peers.jsamp_hub(samp_lockfile)


@pytest.fixture
def samp_hub(jsamp_hub: _peers.HubHandle) -> _peers.SampHub:
    """The hub the peer fixtures connect to: any object with a ``lockfile`` attribute.

    JSAMP's hub for now; override this fixture to aim the same peers at sampflow's hub.
    """
    return jsamp_hub


@pytest.fixture
def ds9_peer(peers: _peers.PeerLauncher, samp_hub: _peers.SampHub) -> _peers.PeerHandle:
    """SAO DS9 registered with ``samp_hub`` (``.public_id``, ``.pid``), stopped after the test."""
    return peers.ds9(samp_hub)


@pytest.fixture
def topcat_peer(peers: _peers.PeerLauncher, samp_hub: _peers.SampHub) -> _peers.PeerHandle:
    """TOPCAT registered with ``samp_hub`` (``.public_id``, ``.pid``), stopped after the test."""
    return peers.topcat(samp_hub)


@pytest.fixture
def aladin_peer(peers: _peers.PeerLauncher, samp_hub: _peers.SampHub) -> _peers.PeerHandle:
    """Aladin registered with ``samp_hub`` (``.public_id``, ``.pid``), stopped after the test."""
    return peers.aladin(samp_hub)


@pytest.fixture
def run_jsamp(
    peers: _peers.PeerLauncher, request: pytest.FixtureRequest
) -> Callable[..., _peers.ToolResult]:
    """Run a JSAMP tool; returns ``(returncode, stdout, stderr)``.

    Call as ``run_jsamp("calcstorm", "-nclient", "4", hub=h, timeout=120)``; without ``hub``
    the ``samp_hub`` fixture is used. The process group is killed on timeout
    (``subprocess.TimeoutExpired`` is raised).
    """

    def run(tool: str, *args: str, hub: Any = None, **kwargs: Any) -> _peers.ToolResult:
        if hub is None:
            hub = request.getfixturevalue("samp_hub")
        return peers.run_jsamp_tool(tool, *args, hub=hub, **kwargs)

    return run


@pytest.fixture
def engines(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """``engines(files, *args)`` starts a ``sampflow run`` (`samphub.EngineRun`) in its own
    folder under ``tmp_path``; every one is stopped by PID after the test."""
    from samphub import EngineRun

    started: list[EngineRun] = []

    def start(files: list[Any], *args: str, **kwargs: Any) -> EngineRun:
        engine = EngineRun(tmp_path / f"engine-{len(started)}", files, *args, **kwargs)
        started.append(engine)
        return engine

    yield start
    for engine in started:
        try:
            engine.terminate(20)
        finally:
            engine.kill()
