"""The ``sampflow`` command: ``hub``, ``clients``, ``send``, ``run``, ``status``, ``retry``,
``link``, ``validate``, ``schema``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from .ledger_commands import cmd_retry, cmd_status, open_ledger

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
    from .samp.errors import SAMPHubError
    from .samp.hub.server import AsyncHub

    async def main() -> int:
        hub = AsyncHub(addr=args.addr, port=args.port, lockfile=args.lockfile, label=args.label)
        try:
            await hub.start()
        except SAMPHubError as exc:  # a live hub there, or a path that is no lockfile
            print(f"sampflow hub: {exc}", file=sys.stderr)
            return 1
        await serve_web_profile(hub, args)
        await _run_until_signalled(hub.stop)
        return 0

    return asyncio.run(main())


def parse_value(text: str) -> object:
    """A ``key=value`` value for ``sampflow send``: JSON lists, maps and quoted strings are
    parsed, numbers keeping the text they were written with; anything else stays a string.
    The result is encoded as SAMP by `sampflow.samp.types.encode_value` (booleans
    ``"1"``/``"0"``, null ``""``).

    >>> parse_value("[1, 2.5, true]")
    ['1', '2.5', '1']
    >>> parse_value("83.820")
    '83.820'
    >>> parse_value('{"a": [null, 2.50]}')
    {'a': ['', '2.50']}
    """
    import json

    from .samp.types import encode_value

    if text[:1] not in ("[", "{", '"'):
        return text
    try:
        value = json.loads(text, parse_int=str, parse_float=str,
                           parse_constant=str)
    except ValueError:
        return text
    return encode_value(value)


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
    import json

    from .samp.errors import SAMPHubError
    from .samp.names import select_clients

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
                names: dict[str, str | None] = {}
                for client_id in await client.get_registered_clients():
                    name = (await client.get_metadata(client_id)).get("samp.name")
                    names[client_id] = name if isinstance(name, str) else None
                recipients = select_clients(args.to, names)
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

    ledger = open_ledger(args, "run", readonly=args.dry_run)
    if ledger is None:
        return 1

    async def main() -> int:
        try:
            engine = Engine(ruleset, dry_run=args.dry_run, allow_exec=args.allow_exec,
                            trace=args.trace, ledger=ledger)
        except RulesError as exc:
            print(f"sampflow run: {exc}", file=sys.stderr)
            return 1
        session = RunSession(engine, client_name=ruleset.client.get("name", "sampflow"),
                             hub_mode=args.hub, lockfile=args.lockfile,
                             hub_setup=web_profile_setup(args))
        finished.append(await session.run())
        # Stopped cleanly (unregistered, lockfile removed): a late Ctrl-C or SIGTERM while
        # the interpreter exits must not turn status 0 into a KeyboardInterrupt.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        return finished[-1]

    finished: list[int] = []
    try:
        return asyncio.run(main())
    except KeyboardInterrupt:
        if finished:  # a late Ctrl-C after a clean stop does not change the outcome
            return finished[-1]
        raise
    finally:
        ledger.close()


_DESCRIPTION = """\
sampflow: a SAMP 1.3 hub, client and rules engine for astronomy desktops
(TOPCAT, SAO DS9, Aladin, scripts).

