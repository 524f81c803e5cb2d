"""Fixtures for the federation tests: a real ``nats-server`` and three linked hubs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from linkfed import TEST_SHARE, Clients, Federation, NatsServer


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    with NatsServer(tmp_path / "nats") as server:
        yield server


@pytest.fixture
def fed(tmp_path: Path, nats_server: NatsServer) -> Iterator[Federation]:
    with Federation(tmp_path, nats_server.url, "A", "B", "C", share=TEST_SHARE) as federation:
        yield federation
    logs = federation.logs(1_000_000)
    assert "Traceback" not in logs, logs


@pytest.fixture
async def clients(fed: Federation) -> AsyncIterator[Clients]:
    made = Clients(fed)
    yield made
    await made.close()
