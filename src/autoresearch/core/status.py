"""Statuses: of an experiment in the record, of the judge's verdict, and of a proposal.

They are `StrEnum`s, so they compare equal to, format as and store as their plain names
("keep", "discard", ...): the ledger, results.tsv and JSON exports keep reading as before.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    RUNNING = "running"
    KEEP = "keep"
    DISCARD = "discard"
    CRASH = "crash"
    RERUN = "rerun"  # a verdict only: measure the same commit again before deciding; never recorded


FINISHED = (Status.KEEP, Status.DISCARD, Status.CRASH)


class ProposalStatus(StrEnum):
    PENDING = "pending"  # made, not run yet (a restart uses it rather than asking again)
    USED = "used"  # an experiment ran it
    FAILED = "failed"  # the proposer gave nothing that applies
    DUPLICATE = "duplicate"  # its code was already run
    STALE = "stale"  # written against a best that has moved on, and no longer applies
