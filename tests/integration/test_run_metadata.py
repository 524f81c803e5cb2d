"""``sampflow run`` declares the rule file's ``client:`` map as the standard SAMP metadata
(SAMP 1.3 section 3.6): ``description`` is ``samp.description.text``, never a bare
``description`` key.

A real hub (`SAMPHubServer`, in this process, its own lockfile in ``tmp_path``), the engine as
a user runs it (``sampflow run FILE --lockfile L --state S --hub connect``, a subprocess
stopped by PID), and a separate `SAMPIntegratedClient` that asks the hub for the engine's
metadata over real sockets.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sampflow.samp import SAMPHubServer, SAMPIntegratedClient

pytestmark = pytest.mark.timeout(120)

RULES = """\
client:
  name: meta-engine
  description: sends what the lab's rules say, where they say
  description_html: "<p>sends what the <b>lab's rules</b> say</p>"
  icon: http://127.0.0.1:1/sampflow.png
  documentation: http://127.0.0.1:1/rules.html
  author.email: lab@example.org
rules:
  - name: say hello
    on: {mtype: test.hello}
    do: [{log: hello}]
"""


@pytest.fixture
def hub(hub_server: SAMPHubServer) -> SAMPHubServer:
    """The astropy-compatible hub these tests use (see conftest)."""
    return hub_server


@pytest.fixture
def probe(hub: SAMPHubServer) -> Iterator[SAMPIntegratedClient]:
    client = SAMPIntegratedClient(name="metadata-probe")
    client.connect(hub_params=hub.params)
    try:
        yield client
    finally:
        client.disconnect()


def test_run_declares_the_rule_files_client_map_as_samp_metadata(
        tmp_path: Path, hub: SAMPHubServer, probe: SAMPIntegratedClient, engines: Any) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    assert hub.lockfile is not None
    engine = engines([rules], "--lockfile", hub.lockfile, "--state", str(tmp_path / "state"),
                     "--hub", "connect")
    engine_id = engine.wait_connected()

    metadata = probe.get_metadata(engine_id)

    assert metadata["samp.name"] == "meta-engine"
    assert metadata["samp.description.text"] == "sends what the lab's rules say, where they say"
    assert metadata["samp.description.html"] == "<p>sends what the <b>lab's rules</b> say</p>"
    assert metadata["samp.icon.url"] == "http://127.0.0.1:1/sampflow.png"
    assert metadata["samp.documentation.url"] == "http://127.0.0.1:1/rules.html"
    assert metadata["author.email"] == "lab@example.org"
    assert not {"description", "samp.description", "samp.icon", "samp.documentation",
                "samp.description_html"} & set(metadata)
    assert engine.terminate() == 0


def test_run_without_a_client_map_declares_the_defaults(
        tmp_path: Path, hub: SAMPHubServer, probe: SAMPIntegratedClient, engines: Any) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(textwrap.dedent("""\
        rules:
          - name: say hello
            on: {mtype: test.hello}
            do: [{log: hello}]
    """))
    assert hub.lockfile is not None
    engine = engines([rules], "--lockfile", hub.lockfile, "--state", str(tmp_path / "state"),
                     "--hub", "connect")
    metadata = probe.get_metadata(engine.wait_connected())
    assert (metadata["samp.name"], metadata["samp.description.text"]) == (
        "sampflow", "sampflow rules engine")
    assert engine.terminate() == 0
