"""Candidate: one candidate's life, in one place, with explicit states (as Optuna's trial has its TrialState).

    asked (a Launch: its files, parent and who proposed it; nothing is committed yet)
      -> running (a Candidate: committed, registered, a run on a slot; `runs` counts them)
      -> rerunning (the judge wants another run of the same commit: back to a slot)
      -> kept | discarded | crashed | replayed (a gain measured on a best that moved on: not kept here,
         its edit started again on the new best, as a new candidate whose `replay_of` names the first)

A crashed candidate may come back as a fix: a new Launch whose `fix_attempt` counts the tries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from autoresearch.core.judge import Decision, Evidence, change_size, classify_change
from autoresearch.core.records import Experiment
from autoresearch.propose.edits import Proposal
from autoresearch.run.trial import TrialResult

SEEDS_PER_EXPERIMENT = 1000  # seeds k * 1000 + 1, ... belong to experiment k where its runs need seeds of their own


class CandidateState(StrEnum):
    RUNNING = "running"
    RERUNNING = "rerunning"
    KEPT = "kept"
    DISCARDED = "discarded"
    CRASHED = "crashed"
    REPLAYED = "replayed"  # discarded on its old parent; its edit runs again on the new best


@dataclass
class Launch:
    """An asked candidate, ready to run: its files, where it goes, and who proposed it."""
    files: dict[str, str]
    parent: str
    description: str
    proposal: Proposal | None  # its edits, to replay them on a newer best
    proposal_id: int | None
    proposer: str
    against: Experiment | None  # the incumbent it is judged against
    replay_of: int | None = None
    fix_attempt: int = 0  # 0 for a proposal, n for the n-th fix of a crash


@dataclass
class Candidate:
    """A started candidate while its runs come in, until its decision."""
    exp_id: int
    commit: str
    parent: str  # the commit it was made on
    description: str
    diff: str
    against: Experiment | None  # the incumbent it is judged against (None for a baseline)
    incumbent_runs: list[float]  # that incumbent's runs
    proposer: str = ""
    proposal: Proposal | None = None
    replay_of: int | None = None
    fix_attempt: int = 0
    state: CandidateState = CandidateState.RUNNING
    values: list[float] = field(default_factory=list)  # its valid metrics so far
    runs: int = 0
    wall: float = 0.0
    evidence: Evidence | None = None
    decision: Decision | None = None  # the judge's word on its runs so far
    last: TrialResult | None = None
    slot: str = ""
    over_budget: str = ""  # why its last run did not count: over the budget by the harness's clock
    stopped_at: float | None = None  # the share of the budget at which early abort stopped it
    machine_reruns: int = 0  # runs the machine slowed into a failure, run again (core/machine.py)

    def __post_init__(self) -> None:  # what the diff is, measured once for all its runs
        self.change = classify_change(self.diff)
        self.lines_added, self.lines_removed = change_size(self.diff)

    def seed(self, run: int) -> int:
        """The harness's seed of its run `run` (1, 2, ...): seed k for run k, so that run k of a candidate
        and of its incumbent share a seed. A change of seeds or comments alone is pooled with its parent's
        runs as the same code: its runs take seeds of their own, or they would repeat the parent's."""
        return run if not self.change else SEEDS_PER_EXPERIMENT * self.exp_id + run

    @property
    def first_run(self) -> bool:
        """Its first run is in flight (what early abort may stop: never a rerun, never the baseline)."""
        return self.runs == 0 and self.against is not None
