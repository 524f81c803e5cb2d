"""``sampflow status`` and ``sampflow retry``: what the delivery ledger holds, and asking for
files to be sent again (the ledger is :mod:`sampflow.rules.ledger`)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported when a command runs: `sampflow hub` need not load the engine
    from .rules.ledger import Ledger

__all__ = ["cmd_retry", "cmd_status", "open_ledger"]


def open_ledger(args: argparse.Namespace, command: str, *, readonly: bool = False
                ) -> Ledger | None:
    """The delivery ledger of ``--state`` (or the default state directory).

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line; ``args.state`` is the state directory or None.
    command : str
        The subcommand, named in the error message.
    readonly : bool
        Open without writing (``status``, a dry run).

    Returns
    -------
    Ledger or None
        None after printing to stderr why it cannot be opened.
    """
    import sqlite3

    from .rules.ledger import Ledger

    try:
        return Ledger.in_state_dir(args.state, readonly=readonly)
    except (OSError, sqlite3.Error) as exc:
        print(f"sampflow {command}: cannot open the delivery ledger in "
              f"{args.state or 'the state directory'}: {exc}", file=sys.stderr)
        return None


def cmd_status(args: argparse.Namespace) -> int:
    """``sampflow status``: what the delivery ledger holds, per rule."""
    import datetime as dt
    import json

    ledger = open_ledger(args, "status", readonly=True)
    if ledger is None:
        return 1
    try:
        summary = ledger.summary()
        if args.rule is not None:
            summary = {k: v for k, v in summary.items() if k == args.rule}
        shown = None if args.all else ("pending", "waiting", "failed", "retry")
        entries = [e for e in ledger.entries(args.rule, shown)]
    finally:
        ledger.close()
    if args.json:
        print(json.dumps({"rules": summary,
                          "entries": [{"rule": e.rule, "path": e.path, "state": e.state,
                                       "reason": e.reason, "recipients": e.recipients,
                                       "attempts": e.attempts, "updated": e.updated,
                                       "hold_until": e.hold_until} for e in entries]},
                         indent=1))
        return 0
    if not summary:
        print("the delivery ledger is empty: no file has been handled yet")
        return 0
    order = ("sent", "waiting", "pending", "retry", "failed", "skipped")
    for rule, counts in sorted(summary.items()):
        parts = [f"{counts[s]} {s}" for s in order if counts.get(s)]
        print(f"{rule}: {', '.join(parts)}")
    for e in entries:
        when = dt.datetime.fromtimestamp(e.updated).strftime("%Y-%m-%d %H:%M:%S")
        extra = ""
        if e.state == "waiting" and e.hold_until:
            until = dt.datetime.fromtimestamp(e.hold_until).strftime("%H:%M:%S")
            extra = f" (until {until})"
        text = e.reason or (f"to {e.recipients}" if e.recipients else "")
        print(f"  {e.state:8} {e.path}  {text}{extra}  [{when}, rule {e.rule!r}]")
    return 0


def cmd_retry(args: argparse.Namespace) -> int:
    """``sampflow retry``: ask for files to be sent again (now if ``sampflow run`` runs, else
    at its next start)."""
    import os

    if not args.files and not args.failed:
        print("sampflow retry: name files, or give --failed", file=sys.stderr)
        return 2
    ledger = open_ledger(args, "retry")
    if ledger is None:
        return 1
    try:
        n = ledger.request_retry(paths=[os.path.abspath(os.path.expanduser(f))
                                        for f in args.files],
                                 failed=args.failed, rule=args.rule)
    finally:
        ledger.close()
    print(f"{n} file(s) marked for retry" + ("" if n else
          " (nothing matched: see sampflow status --all)"))
    return 0 if n else 1
