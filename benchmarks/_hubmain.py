"""Run one Python hub in the foreground until SIGTERM: ``python -m benchmarks._hubmain KIND LOCK``.

KIND is ``sampflow`` (an `AsyncHub`, as ``sampflow hub --lockfile LOCK`` runs it) or ``pyvo``
(``pyvo.samp.SAMPHubServer`` without the Web Profile). Started and stopped by `benchmarks.hubs`.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import threading


def run_sampflow(lockfile: str) -> None:
    from sampflow.samp.hub.server import AsyncHub

    async def main() -> None:
        hub = AsyncHub(lockfile=lockfile, label="bench")
        await hub.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await hub.stop(grace=0.5)

    asyncio.run(main())


def run_pyvo(lockfile: str) -> None:
    from pyvo.samp import SAMPHubServer

    hub = SAMPHubServer(lockfile=lockfile, web_profile=False)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    hub.start(wait=False)
    while not done.wait(0.5):
        pass
    hub.stop()


def main(argv: list[str]) -> int:
    kind, lockfile = argv
    {"sampflow": run_sampflow, "pyvo": run_pyvo}[kind](lockfile)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