Every command finds the hub as SAMP says: $SAMP_HUB (std-lockurl:URL) when set,
else ~/.samp; --lockfile PATH overrides both."""

_STATE_HELP = ("state directory holding the delivery ledger (default: $SAMPFLOW_STATE_DIR, "
               "else ~/.local/state/sampflow)")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sampflow")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


def cmd_link(args: argparse.Namespace) -> int:
    """``sampflow link``: run a hub federated with other hubs over NATS."""
    from .samp.link.command import run_link

    return asyncio.run(run_link(args, _run_until_signalled, hub_setup=web_profile_setup(args)))


# -- the Web Profile's options (SAMP 1.3 section 5), for hub, run and link -----------------------
def add_web_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the Web Profile options to an argparse (sub-)parser.

    ``--web-port``, ``--no-web-profile``, ``--web-allow ORIGIN`` (repeatable),
    ``--web-allow-all-for-testing``, ``--web-harmless MTYPE`` (repeatable),
    ``--web-consent-timeout``, ``--web-max-per-origin``. Read back by
    `web_profile_options`.
    """
    from .samp.hub.web import DEFAULT_MAX_PER_ORIGIN, WEB_PORT
    from .samp.hub.web_policy import DEFAULT_HARMLESS_MTYPES

    group = parser.add_argument_group("SAMP Web Profile (browser clients)")
    group.add_argument("--web-port", type=int, default=WEB_PORT, metavar="PORT",
                       help=f"Web Profile port (default {WEB_PORT}, the standard's; 0: any)")
    group.add_argument("--no-web-profile", action="store_true",
                       help="do not serve the Web Profile")
    group.add_argument("--web-allow", action="append", default=[], metavar="ORIGIN",
                       help="let web pages from ORIGIN (e.g. http://localhost:8000) register "
                            "without asking; repeatable. Others are asked about on the "
                            "terminal, or refused when there is none")
    group.add_argument("--web-allow-all-for-testing", action="store_true",
                       help="let EVERY web page register without asking (automated tests only)")
    group.add_argument("--web-harmless", action="append", default=None, metavar="MTYPE",
                       help="MType pattern web clients may send when the recipient does not "
                            "say (x-samp.mostly-harmless); repeatable; replaces the default "
                            f"list {' '.join(DEFAULT_HARMLESS_MTYPES)}")
    group.add_argument("--web-consent-timeout", type=float, default=60.0, metavar="SECONDS",
                       help="seconds to answer a registration prompt (default 60)")
    group.add_argument("--web-max-per-origin", type=_positive_int,
                       default=DEFAULT_MAX_PER_ORIGIN, metavar="N",
                       help="most web clients registered at once from one origin (default "
                            f"{DEFAULT_MAX_PER_ORIGIN}); more are refused")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def web_profile_options(args: argparse.Namespace) -> dict[str, Any] | None:
    """The keyword options of `~sampflow.samp.hub.web.attach_web_profile` that the options
    of `add_web_arguments` ask for.

    Returns
    -------
    dict or None
        None when ``--no-web-profile`` was given.
    """
    from .samp.hub.web import DEFAULT_MAX_PER_ORIGIN, WEB_PORT
    from .samp.hub.web_consent import allow_all_for_testing, default_consent
    from .samp.hub.web_policy import DEFAULT_HARMLESS_MTYPES

    if getattr(args, "no_web_profile", False):
        return None
    timeout = getattr(args, "web_consent_timeout", 60.0)
    if getattr(args, "web_allow_all_for_testing", False):
        consent: Any = allow_all_for_testing
        log.warning("--web-allow-all-for-testing: every web page may register without asking")
    else:
        consent = default_consent(getattr(args, "web_allow", ()) or (), prompt_timeout=timeout)
    return {
        "port": getattr(args, "web_port", WEB_PORT),
        "consent": consent,
        "harmless_mtypes": getattr(args, "web_harmless", None) or DEFAULT_HARMLESS_MTYPES,
        "consent_timeout": timeout + 5.0,
        "max_per_origin": getattr(args, "web_max_per_origin", DEFAULT_MAX_PER_ORIGIN),
    }


async def serve_web_profile(hub: AsyncHub, args: argparse.Namespace) -> None:
    """Add the Web Profile to `hub` as the options of `add_web_arguments` say; when its port
    is taken, log it and go on with the Standard Profile only."""
    options = web_profile_options(args)
    if options is None:
        return
    from .samp.hub.web import attach_web_profile

    try:
        await attach_web_profile(hub, **options)
    except OSError as exc:  # the port is taken (another hub's Web Profile)
        log.error("cannot serve the SAMP Web Profile on port %s (%s); continuing without it",
                  options["port"], exc)


