"""Consent for Web Profile registrations (SAMP 1.3 section 5.4.2, "Registration security").

The standard asks a Web Profile hub to obtain the user's explicit consent before it lets a
web page register. Here a *consent policy* is anything `as_consent` accepts; it is called
with a `ConsentRequest` and answers True (allow) or False (refuse):

- an ``async def policy(request) -> bool``;
- a plain ``def policy(request) -> bool``: run on a worker thread through
  ``loop.run_in_executor``, one request at a time, so that it may block (a GUI dialog, a
  terminal prompt) without stalling the hub;
- an astropy / pyvo ``WebProfileDialog`` (an object with ``show_dialog`` and
  ``handle_queue``): it gets the ``queue_request`` / ``queue_result`` queues its base class
  expects, and its own thread or GUI loop answers;
- None: no consent, every registration refused.

A policy may also have a method ``answer_now(request) -> bool | None``: an answer given at
once, without asking anyone (an allow-list), or None when the user must be asked. Only the
requests that are asked count against `ConsentGate`'s ``max_pending``, so prompts piling up
never make the hub refuse a page that needs no prompt.

Ready policies: `AllowList` (origins given on the command line), `TerminalPrompt` (asks on
the controlling terminal with a timeout), `allow_all_for_testing`, `deny_all`, and
`default_consent`, which combines them as ``sampflow hub`` does: an origin on the allow-list
is accepted at once; otherwise the terminal is asked when stdin is a terminal; otherwise the
registration is refused. `AllowList`, `allow_all_for_testing` and `deny_all` answer at once
(`InstantConsent`). `ConsentGate` puts a bound and a timeout around any policy: a pending
prompt never blocks other hub traffic, and a policy that fails or times out refuses.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import queue
import select
import sys
import threading
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TextIO

__all__ = [
    "AllowList",
    "AsyncConsent",
    "ConsentGate",
    "ConsentRequest",
    "InstantConsent",
    "TerminalPrompt",
    "allow_all_for_testing",
    "as_consent",
    "default_consent",
    "deny_all",
    "normalise_origin",
]

log = logging.getLogger("sampflow.hub.web")

#: What every policy is turned into by `as_consent`.
AsyncConsent = Callable[["ConsentRequest"], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class ConsentRequest:
    """A web client asking to register (the argument of every consent policy).

    Attributes
    ----------
    name : str
        The ``samp.name`` the client gave in its identity information (untrusted text).
    origin : str or None
        The ``Origin`` header of the request: the web page's origin, as the browser
        vouches for it; None for a non-browser client.
    peer : str or None
        The address the request came from (always a loopback address).
    identity : dict
        The whole identity-info map given to ``samp.webhub.register``.
    """

    name: str
    origin: str | None
    peer: str | None = None
    identity: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """One line for logs and prompts, with control characters removed."""
        name = _printable(self.name)
        origin = _printable(self.origin) if self.origin else "no Origin (not a browser)"
        return f"web client {name!r} from {origin}"


def _printable(text: str, limit: int = 200) -> str:
    cleaned = "".join(ch if ch.isprintable() else "?" for ch in text)
    return cleaned[:limit] + ("..." if len(cleaned) > limit else "")


def normalise_origin(origin: str) -> str:
    """The comparable form of an origin: lower case, no trailing slash.

    >>> normalise_origin("HTTP://LocalHost:8000/")
    'http://localhost:8000'
    """
    return origin.strip().rstrip("/").lower()


class AllowList:
    """Consent for web pages whose origin is on a list, refusal for every other.

    Parameters
    ----------
    origins : iterable of str
        Origins such as ``http://localhost:8000`` (scheme, host and port, as browsers send
        them in ``Origin``). ``null`` may be listed to accept pages opened from files.

    Examples
    --------
    >>> policy = AllowList(["http://localhost:8000"])
    >>> policy(ConsentRequest("page", "http://LOCALHOST:8000"))
    True
    >>> policy(ConsentRequest("page", "http://localhost:8001"))
    False
    """

    def __init__(self, origins: Iterable[str]) -> None:
        self.origins = frozenset(normalise_origin(o) for o in origins if o)

    def __contains__(self, origin: object) -> bool:
        return isinstance(origin, str) and normalise_origin(origin) in self.origins

    def __call__(self, request: ConsentRequest) -> bool:
        return request.origin is not None and request.origin in self

    def answer_now(self, request: ConsentRequest) -> bool:
        """The answer, at once (an allow-list never needs to ask)."""
        return self(request)

    def __repr__(self) -> str:
        return f"AllowList({sorted(self.origins)!r})"


def allow_all_for_testing(request: ConsentRequest) -> bool:
    """Consent to every registration. Only for automated tests: any web page the user
    opens could then join the hub."""
    log.warning("consenting without asking (testing mode) to %s", request.describe())
    return True


def deny_all(request: ConsentRequest) -> bool:
    """Refuse every registration."""
    return False


class InstantConsent:
    """A policy that decides at once, asking nobody (never counted as a pending prompt).

    Parameters
    ----------
    decide : callable
        ``decide(request) -> bool``; must not block.
    """

    def __init__(self, decide: Callable[[ConsentRequest], bool]) -> None:
        self.decide = decide

    def answer_now(self, request: ConsentRequest) -> bool:
        """The answer, at once."""
        return bool(self.decide(request))

    async def __call__(self, request: ConsentRequest) -> bool:
        return self.answer_now(request)

    def __repr__(self) -> str:
        return f"InstantConsent({self.decide!r})"


class TerminalPrompt:
    """Ask the user on a terminal, with a timeout; no answer means no.

    Each prompt runs on a worker thread (``loop.run_in_executor``) that waits for a line
    with `select`, so the thread itself gives up after `timeout` seconds and never
    lingers on a read. Prompts are asked one at a time.

    Parameters
    ----------
    timeout : float
        Seconds the user has to answer.
    stdin, stdout : file, optional
        Where to read the answer and write the question (``sys.stdin`` and ``sys.stderr``).
    """

    def __init__(self, timeout: float = 60.0, *, stdin: TextIO | None = None,
                 stdout: TextIO | None = None) -> None:
        self.timeout = timeout
        self._stdin = stdin
        self._stdout = stdout
        self._lock = asyncio.Lock()

    async def __call__(self, request: ConsentRequest) -> bool:
        async with self._lock:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(None, self._ask, request)

    def _ask(self, request: ConsentRequest) -> bool:
        stdin = self._stdin or sys.stdin
        stdout = self._stdout or sys.stderr
        stdout.write(
            f"\nSAMP Web Profile: {request.describe()} asks to register with the hub.\n"
            "Only allow pages you trust: a registered page can message your desktop "
            f"applications.\nAllow it? [y/N] (no answer in {self.timeout:g} s means no): "
        )
        stdout.flush()
        try:
            ready, _, _ = select.select([stdin], [], [], self.timeout)
        except (OSError, ValueError):
            return False
        if not ready:
            stdout.write("\n(no answer: refused)\n")
            stdout.flush()
            return False
        answer = stdin.readline().strip().lower()
        return answer in ("y", "yes")


class _ThreadedConsent:
    """A blocking policy run on a worker thread, one request at a time."""

    def __init__(self, policy: Callable[[ConsentRequest], bool]) -> None:
        self.policy = policy
        self._lock = asyncio.Lock()

    async def __call__(self, request: ConsentRequest) -> bool:
        async with self._lock:
            loop = asyncio.get_running_loop()
            return bool(await loop.run_in_executor(None, self.policy, request))


class _DialogConsent:
    """An astropy / pyvo ``WebProfileDialog``: requests go to its ``queue_request`` as
    ``(identity_info, client_address, origin)``, its answer comes back on ``queue_result``.
    """

    def __init__(self, dialog: Any, timeout: float) -> None:
        self.dialog = dialog
        self.timeout = timeout
        self._requests: queue.Queue[Any] = queue.Queue(1)
        self._results: queue.Queue[Any] = queue.Queue(1)
        dialog.queue_request = self._requests
        dialog.queue_result = self._results
        self._lock = asyncio.Lock()
        self._thread_lock = threading.Lock()

    async def __call__(self, request: ConsentRequest) -> bool:
        async with self._lock:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(None, self._ask, request)

    def _ask(self, request: ConsentRequest) -> bool:
        with self._thread_lock:
            while not self._results.empty():  # a late answer to an abandoned request
                self._results.get_nowait()
            identity = dict(request.identity) or {"samp.name": request.name}
            self._requests.put((identity, (request.peer or "127.0.0.1", 0), request.origin))
            try:
                return bool(self._results.get(timeout=self.timeout))
            except queue.Empty:
                try:
                    self._requests.get_nowait()
                except queue.Empty:
                    pass
                return False


def as_consent(policy: Any, *, timeout: float = 60.0) -> AsyncConsent:
    """Turn any supported consent policy into an async callable (see the module docs).

    Parameters
    ----------
    policy : callable, WebProfileDialog or None
        The policy.
    timeout : float
        For dialogs: seconds to wait for the user's answer.

    Returns
    -------
    callable
        ``await consent(request) -> bool``; with an ``answer_now`` method when `policy`
        can answer without asking (`AllowList`, `allow_all_for_testing`, `deny_all`, or any
        async policy that has one itself).

    Raises
    ------
    TypeError
        If `policy` is none of the supported kinds.
    """
    if policy is None:
        async def refuse(request: ConsentRequest) -> bool:
            return False
        return refuse
    if hasattr(policy, "show_dialog") and hasattr(policy, "handle_queue"):
        return _DialogConsent(policy, timeout)
    if policy is allow_all_for_testing or policy is deny_all or isinstance(policy, AllowList):
        return InstantConsent(policy)
    method = type(policy).__call__ if callable(policy) else None
    if inspect.iscoroutinefunction(policy) or inspect.iscoroutinefunction(method):
        return policy  # type: ignore[no-any-return]
    if callable(policy):
        return _ThreadedConsent(policy)
    raise TypeError(f"not a consent policy: {policy!r}")


def default_consent(allow_origins: Iterable[str] = (), *, interactive: bool | None = None,
                    prompt_timeout: float = 60.0) -> AsyncConsent:
    """The policy of ``sampflow hub``: allow-list, then terminal prompt, else refuse.

    Parameters
    ----------
    allow_origins : iterable of str
        Origins accepted without asking.
    interactive : bool, optional
        Whether to prompt on the terminal; by default, when stdin is a terminal.
    prompt_timeout : float
        Seconds the user has to answer a prompt.

    Returns
    -------
    callable
        ``await consent(request) -> bool``.
    """
    if interactive is None:
        try:
            interactive = os.isatty(sys.stdin.fileno())
        except (AttributeError, OSError, ValueError):
            interactive = False
    return _DefaultConsent(AllowList(allow_origins),
                           TerminalPrompt(prompt_timeout) if interactive else None)


class _DefaultConsent:
    """`default_consent`: the allow-list answers at once; else the terminal is asked."""

    def __init__(self, allowed: AllowList, prompt: TerminalPrompt | None) -> None:
        self.allowed, self.prompt = allowed, prompt

    def answer_now(self, request: ConsentRequest) -> bool | None:
        if self.allowed(request):
            return True
        if self.prompt is not None:
            return None
        log.warning("refused %s: not on the allow-list (--web-allow) and no terminal to ask",
                    request.describe())
        return False

    async def __call__(self, request: ConsentRequest) -> bool:
        answer = self.answer_now(request)
        if answer is not None:
            return answer
        assert self.prompt is not None
        return await self.prompt(request)


class ConsentGate:
    """Bounds and times out a consent policy.

    Parameters
    ----------
    policy : callable
        An async policy (from `as_consent`).
    timeout : float
        Seconds before an unanswered request counts as refused.
    max_pending : int
        Prompts waiting at once; more are refused straight away (a page cannot queue up
        prompts without end). Answers the policy gives at once (its ``answer_now``, such as
        an allow-list's) are not prompts and are never refused for this reason.
    """

    def __init__(self, policy: AsyncConsent, *, timeout: float = 120.0,
                 max_pending: int = 8) -> None:
        self.policy = policy
        self.timeout = timeout
        self.max_pending = max_pending
        self.pending = 0

    async def ask(self, request: ConsentRequest) -> bool:
        """Whether `request` may register; never raises.

        Returns
        -------
        bool
            False when the policy says no, fails, times out, or it would have to ask while
            `max_pending` prompts are already waiting.
        """
        answer_now = getattr(self.policy, "answer_now", None)
        if answer_now is not None:
            try:
                answer = answer_now(request)
            except Exception:
                log.exception("consent policy failed for %s; refusing", request.describe())
                return False
            if answer is not None:
                return bool(answer)
        if self.pending >= self.max_pending:
            log.warning("refused %s: %d registrations already await the user's answer",
                        request.describe(), self.pending)
            return False
        self.pending += 1
        try:
            return bool(await asyncio.wait_for(self.policy(request), self.timeout))
        except TimeoutError:
            log.warning("refused %s: no consent within %g s", request.describe(), self.timeout)
            return False
        except Exception:  # a broken policy refuses; the hub keeps serving
            log.exception("consent policy failed for %s; refusing", request.describe())
            return False
        finally:
            self.pending -= 1
