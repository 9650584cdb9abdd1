"""One exception family for the whole library.

``SpecoracleError`` is the base; ``InvalidInstance`` (a ``ValueError``) is raised for bad
probability tables, trees and models; ``InvalidArgument`` (a ``TypeError``) for arguments of the
wrong kind; ``UnknownName`` (a ``KeyError``) for names outside a closed vocabulary, with the
valid names and the closest match in the message.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["SpecoracleError", "InvalidInstance", "InvalidArgument", "UnknownName", "BudgetExceeded", "unknown_name"]


class SpecoracleError(Exception):
    """Base class of every error raised on purpose by specoracle."""


class InvalidInstance(SpecoracleError, ValueError):
    """A probability table, tree, model or scheme violates a rule; the message names the culprit."""


class InvalidArgument(SpecoracleError, TypeError):
    """An argument has the wrong type or kind."""


class UnknownName(SpecoracleError, KeyError):
    """A name outside a closed vocabulary (registry names, option names)."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


def unknown_name(kind: str, name: str, valid: Iterable[str]) -> UnknownName:
    """Build an ``UnknownName`` listing the valid names and the closest match."""
    valid = sorted(valid)
    close = difflib.get_close_matches(str(name), valid, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return UnknownName(f"unknown {kind} {name!r}.{hint} Valid {kind}s: {', '.join(valid)}.")


class BudgetExceeded(SpecoracleError, ValueError):
    """The estimated work of a request (time, memory, cells, LP size) exceeds its budget; the
    message gives the estimate and what to change (a smaller request, or a larger budget)."""
