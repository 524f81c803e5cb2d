"""``sampflow link nats://HOST:4222``: run a hub that is linked to a NATS federation.

When no hub owns the lockfile that ``SAMP_HUB`` / ``--lockfile`` name, the command starts a
sampflow hub there and the link hosts its proxy clients inside it (`HubMirror`, through the
hub's profile plug-in interface): no extra sockets, and the SAMP clients (TOPCAT, DS9,
scripts) join that hub as usual. When a live hub already owns the lockfile (``sampflow hub``,
JSAMP's, astropy's: a hub in another process), the link joins it as SAMP clients instead, one
real client per proxy like JSAMP's bridge (`ClientMirror`); the command then exits (status 1)
when that hub stops.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import re
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .policy import DEFAULT_SHARE

if TYPE_CHECKING:
    from ..hub.server import AsyncHub

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
    parser.add_argument("--creds", metavar="FILE", help="NATS credentials file (a user and "
                        "password or token in the URL count as credentials too)")
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
                   run_until: Callable[[Callable[[], Awaitable[None]]], Awaitable[None]],
                   hub_setup: Callable[[AsyncHub], Awaitable[None]] | None = None) -> int:
    """Start the hub and its link, run them until `run_until` returns.

    Parameters
    ----------
    args : argparse.Namespace
        The options `add_link_arguments` defines.
    run_until : callable
        ``await run_until(stop)`` waits (for SIGINT / SIGTERM) and then awaits ``stop()``.
    hub_setup : callable, optional
        ``await hub_setup(hub)`` once the link's own hub has started (``sampflow link``
        adds the Web Profile with it); not called when the link joins a running hub.

    Returns
    -------
    int
        The exit status: 0, 1 when the hub or link cannot start, 2 for bad options.
    """
    from ..errors import SAMPError
    from ..hub.server import AsyncHub, HubAlreadyRunning

    try:
        from .link import HubLink, LinkError, has_url_credentials
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
    if not secret and not args.creds and not has_url_credentials(args.servers):
        print("sampflow link: a federation link needs a shared secret or NATS credentials "
              f"(use --secret-file, ${SECRET_ENV}, --creds or nats://USER:PASS@HOST)",
              file=sys.stderr)
        return 2
    hub: AsyncHub | None = AsyncHub(addr=args.addr, port=args.port, lockfile=args.lockfile,
                                    label=name)
    try:
        await hub.start()  # type: ignore[union-attr]
    except HubAlreadyRunning as exc:
        log.info("a hub is running (%s): joining it, with one client per proxy", exc.url)
        hub = None
    if hub is not None and hub_setup is not None:
        await hub_setup(hub)
    try:
        link = HubLink(hub, args.servers, name=name, share=args.share or DEFAULT_SHARE,
                       secret=secret, creds=args.creds, data_addr=args.data_addr,
                       prefix=args.prefix, lockfile=args.lockfile)
        await link.start()
    except (LinkError, OSError, SAMPError) as exc:
        print(f"sampflow link: {exc}", file=sys.stderr)
        if hub is not None:
            await hub.stop()
        return 2 if isinstance(exc, LinkError) else 1

    async def stop() -> None:
        await link.stop()
        if hub is not None:
            await hub.stop()

    waiting = asyncio.ensure_future(run_until(stop))
    lost = asyncio.ensure_future(link.hub_lost())
    await asyncio.wait({waiting, lost}, return_when=asyncio.FIRST_COMPLETED)
    if not waiting.done():  # the joined hub went away: stop (run_until's clean-up runs)
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
        return 1
    lost.cancel()
    return 0
