"""A rule file's ``client:`` map becomes the standard SAMP metadata (SAMP 1.3 section 3.6)
that ``sampflow run`` declares (`RuleSet.samp_metadata`; declared for real in
tests/integration/test_run_metadata.py)."""

from __future__ import annotations

import textwrap

import pytest

from sampflow.rules.loader import load
from sampflow.rules.model import metadata_key
from sampflow.samp.constants import SAMP_METADATA_KEYS


@pytest.mark.parametrize(("key", "declared"), [
    ("name", "samp.name"),
    ("description", "samp.description.text"),
    ("description_html", "samp.description.html"),
    ("icon", "samp.icon.url"),
    ("documentation", "samp.documentation.url"),
    ("description.text", "samp.description.text"),
    ("icon.url", "samp.icon.url"),
    ("documentation.url", "samp.documentation.url"),
    ("samp.icon.url", "samp.icon.url"),
    ("author.email", "author.email"),
    ("x-samp.affiliation.name", "x-samp.affiliation.name"),
    ("author", "samp.author"),
])
def test_client_keys_map_to_metadata_keys(key: str, declared: str) -> None:
    assert metadata_key(key) == declared


def test_every_standard_key_can_be_written() -> None:
    assert {metadata_key(k.removeprefix("samp.")) for k in SAMP_METADATA_KEYS} == set(
        SAMP_METADATA_KEYS)


def test_a_rule_files_description_is_samp_description_text() -> None:
    rs = load(textwrap.dedent("""
        client: {name: lab, description: the lab's rules, icon: "http://h/i.png"}
        rules:
          - name: r
            on: {mtype: test.go}
            do: [{log: hi}]
    """), "rules.yaml")
    assert rs.samp_metadata() == {"samp.name": "lab",
                                  "samp.description.text": "the lab's rules",
                                  "samp.icon.url": "http://h/i.png"}
