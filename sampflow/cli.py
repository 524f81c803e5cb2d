"""The ``sampflow`` command: ``hub``, ``clients``, ``send``, ``run``, ``validate``, ``schema``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .samp.client.aio import AsyncSAMPClient

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


def parse_value(text: str) -> object:
    """A ``key=value`` value for ``sampflow send``: JSON lists and maps are parsed (their
    numbers and booleans become SAMP strings, section 3.3); anything else stays a string.

    >>> parse_value("[1, 2.5, true]")
    ['1', '2.5', '1']
    >>> parse_value("83.820")
    '83.820'
    >>> parse_value('{"a": [null]}')
    {'a': ['']}
    """
    import json

    if not text[:1] in ("[", "{", '"'):
        return text
    try:
        value = json.loads(text, parse_int=str, parse_float=str,
                           parse_constant=str)
    except ValueError:
        return text

    def samp(v: object) -> object:
        if v is True or v is False:
            return "1" if v else "0"
        if v is None:
            return ""
        if isinstance(v, list):
            return [samp(x) for x in v]
        if isinstance(v, dict):
            return {str(k): samp(x) for k, x in v.items()}
        return v

    return samp(value)


async def _connected(args: argparse.Namespace, name: str) -> "AsyncSAMPClient":
    from .samp.client.aio import AsyncSAMPClient

    client = AsyncSAMPClient(name, "sampflow command line", callable=False)
    await client.connect(lockfile=args.lockfile)
    return client


def cmd_clients(args: argparse.Namespace) -> int:
    """``sampflow clients``: list the registered clients with name, id and subscriptions."""
    from .samp.errors import SAMPHubError

    async def main() -> int:
        try:
            client = await _connected(args, "sampflow-clients")
        except SAMPHubError as exc:
            print(f"sampflow clients: {exc}", file=sys.stderr)
            return 1
        try:
            ids = await client.get_registered_clients()
            for client_id in ids:
                metadata = await client.get_metadata(client_id)
                subscriptions = await client.get_subscriptions(client_id)
                name = metadata.get("samp.name", "?")
                print(f"{client_id}\t{name}")
                for mtype in sorted(subscriptions):
                    print(f"\t\t{mtype}")
        finally:
            await client.disconnect()
        return 0

    return asyncio.run(main())


def cmd_send(args: argparse.Namespace) -> int:
    """``sampflow send MTYPE key=value...``: a notification, or with ``--wait`` a call."""
    import fnmatch
    import json

    from .samp.errors import SAMPHubError

    params: dict[str, object] = {}
    for item in args.params:
        key, sep, value = item.partition("=")
        if not sep or not key:
            print(f"sampflow send: expected key=value, got {item!r}", file=sys.stderr)
            return 2
        params[key] = parse_value(value)
    message = {"samp.mtype": args.mtype, "samp.params": params}

    async def main() -> int:
        try:
            client = await _connected(args, "sampflow-send")
        except SAMPHubError as exc:
            print(f"sampflow send: {exc}", file=sys.stderr)
            return 1
        try:
            if args.to:
                recipients = []
                for client_id in await client.get_registered_clients():
                    name = str((await client.get_metadata(client_id)).get("samp.name", ""))
                    if fnmatch.fnmatchcase(name.lower(), args.to.lower()) or client_id == args.to:
                        recipients.append(client_id)
                if not recipients:
                    print(f"sampflow send: no client named {args.to!r}", file=sys.stderr)
                    return 1
            else:
                recipients = list(await client.get_subscribed_clients(args.mtype))
            status = 0
            for recipient in recipients:
                if args.wait is None:
                    await client.notify(recipient, message)
                    print(f"{recipient}: sent")
                    continue
                response = await client.call_and_wait(recipient, message, args.wait)
                print(f"{recipient}: {json.dumps(response)}")
                if response.get("samp.status") == "samp.error":
                    status = 1
            if not recipients:
                print(f"sampflow send: no client is subscribed to {args.mtype}", file=sys.stderr)
                status = 1
            return status
        except SAMPHubError as exc:
            print(f"sampflow send: {exc}", file=sys.stderr)
            return 1
        finally:
            await client.disconnect()

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

    clients = sub.add_parser("clients", help="list the clients registered with the hub")
    clients.add_argument("--lockfile", help="lockfile of the hub (default: $SAMP_HUB or ~/.samp)")
    clients.set_defaults(func=cmd_clients)

    send = sub.add_parser("send", help="send a notification, or a call with --wait",
                          description="Values may be JSON: row-list=[1,2,3] sends a list.")
    send.add_argument("mtype", help="the MType, e.g. table.load.votable")
    send.add_argument("params", nargs="*", metavar="key=value", help="message parameters")
    send.add_argument("--to", help="recipient samp.name (glob) or public id; default: all "
                      "subscribed clients")
    send.add_argument("--wait", type=float, metavar="SECONDS",
                      help="send a call and print each response, waiting up to SECONDS")
    send.add_argument("--lockfile", help="lockfile of the hub (default: $SAMP_HUB or ~/.samp)")
    send.set_defaults(func=cmd_send)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``sampflow`` command with `argv`; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
