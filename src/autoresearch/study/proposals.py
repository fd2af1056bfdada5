"""Proposals: where a study's next draft comes from, and their record.

In order: one left pending by a stop (used, not asked again), one written in the background while
every slot was busy (pipelining), or one asked for now of the proposer the bandit picks, on top of
the best kept commit or, with `top_k` > 1, sometimes another of the k best (a small tree, as in AIDE).
Every draft is recorded in the ledger as it arrives, with what it was written against.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from autoresearch.core.records import Experiment, ProposalRecord
from autoresearch.core.status import ProposalStatus, Status
from autoresearch.core.task import Task
from autoresearch.propose.bandit import Bandit
from autoresearch.propose.base import Draft, Proposer, Snapshot
from autoresearch.propose.briefing import briefing, curves_wanted
from autoresearch.propose.edits import Edit, Proposal
from autoresearch.store.ledger import Ledger
from autoresearch.study.snapshot import Snapshots

if TYPE_CHECKING:  # fixes.py builds Requests: a type only, no import cycle
    from autoresearch.study.fixes import Fix


@dataclass
class Request:
    """A draft, and what it was written against."""
    draft: Draft
    parent: str
    proposer: str
    kind: str = "propose"  # propose | fix
    explored: bool = False  # written on purpose from a kept commit other than the best
    pipelined: bool = False  # written while the previous candidates ran (the best may have moved since)
    fix: Fix | None = None  # the crash it answers, for a fix
    asked_at: float = field(default_factory=time.time)


class Background:
    """A proposal being written in a daemon thread (a hung model call never blocks exit)."""

    def __init__(self, fn: Callable[[], Draft], parent: str, proposer: str, explored: bool):
        self.parent, self.proposer, self.explored = parent, proposer, explored
        self.asked_at = time.time()
        self.draft: Draft | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self.thread.start()

    def _run(self, fn) -> None:
        try:
            self.draft = fn()
        except BaseException as exc:  # handed to the study's thread
            self.error = exc

    def request(self) -> Request:
        self.thread.join()
        if self.error is not None:
            raise self.error
        return Request(self.draft, self.parent, self.proposer, explored=self.explored, pipelined=True,
                       asked_at=self.asked_at)


@dataclass
class Choices:
    """How a study picks where to propose from (its [study] settings)."""
    top_k: int = 1
    explore: float = 0.3
    stagnation_after: int = 8
    seed: int | None = None


class Proposals:
    def __init__(self, proposers: dict[str, Proposer], ledger: Ledger, task: Task, branch: str,
                 snapshots: Snapshots, choices: Choices):
        self.proposers, self.ledger, self.task, self.branch = proposers, ledger, task, branch
        self.snapshots, self.choices = snapshots, choices
        self.bandit, self.rng = Bandit(choices.seed), random.Random(choices.seed)
        self.pending: list[Draft] = []  # proposals made but never run: a restart uses them
        self.background: Background | None = None
        self.notes: list[str] = []  # what the study should say (it owns the event bus)

    def next(self, in_flight: list[str]) -> Request:
        """A pending draft, the one written in the background, or one asked for now."""
        if self.background is not None:
            background, self.background = self.background, None
            return background.request()
        best = self.ledger.incumbent(self.branch)
        if self.pending:
            draft = self.pending.pop(0)
            return Request(draft, best.commit, draft.proposer)
        name, parent, explored, snapshot = self._pick(best, in_flight)
        asked_at = time.time()
        return Request(self.proposers[name].propose(snapshot), parent, name, explored=explored, asked_at=asked_at)

    def write_ahead(self, in_flight: list[str]) -> None:
        """Start the next proposal in the background (while every slot is busy), unless one is written."""
        if self.background is not None or self.pending:
            return
        name, parent, explored, snapshot = self._pick(self.ledger.incumbent(self.branch), in_flight)
        proposer = self.proposers[name]
        self.background = Background(lambda: proposer.propose(snapshot), parent, name, explored)

    def _pick(self, best: Experiment, in_flight: list[str]) -> tuple[str, str, bool, Snapshot]:
        name = self.bandit.choose(list(self.proposers), self.ledger.proposer_records(self.branch))
        parent, explored = self._choose_parent(best)
        return name, parent, explored, self.snapshot(parent, in_flight)

    def snapshot(self, parent: str, in_flight: list[str]) -> Snapshot:
        """What a proposer is shown to propose on top of `parent`: the branch's history and the harness's notes."""
        history = self.ledger.experiments(self.branch)
        return self.snapshots.take(parent, history, in_flight, notes=self.briefing(history))

    def briefing(self, history: list[Experiment]) -> list[str]:
        """The harness's notes for a proposer (fix requests get them too)."""
        curves = self.ledger.curves(curves_wanted(history))
        return briefing(history, curves, self.task.metric, self.choices.stagnation_after, self.task.judge.z)

    def _choose_parent(self, best: Experiment) -> tuple[str, bool]:
        """The best kept commit, or with top_k > 1 sometimes another of the k best (by the task's direction)."""
        if self.choices.top_k <= 1 or self.rng.random() >= self.choices.explore:
            return best.commit, False
        kept = [e for e in self.ledger.experiments(self.branch) if e.status == Status.KEEP and e.metric is not None]
        kept.sort(key=lambda e: e.metric, reverse=self.task.direction == "maximize")
        others = [e for e in kept[:self.choices.top_k] if e.commit != best.commit]
        if not others:
            return best.commit, False
        choice = self.rng.choice(others)
        self.notes.append(f"exploring from #{choice.id} ({choice.metric:.6f}: {choice.description})")
        return choice.commit, True

    def record(self, request: Request) -> int:
        """The draft into the ledger (once): pending if it has a proposal, else failed."""
        draft = request.draft
        if draft.ledger_id is None:
            status = ProposalStatus.PENDING if draft.proposal else ProposalStatus.FAILED
            draft.ledger_id = self.ledger.add_proposal(ProposalRecord(**{
                **draft.record(), "created_at": request.asked_at, "proposer": request.proposer, "kind": request.kind,
                "branch": self.branch, "parent": request.parent, "status": status,
                "fix_of": request.fix.crashed.id if request.fix else None}))
        return draft.ledger_id

    def load_pending(self) -> None:
        """Proposals recorded but never run (the study was stopped in between): used, not asked again."""
        best = self.ledger.incumbent(self.branch)
        for row in self.ledger.proposals(status=ProposalStatus.PENDING, branch=self.branch):
            if row.kind != "propose" or row.parent != best.commit:
                self.ledger.set_proposal_status(row.id, ProposalStatus.STALE, "written against an older best")
                continue
            edits = [Edit(**e) for e in json.loads(row.edits_json)]
            self.pending.append(Draft(Proposal(row.description, row.reasoning, edits), row.proposer,
                                      model=row.model, ledger_id=row.id))

    def keep_background(self) -> float:
        """A proposal written in the background but not used: recorded, so the next start runs it.
        Returns what it cost."""
        background, self.background = self.background, None
        if background is None or background.thread.is_alive() or background.error is not None:
            return 0.0
        request = background.request()
        if request.draft.proposal is not None:
            self.record(request)
        return request.draft.cost_usd or 0.0
