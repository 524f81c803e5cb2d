"""The sampflow rules engine: YAML rules that react to SAMP messages, hub events, files and timers.

A rule file::

    client: {name: sampflow-lab}            # the engine's SAMP name (optional)
    vars:                                   # defaults; --set folder=... overrides
      folder: ~/data/incoming
    rules:
      - name: new FITS images go to DS9
        on: {files: "{{ vars.folder }}", patterns: ["*.fits", "*.fits.gz"], settle: 1s}
        if: "header('NAXIS', 0) == 2"        # optional; expression, list, {and|or|not: ...}
        key: "{{ file.path }}"              # per-file runs serialised, files in parallel
        do:
          - send_file: SAOImageDS9          # FITS image -> image.load.fits, by content

      - name: re-broadcast TOPCAT row selections
        on: {mtype: table.select.rowList, from: topcat}
        do:
          - broadcast: table.select.rowList
            params: "{{ params }}"          # exactly one {{ }}: keeps its type (a map)
            except: sender

      - name: point Aladin at highlighted rows
        on: {mtype: table.highlight.row}
        do: [{point_at: Aladin}]            # RA/Dec of that row of the table seen loaded

Triggers (``on:``, one or a list): ``mtype``, ``registered``, ``unregistered``, ``metadata``,
``subscriptions``, ``files``, ``every``. Actions (``do:``, one or a list): ``notify``, ``call``,
``broadcast``, ``forward``, ``reply``, ``send_file``, ``point_at``, ``highlight_row``,
``select_rows``, ``log``, ``delay``, ``exec``; each takes ``continue_on_error`` and ``retry``.
Rule options: ``mode`` (single, restart, queued, parallel), ``max``, ``debounce``, ``throttle``,
``key``, ``enabled``. ``sampflow schema`` prints the whole format as JSON Schema.

Entry points::

    from sampflow.rules import load_paths, Engine, RuleFileError
    ruleset = load_paths(["rules.yaml"], {"folder": "/data"}, allow_exec=False)
    engine = Engine(ruleset, dry_run=False, allow_exec=False, trace="trace.jsonl")
    await engine.start(); await engine.connect(client); ...; await engine.stop()
"""

from __future__ import annotations

from .engine import Engine
from .errors import ActionError, ExpressionError, Problem, RuleFileError, RulesError
from .events import Event, FileEvent, HubEvent, SampMessage, TimerEvent
from .loader import load, load_file, load_files, load_paths
from .messenger import Messenger
from .model import Mode, Rule, RuleSet
from .schema import json_schema
from .trace import FiringRecord

__all__ = [
    "ActionError", "Engine", "Event", "ExpressionError", "FileEvent", "FiringRecord", "HubEvent",
    "Messenger", "Mode", "Problem", "Rule", "RuleFileError", "RuleSet", "RulesError",
    "SampMessage", "TimerEvent", "json_schema", "load", "load_file", "load_files", "load_paths",
]
