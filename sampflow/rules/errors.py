"""Exceptions of the rules engine.

Exception tree::

    RulesError                      base of everything raised by sampflow.rules
    ├── RuleFileError               a rule file failed to load; carries every Problem at once
    ├── ExpressionError             a template or condition failed to compile or to evaluate
    └── ActionError                 an action could not do its job (no such client, bad file, ...)
        ├── RecipientMissing        no registered client matches a recipient (``hold:`` waits)
        └── NotConnected            the engine has no hub connection to send through
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ActionError", "ExpressionError", "NotConnected", "Problem", "RecipientMissing",
           "RuleFileError", "RulesError"]


class RulesError(Exception):
    """Base class of the rules engine's exceptions."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One error in a rule file.

    Parameters
    ----------
    file : str
        The file name as given to the loader.
    line, column : int
        1-based position of the offending node.
    path : str
        Where in the document, e.g. ``rules[1].mode``.
    reason : str
        What is wrong.
    """

    file: str
    line: int
    column: int
    path: str
    reason: str

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        pos = f"{self.line}:{self.column}:" if self.line else ""
        return f"{self.file}:{pos} {where}{self.reason}"


class RuleFileError(RulesError):
    """A rule file did not load; ``problems`` lists every error found, in file order."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.file, p.line, p.column))
        super().__init__("\n".join(str(p) for p in self.problems))


class ExpressionError(RulesError):
    """A template or condition failed; the message starts with ``file:line:col`` of its source."""


class ActionError(RulesError):
    """An action failed in a way that is not a bug (unknown recipient, unreadable file, ...)."""


class RecipientMissing(ActionError):
    """No registered client matches ``pattern`` (or none is subscribed to ``mtype``).

    Parameters
    ----------
    pattern : str
        The recipient as written: a ``samp.name`` glob or a public id; ``*`` when the action
        goes to every subscribed client.
    mtype : str or None
        The MType the recipient must be subscribed to, when that is what is missing.
    """

    def __init__(self, pattern: str, mtype: str | None = None) -> None:
        self.pattern = pattern
        self.mtype = mtype
        if pattern == "*":
            text = f"no client is subscribed to {mtype}"
        elif mtype is not None:
            text = f"{pattern} is not registered (or not subscribed to {mtype})"
        else:
            text = f"no registered client matches {pattern!r}"
        super().__init__(text)


class NotConnected(ActionError):
    """The engine is not connected to a hub, so nothing can be sent."""
