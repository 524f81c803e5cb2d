"""The rule-file examples in README.md are copy-pasteable: each one loads (issue 10, item 6)."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from sampflow.rules.loader import load as load_text

README = Path(__file__).resolve().parents[3] / "README.md"


def blocks_after(heading: str) -> list[str]:
    """The ```yaml blocks between `heading` and the next heading of the same level."""
    text = README.read_text()
    start = text.index(heading)
    end = text.find("\n### ", start + len(heading))
    section = text[start:end if end > 0 else None]
    return re.findall(r"```yaml\n(.*?)```", section, re.DOTALL)


TRIGGERS = [line for line in blocks_after("### Triggers")[0].splitlines() if line.strip()]


@pytest.mark.parametrize("line", TRIGGERS)
def test_each_trigger_example_loads(line: str) -> None:
    trigger = line.split("#")[0].strip()
    assert trigger.startswith("on: ")
    ruleset = load_text(f"rules:\n  - name: example\n    {trigger}\n    do: [{{log: hi}}]\n",
                        "README.md")
    assert len(ruleset.rules[0].triggers) == 1


def test_every_action_example_loads_and_every_action_has_one() -> None:
    from sampflow.rules.spec import ACTIONS

    (block,) = blocks_after("### Actions")
    text = ("rules:\n  - name: examples\n    on: {mtype: table.select.rowList}\n    do:\n"
            + textwrap.indent(block, "      "))
    ruleset = load_text(text, "README.md", allow_exec=True)
    keys = {line.split(":")[0].lstrip("- ").strip() for line in block.splitlines()
            if line.startswith("- ")}
    assert keys == set(ACTIONS), set(ACTIONS) ^ keys
    assert len(ruleset.rules[0].actions) == block.count("\n- ") + 1


def test_the_newest_image_example_loads() -> None:
    (block,) = blocks_after("\"When DS9 registers, load the newest image\"")[:1]
    ruleset = load_text("vars: {folder: /data}\nrules:\n" + block, "README.md")
    assert ruleset.rules[0].name == "a new DS9 gets the newest image"
