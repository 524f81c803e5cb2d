"""The ``sampflow`` command: ``hub``, ``clients``, ``send``, ``run``, ``link``, ``validate``, ``schema``."""

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
    from .samp.hub.server import AsyncHub

__all__ = ["main", "build_parser"]

log = logging.getLogger("sampflow")


def _setup_logging(verbose: int) -> None:
    """INFO for everything; with ``-v`` DEBUG for sampflow's own loggers (every message the
    hub relays, every rule firing); with ``-vv`` DEBUG for the libraries too."""
    logging.basicConfig(level=logging.DEBUG if verbose > 1 else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s: %(message)s",
                        datefmt="%H:%M:%S", stream=sys.stderr)
    if verbose:
        logging.getLogger("sampflow").setLevel(logging.DEBUG)


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
        if not args.no_web_profile:
            from .samp.hub.web import attach_web_profile_from_args

            try:
                await attach_web_profile_from_args(hub, args)
            except OSError as exc:  # the port is taken (another hub's Web Profile)
                log.warning("Web Profile not started (%s); the Standard Profile runs on", exc)
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


def _overrides(items: list[str]) -> dict[str, str] | None:
    overrides: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            print(f"sampflow: --set expects NAME=VALUE, got {item!r}", file=sys.stderr)
            return None
        overrides[name] = value
    return overrides


def _missing_folders(ruleset: object) -> list[str]:
    """One line per ``files`` trigger whose folder does not exist: ``where: rule: reason``."""
    from pathlib import Path

    from .rules.model import FilesTrigger

    lines = []
    for rule in ruleset.rules:  # type: ignore[attr-defined]
        for trigger in rule.triggers:
            if isinstance(trigger, FilesTrigger):
                folder = Path(trigger.path).expanduser()
                if not folder.is_dir():
                    lines.append(f"{rule.where or '?'}: rule {rule.name!r}: watched folder "
                                 f"{folder} does not exist")
    return lines


def cmd_validate(args: argparse.Namespace) -> int:
    """``sampflow validate FILE...``: load and check rule files; print every error."""
    from .rules.errors import RuleFileError
    from .rules.loader import load_paths

    overrides = _overrides(args.set)
    if overrides is None:
        return 2
    try:
        ruleset = load_paths(args.files, overrides)
    except RuleFileError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    print(f"{', '.join(args.files)}: {len(ruleset.rules)} rules OK")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    """``sampflow schema``: print the JSON Schema of the rule-file format."""
    from .rules.schema import dumps

    print(dumps())
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """``sampflow run FILE...``: validate the rules, then run them against a hub."""
    from .rules.engine import Engine
    from .rules.errors import RuleFileError, RulesError
    from .rules.loader import load_paths
    from .session import RunSession

    overrides = _overrides(args.set)
    if overrides is None:
        return 2
    try:
        ruleset = load_paths(args.files, overrides, allow_exec=args.allow_exec)
    except RuleFileError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"sampflow run: {len(exc.problems)} error(s); nothing was started",
              file=sys.stderr)
        return 1

    missing = _missing_folders(ruleset)
    if missing:
        for line in missing:
            print(line, file=sys.stderr)
        print("sampflow run: create the folder(s), or point the rule at another with --set; "
              "nothing was started", file=sys.stderr)
        return 1

    async def main() -> int:
        try:
            engine = Engine(ruleset, dry_run=args.dry_run, allow_exec=args.allow_exec,
                            trace=args.trace)
        except RulesError as exc:
            print(f"sampflow run: {exc}", file=sys.stderr)
            return 1
        hub_setup = None
        if not args.no_web_profile:
            from .samp.hub.web import attach_web_profile_from_args

            async def hub_setup(hub: AsyncHub) -> None:
                try:
                    await attach_web_profile_from_args(hub, args)
                except OSError as exc:
                    log.warning("Web Profile not started (%s); the Standard Profile runs on",
                                exc)

        session = RunSession(engine, client_name=ruleset.client.get("name", "sampflow"),
                             hub_mode=args.hub, lockfile=args.lockfile, hub_setup=hub_setup)
        return await session.run()

    return asyncio.run(main())


def cmd_link(args: argparse.Namespace) -> int:
    """``sampflow link``: run a hub federated with other hubs over NATS."""
    from .samp.link.command import run_link

    return asyncio.run(run_link(args, _run_until_signalled))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``sampflow`` command."""
    from .samp.hub.web import add_web_arguments

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

    run = sub.add_parser("run", help="run rule files against the hub (starting one if needed)")
    run.add_argument("files", nargs="+", metavar="FILE", help="YAML rule files")
    run.add_argument("--hub", choices=("auto", "connect", "start"), default="auto",
                     help="auto: join the running hub or start one (default); connect: only "
                     "join; start: start an embedded hub")
    run.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                     help="override a variable declared under vars:")
    run.add_argument("--dry-run", action="store_true",
                     help="run everything but send nothing; print each would-be message")
    run.add_argument("--trace", metavar="FILE", help="append one JSON object per firing")
    run.add_argument("--allow-exec", action="store_true",
                     help="allow exec actions (argument lists, never a shell)")
    run.add_argument("--lockfile", help="lockfile of the hub (default: $SAMP_HUB or ~/.samp)")
    run.set_defaults(func=cmd_run)

    validate = sub.add_parser("validate", help="check rule files and print every error")
    validate.add_argument("files", nargs="+", metavar="FILE")
    validate.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    validate.set_defaults(func=cmd_validate)

    link = sub.add_parser("link", help="run a hub linked to other hubs through NATS")
    from .samp.link.command import add_link_arguments

    add_link_arguments(link)
    link.set_defaults(func=cmd_link)

    schema = sub.add_parser("schema", help="print the JSON Schema of the rule-file format")
    schema.set_defaults(func=cmd_schema)

    for sub_parser in (hub, run, link):
        add_web_arguments(sub_parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``sampflow`` command with `argv`; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
