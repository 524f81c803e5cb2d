"""``sampflow link nats://HOST:4222``: run a hub that is linked to a NATS federation.

The link hosts its proxy clients inside the hub's own process (`HubMirror`), so the command
starts the local hub itself, on the lockfile that ``SAMP_HUB`` / ``--lockfile`` name, and its
SAMP clients (TOPCAT, DS9, scripts) join it as usual. If a hub already owns that lockfile the
command stops with an error: stop that hub (or point ``--lockfile`` elsewhere) and let
``sampflow link`` run the hub.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from .policy import DEFAULT_SHARE

__all__ = ["SECRET_ENV", "add_link_arguments", "run_link"]

log = logging.getLogger("sampflow.link")

#: Environment variable holding the federation's shared secret.
SECRET_ENV = "SAMPFLOW_LINK_SECRET"


def add_link_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``sampflow link`` options to `parser`."""
    parser.add_argument("servers", nargs="+", metavar="nats://HOST:4222",
                        help="NATS server URL(s) of the federation")
    parser.add_argument("--name", help="this hub's name in the federation (default: the "
                        "host name); proxies of its clients elsewhere are 'NAME (proxy@name)'")
    parser.add_argument("--share", nargs="+", metavar="MTYPE-PATTERN",
                        help="MType patterns that may cross (default: "
                        f"{' '.join(DEFAULT_SHARE)}); exec-like MTypes never do")
    parser.add_argument("--creds", metavar="FILE", help="NATS credentials file")
    parser.add_argument("--secret-file", metavar="FILE",
                        help=f"file holding the federation's shared secret (or set ${SECRET_ENV})")
    parser.add_argument("--data-addr", metavar="ADDR",
                        help="address serving files that crossing messages mention (default: "
                        "the one that reaches the NATS server)")
    parser.add_argument("--prefix", default="sampflow.link", help="NATS subject prefix")
    parser.add_argument("--lockfile", help="lockfile path (default: $SAMP_HUB or ~/.samp)")
    parser.add_argument("--addr", default="127.0.0.1", help="hub listen address (loopback)")
    parser.add_argument("--port", type=int, default=0, help="Standard Profile port (any)")


def default_name() -> str:
    """The host name, cut down to what a hub name may hold."""
    name = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname().split(".")[0])[:64]
    return name or "hub"


def _secret(args: argparse.Namespace) -> str | None:
    if args.secret_file:
        return Path(args.secret_file).read_text("utf-8").strip() or None
    return os.environ.get(SECRET_ENV) or None


async def run_link(args: argparse.Namespace,
                   run_until: Callable[[Callable[[], Awaitable[None]]], Awaitable[None]]) -> int:
    """Start the hub and its link, run them until `run_until` returns.

    Parameters
    ----------
    args : argparse.Namespace
        The options `add_link_arguments` defines.
    run_until : callable
        ``await run_until(stop)`` waits (for SIGINT / SIGTERM) and then awaits ``stop()``.

    Returns
    -------
    int
        The exit status: 0, 1 when the hub or link cannot start, 2 for bad options.
    """
    from ..hub.server import AsyncHub, HubAlreadyRunning

    try:
        from .link import HubLink, LinkError
    except ImportError as exc:  # nats-py is an optional dependency
        print(f"sampflow link needs nats-py ({exc}): pip install 'sampflow[link]'",
              file=sys.stderr)
        return 2

    name = args.name or default_name()
    try:
        secret = _secret(args)
    except OSError as exc:
        print(f"sampflow link: cannot read the secret: {exc}", file=sys.stderr)
        return 2
    hub = AsyncHub(addr=args.addr, port=args.port, lockfile=args.lockfile, label=name)
    try:
        link = HubLink(hub, args.servers, name=name, share=args.share or DEFAULT_SHARE,
                       secret=secret, creds=args.creds, data_addr=args.data_addr,
                       prefix=args.prefix)
    except LinkError as exc:
        print(f"sampflow link: {exc} (use --secret-file, ${SECRET_ENV} or --creds)",
              file=sys.stderr)
        return 2
    try:
        await hub.start()
    except HubAlreadyRunning as exc:
        print(f"sampflow link: {exc}; stop it, or give --lockfile, and let sampflow link "
              "run the hub", file=sys.stderr)
        return 1
    try:
        await link.start()
    except OSError as exc:
        print(f"sampflow link: {exc}", file=sys.stderr)
        await hub.stop()
        return 1

    async def stop() -> None:
        await link.stop()
        await hub.stop()

    await run_until(stop)
    return 0
