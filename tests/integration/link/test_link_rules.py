"""Rules addressing clients of other linked hubs (issue 13, optional item): ``to: NAME@HUB``
and ``from: "*@HUB"``, with ``sampflow run`` on hub A of a real federation."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import samphub
from linkfed import Clients, Federation, wait_proxy

RULES = """
client: {name: lab-rules}
rules:
  - name: pointings from desk B go to the sink on desk C
    on: {mtype: coord.pointAt.sky, from: "*@B"}
    do:
      - notify: {to: "sink@C", mtype: coord.pointAt.sky, params: {ra: "{{ params.ra }}",
                 dec: "{{ params.dec }}"}}
"""


async def test_rule_on_a_filters_on_origin_hub_and_addresses_a_client_on_c(
        tmp_path: Path, fed: Federation, clients: Clients,
        engines: Callable[..., samphub.EngineRun]) -> None:
    rules = tmp_path / "lab.yaml"
    rules.write_text(RULES)
    sink = await clients.on("C", "sink", {"coord.pointAt.sky": {}})
    from_b = await clients.on("B", "pointer")
    from_a = await clients.on("A", "local-pointer")
    engine = engines([rules], "--lockfile", str(fed["A"].lockfile), "--hub", "connect")
    await engine.await_connected()
    await wait_proxy(from_a, "sink (proxy@C)")
    engine_on_b = await wait_proxy(from_b, "lab-rules (proxy@A)")
    await wait_proxy(from_a, "pointer (proxy@B)")  # the engine must know the sender's name
    engine_id = engine.public_ids()[0]
    # From A itself: the rule does not fire.
    await from_a.client.notify(engine_id, {"samp.mtype": "coord.pointAt.sky",
                                           "samp.params": {"ra": "1", "dec": "2"}})
    # From B: it fires and reaches the sink on C.
    await from_b.client.notify(engine_on_b, {"samp.mtype": "coord.pointAt.sky",
                                             "samp.params": {"ra": "10.5", "dec": "-3"}})
    (got,) = await sink.wait_messages("coord.pointAt.sky", timeout=30)
    assert got["samp.params"] == {"ra": "10.5", "dec": "-3"}
    await asyncio.sleep(1.0)
    assert len(sink.messages("coord.pointAt.sky")) == 1, sink.messages()
    assert engine.terminate() == 0
