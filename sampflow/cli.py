"""The ``sampflow`` command: ``hub``, ``clients``, ``send``, ``run``, ``validate``, ``schema``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Sequence

__all__ = ["main", "build_parser"]

log = logging.getLogger("sampflow")


def _setup_logging(verbose: int) -> None:
    level = logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s: %(message)s",
                        datefmt="%H:%M:%S", stream=sys.stderr)


async def _run_until_signalled(stop: Callable[[], object]) -> None:
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, done.set)
    try:
        await done.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        result = stop()
        if asyncio.iscoroutine(result):
            await result


def cmd_hub(args: argparse.Namespace) -> int:
    """``sampflow hub``: run a hub in the foreground until Ctrl-C or SIGTERM."""
    from .samp.hub.server import AsyncHub, HubAlreadyRunning

    async def main() -> int:
        hub = AsyncHub(addr=args.addr, port=args.port, lockfile=args.lockfile, label=args.label)
        try:
            await hub.start()
        except HubAlreadyRunning as exc:
            print(f"sampflow hub: {exc}", file=sys.stderr)
            return 1
        if getattr(args, "web_profile", False):
            from .samp.hub.web import attach_web_profile_from_args

            await attach_web_profile_from_args(hub, args)
        await _run_until_signalled(hub.stop)
        return 0

    return asyncio.run(main())


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``sampflow`` command."""
    parser = argparse.ArgumentParser(prog="sampflow", description=__doc__)
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="log every message (hub) or every firing (run)")
    sub = parser.add_subparsers(dest="command", required=True)

    hub = sub.add_parser("hub", help="run a SAMP hub in the foreground")
    hub.add_argument("--lockfile", help="lockfile path (default: $SAMP_HUB or ~/.samp)")
    hub.add_argument("--addr", default="127.0.0.1", help="listen address (default: loopback)")
    hub.add_argument("--port", type=int, default=0, help="Standard Profile port (default: any)")
    hub.add_argument("--label", default="", help="text added to the hub's samp.name")
    hub.set_defaults(func=cmd_hub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``sampflow`` command with `argv`; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
