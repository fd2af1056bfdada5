"""What every proposer shares: the snapshot it is shown, the draft it returns, the protocol.

A proposer sees a plain `Snapshot` (the program, the files to change, what the frozen files
offer, the history) and returns a `Draft`: a proposal, or None with the error that stopped it.
It touches neither disk nor git; the study does both.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Protocol

from autoresearch.core.records import Experiment
from autoresearch.core.task import Task
from autoresearch.propose.edits import Proposal


@dataclass(frozen=True)
class Snapshot:
    """All a proposer may know, as plain values."""
    task: Task
    program: str  # the researcher's program.md
    files: dict[str, str]  # the editable files as the proposal must change them
    parent: str = ""  # the commit those files come from
    frozen_api: dict[str, str] = field(default_factory=dict)  # frozen Python file -> its constants and signatures
    history: list[Experiment] = field(default_factory=list)  # the branch's experiments, oldest first
    knob_values: dict[str, dict] = field(default_factory=dict)  # commit -> the knob values it declares
    in_flight: list[str] = field(default_factory=list)  # descriptions of candidates running now
    notes: list[str] = field(default_factory=list)  # what the harness wants the proposer to know

    @property
    def main_file(self) -> str:
        return self.task.editable[0]


@dataclass
class Draft:
    proposal: Proposal | None
    proposer: str
    model: str = ""
    prompt: str = ""
    response: str = ""
    tokens_in: int = 0
    tokens_out: int = 0
    tokens_cached: int = 0  # of tokens_in, read from the API's prompt cache
    cost_usd: float | None = None
    latency_s: float = 0.0
    attempts: int = 0
    error: str = ""
    fatal: bool = False  # the error can never go away by asking again (no knobs to search, a refused key)
    ledger_id: int | None = None  # set once the ledger holds it

    def record(self) -> dict:
        """Fields of its `ProposalRecord` (the ledger's proposals table) that the draft knows."""
        p = self.proposal
        return {
            "proposer": self.proposer, "model": self.model,
            "description": p.description if p else "", "reasoning": p.reasoning if p else "",
            "edits_json": json.dumps([asdict(e) for e in p.edits]) if p else "[]",
            "prompt": self.prompt, "response": self.response, "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out, "tokens_cached": self.tokens_cached, "cost_usd": self.cost_usd, "latency_s": round(self.latency_s, 3),
            "attempts": self.attempts, "error": self.error,
        }


class Proposer(Protocol):
    name: str  # unique within a study: the ledger and the bandit tell proposers apart by it
    # max_fix_attempts: int, optional: times a crash of its goes back to it ([agent] max_fix_attempts; default 2)

    def propose(self, snapshot: Snapshot) -> Draft: ...

    def fix(self, snapshot: Snapshot, crashed: Experiment, log_tail: str) -> Draft | None:
        """A fix for a crashed experiment (`snapshot.files` are its files), or None to leave it."""
        ...
