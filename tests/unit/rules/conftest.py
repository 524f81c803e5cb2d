from __future__ import annotations

import textwrap
from typing import Any

import pytest

from sampflow.rules.engine import Engine
from sampflow.rules.loader import load

from .memhub import MemoryHub


class Setup:
    """Engines under test, each registered with one in-memory `HubCore` (`hub`)."""

    def __init__(self) -> None:
        self.hub = MemoryHub()
        self.engines: list[Engine] = []
        self.records: list[Any] = []

    async def engine(self, text: str, name: str = "sampflow", **kw: Any) -> Engine:
        rs = load(textwrap.dedent(text), "rules.yaml", kw.pop("overrides", None))
        client = self.hub.client(name)
        eng = Engine(rs, client, on_firing=self.records.append, **kw)
        await eng.start()
        self.hub.when_quiet(eng.wait_idle)
        await self.hub.settle()
        self.engines.append(eng)
        return eng

    def statuses(self, rule: str | None = None) -> list[str]:
        return [r.status for r in self.records if rule is None or r.rule == rule]


@pytest.fixture
async def setup():
    s = Setup()
    yield s
    for e in s.engines:
        await e.stop(timeout=1)