def web_profile_setup(args: argparse.Namespace) -> Callable[[AsyncHub], Awaitable[None]] | None:
    """A ``hub_setup(hub)`` that runs `serve_web_profile`, or None with ``--no-web-profile``."""
    if getattr(args, "no_web_profile", False):
        return None

    async def setup(hub: AsyncHub) -> None:
        await serve_web_profile(hub, args)

    return setup


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``sampflow`` command.

    ``-v`` is accepted before and after the subcommand (``sampflow run FILE -v``).
    """
    verbose = argparse.ArgumentParser(add_help=False)
    verbose.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                         help="more output: -v logs every message (hub) or every firing "
                         "(run); -vv the libraries' debug output too")
    parser = argparse.ArgumentParser(prog="sampflow", description=_DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more output (also accepted after the subcommand)")
    parser.add_argument("--version", action="version", version=f"sampflow {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str, description: str | None = None
                ) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=description or help,
                              parents=[verbose])

    hub = command("hub", "run a SAMP hub in the foreground until Ctrl-C or SIGTERM")
    hub.add_argument("--lockfile", help="lockfile path (default: $SAMP_HUB or ~/.samp)")
    hub.add_argument("--addr", default="127.0.0.1", help="listen address (default: loopback)")
    hub.add_argument("--port", type=int, default=0, help="Standard Profile port (default: any)")
    hub.add_argument("--label", default="", help="text added to the hub's samp.name")
    hub.set_defaults(func=cmd_hub)

    clients = command("clients", "list the clients registered with the hub")
    clients.add_argument("--lockfile", help="lockfile of the hub (default: $SAMP_HUB or ~/.samp)")
    clients.set_defaults(func=cmd_clients)

    send = command("send", "send a notification, or a call with --wait",
                   "Send a notification, or with --wait a call whose responses are printed. "
                   "Values may be JSON: row-list=[1,2,3] sends a list.")
    send.add_argument("mtype", help="the MType, e.g. table.load.votable")
    send.add_argument("params", nargs="*", metavar="key=value", help="message parameters")
    send.add_argument("--to", help="recipient samp.name (glob) or public id; default: all "
                      "subscribed clients")
    send.add_argument("--wait", type=float, metavar="SECONDS",
                      help="send a call and print each response, waiting up to SECONDS")
    send.add_argument("--lockfile", help="lockfile of the hub (default: $SAMP_HUB or ~/.samp)")
    send.set_defaults(func=cmd_send)

    run = command("run", "run rule files against the hub (starting one if needed)")
    run.add_argument("files", nargs="+", metavar="FILE", help="YAML rule files")
    run.add_argument("--hub", choices=("auto", "connect", "start"), default="auto",
                     help="auto: join the running hub or start one (default); connect: only "
                     "join; start: start an embedded hub")
    run.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                     help="override a variable declared under vars:")
    run.add_argument("--dry-run", action="store_true",
                     help="run everything but send nothing; print each would-be message "
                     "(never starts a hub, never writes the ledger)")
    run.add_argument("--trace", metavar="FILE", help="append one JSON object per firing")
    run.add_argument("--allow-exec", action="store_true",
                     help="allow exec actions (argument lists, never a shell)")
    run.add_argument("--lockfile", help="lockfile of the hub (default: $SAMP_HUB or ~/.samp)")
    run.add_argument("--state", metavar="DIR", help=_STATE_HELP)
    run.set_defaults(func=cmd_run)

    status = command("status", "show what the delivery ledger holds: sent, waiting, failed",
                     "Per rule, how many files were sent, wait for a recipient, failed or "
                     "were skipped; then every file that waits, is pending or failed.")
    status.add_argument("--state", metavar="DIR", help=_STATE_HELP)
    status.add_argument("--rule", metavar="NAME", help="only this rule")
    status.add_argument("--all", action="store_true", help="list sent and skipped files too")
    status.add_argument("--json", action="store_true", help="print JSON (for scripts)")
    status.set_defaults(func=cmd_status)

    retry = command("retry", "send files again: failed ones, or those named",
                    "Mark files to be sent again: the running sampflow run picks them up "
                    "within seconds, else the next one does at start.")
    retry.add_argument("files", nargs="*", metavar="FILE", help="files to send again")
    retry.add_argument("--failed", action="store_true", help="every file that failed")
    retry.add_argument("--rule", metavar="NAME", help="only for this rule")
    retry.add_argument("--state", metavar="DIR", help=_STATE_HELP)
    retry.set_defaults(func=cmd_retry)

    validate = command("validate", "check rule files and print every error")
    validate.add_argument("files", nargs="+", metavar="FILE", help="YAML rule files")
    validate.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                          help="override a variable declared under vars:")
    validate.set_defaults(func=cmd_validate)

    link = command("link", "run a hub linked to other hubs through NATS (a lab of desktops)")
    from .samp.link.command import add_link_arguments

    add_link_arguments(link)
    link.set_defaults(func=cmd_link)

    schema = command("schema", "print the JSON Schema of the rule-file format (for editors)")
    schema.set_defaults(func=cmd_schema)

    for sub_parser in (hub, run, link):
        add_web_arguments(sub_parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``sampflow`` command with `argv`; returns the exit status (130 after a Ctrl-C
    that came before a command could install its own handling, without a traceback)."""
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        _setup_logging(args.verbose)
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("sampflow: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
