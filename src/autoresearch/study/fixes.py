"""Fixes: a crashed candidate goes back to the proposer that wrote it, a bounded number of times.

The proposer sees the crashed files and the tail of the log; its fix is applied to the crashed
files, not to the best, and judged against what the crash was judged against. Each [[agent]]
bounds its own fixes (`max_fix_attempts`, default 2).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from autoresearch.core.logtail import explain_tail
from autoresearch.core.records import Experiment
from autoresearch.core.settings import AgentSettings
from autoresearch.propose.base import Proposer
from autoresearch.propose.edits import Edit
from autoresearch.run.trial import log_tail
from autoresearch.store.workspace import Workspace
from autoresearch.study.candidate import Candidate
from autoresearch.study.proposals import Request
from autoresearch.study.snapshot import Snapshots

LOG_LINES = 400  # of the crashed run's log, read; the lines that explain the failure are shown


@dataclass
class Fix:
    crashed: Experiment
    proposer: str
    attempt: int  # this fix's number
    against: Experiment | None
    edits: list[Edit] = field(default_factory=list)  # of the crashed candidate, to replay a fix elsewhere


class Fixes:
    def __init__(self, ws: Workspace, proposers: dict[str, Proposer], snapshots: Snapshots):
        self.ws, self.proposers, self.snapshots = ws, proposers, snapshots
        self.queue: deque[Fix] = deque()
        self.notes: list[str] = []  # what the study should say

    def __bool__(self) -> bool:
        return bool(self.queue)

    def add(self, candidate: Candidate, crashed: Experiment) -> None:
        """Queue a fix of a crashed candidate, if its proposer is still there and has tries left."""
        attempt = candidate.fix_attempt + 1
        proposer = self.proposers.get(candidate.proposer)
        if proposer is None or attempt > getattr(proposer, "max_fix_attempts", AgentSettings.max_fix_attempts):
            return
        edits = candidate.proposal.edits if candidate.proposal else []
        self.queue.append(Fix(crashed, candidate.proposer, attempt, candidate.against, edits))

    def next(self, history: list[Experiment], in_flight: list[str], notes: list[str]) -> Request | None:
        """The next fix's draft, or None when its proposer is gone or leaves the crash unfixed (gives up)."""
        fix = self.queue.popleft()
        proposer = self.proposers.get(fix.proposer)
        if proposer is None:
            return None
        crashed = fix.crashed
        snapshot = self.snapshots.take(crashed.parent, history, in_flight, notes,
                                       files=self.snapshots.files_at(crashed.commit))
        tail = explain_tail(log_tail(self.ws.root / crashed.log_path, LOG_LINES))  # the lines that explain it
        draft = proposer.fix(snapshot, crashed, tail)
        if draft is None:
            self.notes.append(f"{fix.proposer} gave up on the crash of #{crashed.id}: the idea goes no further")
            return None
        return Request(draft, crashed.parent, fix.proposer, kind="fix", fix=fix)
