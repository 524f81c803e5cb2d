"""The consent gate counts only real prompts (issue 9 item 8), without sockets."""

from __future__ import annotations

import asyncio

from sampflow.samp.hub.web_consent import (
    AllowList,
    ConsentGate,
    ConsentRequest,
    allow_all_for_testing,
    as_consent,
    default_consent,
    deny_all,
)

ALLOWED = "http://allowed:1"


def req(origin: str | None = ALLOWED) -> ConsentRequest:
    return ConsentRequest("page", origin, "127.0.0.1", {"samp.name": "page"})


async def test_allow_list_answers_are_not_pending_prompts() -> None:
    gate = ConsentGate(default_consent([ALLOWED], interactive=False), max_pending=2)
    answers = await asyncio.gather(*(gate.ask(req()) for _ in range(50)))
    assert answers == [True] * 50
    assert await gate.ask(req("http://other:1")) is False
    assert gate.pending == 0


async def test_allowed_origins_pass_while_prompts_fill_the_gate() -> None:
    """Prompts for unknown origins use up max_pending; allow-listed pages still register."""
    release = asyncio.Event()
    asked: list[str | None] = []

    class Prompting:
        def __init__(self) -> None:
            self.allowed = AllowList([ALLOWED])

        def answer_now(self, request: ConsentRequest) -> bool | None:
            return True if self.allowed(request) else None

        async def __call__(self, request: ConsentRequest) -> bool:
            asked.append(request.origin)
            await release.wait()
            return True

    gate = ConsentGate(Prompting(), timeout=30, max_pending=2)
    prompts = [asyncio.ensure_future(gate.ask(req(f"http://unknown:{i}"))) for i in range(2)]
    await asyncio.sleep(0.01)
    assert gate.pending == 2
    assert await gate.ask(req("http://unknown:9")) is False  # a third prompt: refused
    assert await asyncio.gather(*(gate.ask(req()) for _ in range(20))) == [True] * 20
    release.set()
    assert await asyncio.gather(*prompts) == [True, True]
    assert asked == ["http://unknown:0", "http://unknown:1"] and gate.pending == 0


async def test_ready_policies_answer_at_once() -> None:
    for policy, expected in ((allow_all_for_testing, True), (deny_all, False),
                             (AllowList([ALLOWED]), True)):
        consent = as_consent(policy)
        assert consent.answer_now(req()) is expected  # type: ignore[attr-defined]
        assert await consent(req()) is expected
        gate = ConsentGate(consent, max_pending=0)  # no prompts allowed at all
        assert await gate.ask(req()) is expected
    # A plain blocking function may prompt: it is counted.
    assert await ConsentGate(as_consent(lambda r: True), max_pending=0).ask(req()) is False
