"""Errors meant for the user: one line that says what to do, never a traceback."""

from __future__ import annotations


class UserError(Exception):
    """Base of the harness's deliberate errors: the command line prints the message and exits 1."""


def one_line(text: str, limit: int = 200, default: str = "no detail") -> str:
    """The last non-empty line of `text` (where tracebacks and logs put the point), cut to `limit`."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1][:limit] if lines else default


def first_line(text: str, limit: int = 300, default: str = "no detail") -> str:
    """The first non-empty line of `text` (where SDK messages put the point), cut to `limit`."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[0][:limit] if lines else default
