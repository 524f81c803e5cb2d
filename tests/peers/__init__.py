"""Start and stop real SAMP peers for tests: Xvfb, JSAMP's hub and tools, DS9, TOPCAT, Aladin.

Everything here is plain Python (no pytest import) so that it can be used from fixtures,
benchmarks or an interactive session alike. ``tests/conftest.py`` wraps it in fixtures.

Rules every helper follows
--------------------------
* **Parallel-safe.** No fixed port, display number or temporary path: Xvfb chooses its own
  display (``-displayfd``), hubs choose their own ports, and every directory is given by the
  caller (``tmp_path`` in tests).
* **Hermetic.** A peer only ever sees a temporary ``HOME`` (and ``-Duser.home`` for Java) and
  the lockfile it is given; the real ``~/.samp`` is never read or written.
* **Hub-agnostic.** Peers take the path of a Standard Profile lockfile, whatever hub wrote it
  (JSAMP's today, sampflow's later); see :class:`HubHandle`.
* **Nothing left behind.** Each process starts in its own session (``start_new_session=True``)
  and is stopped by signalling its process group: SIGTERM, then SIGKILL after a grace period.
  Context managers stop their process in ``finally``, so a failing test still cleans up.
  Process groups that were never confirmed empty are listed by :func:`surviving_processes`
  and killed by :func:`kill_survivors` (also run at interpreter exit).

Exceptions
----------
::

    PeerError                 base class
    +-- PeerUnavailable       a program or jar is not installed (tests may skip or fail)
    +-- PeerStartError        a peer died, or did not become ready before its deadline

Example (not run: it starts real programs)::

    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        with jsamp_hub(tmp / "lock", home=tmp) as hub, xvfb(tmp) as x:
            with ds9(hub.lockfile, display=x.display, home=tmp) as peer:
                with ProbeClient(hub.lockfile) as probe:
                    probe.call_and_wait(peer.public_id, "ds9.get", {"cmd": "version"})

Layout
------
``base`` (constants, errors, ``missing``/``require``), ``process`` (spawn, stop by process
group, leak tracking, ``wait_until``, ``peer_env``), ``display`` (Xvfb), ``hubs`` (lockfiles,
``ProbeClient``, JSAMP's hub and tools), ``desktop`` (DS9, TOPCAT, Aladin, ``PeerLauncher``).
Everything public is importable from ``peers`` itself.
"""

from __future__ import annotations

from .base import (
    DEFAULT_GRACE,
    JSAMP_JAR,
    PeerError,
    PeerStartError,
    PeerUnavailable,
    missing,
    require,
)
from .desktop import PEERS, PeerHandle, PeerLauncher, PeerSpec, aladin, ds9, start_peer, topcat
from .display import XDisplay, xvfb
from .hubs import (
    HubHandle,
    ProbeClient,
    SampHub,
    ToolResult,
    jsamp_hub,
    run_jsamp_tool,
    wait_for_client,
    wait_for_hub,
)
from .process import (
    OWNER_VAR,
    ManagedProcess,
    descendants,
    kill_survivors,
    live_groups,
    peer_env,
    reap_orphans,
    spawn,
    surviving_processes,
    wait_until,
)

__all__ = [
    "DEFAULT_GRACE",
    "JSAMP_JAR",
    "OWNER_VAR",
    "PEERS",
    "HubHandle",
    "ManagedProcess",
    "PeerError",
    "PeerHandle",
    "PeerLauncher",
    "PeerSpec",
    "PeerStartError",
    "PeerUnavailable",
    "ProbeClient",
    "SampHub",
    "ToolResult",
    "XDisplay",
    "aladin",
    "descendants",
    "ds9",
    "jsamp_hub",
    "kill_survivors",
    "live_groups",
    "missing",
    "peer_env",
    "reap_orphans",
    "require",
    "run_jsamp_tool",
    "spawn",
    "start_peer",
    "surviving_processes",
    "topcat",
    "wait_for_client",
    "wait_for_hub",
    "wait_until",
    "xvfb",
]
