"""What a study hands back: one experiment's result, and the summary of a study's invocation."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from autoresearch.core.status import Status


@dataclass
class ExperimentResult:
    id: int
    status: Status
    metric: float | None
    incumbent: float | None  # the mean of what it was judged against; None for a baseline
    reason: str
    commit: str
    parent: str
    description: str
    metrics: dict
    wall_seconds: float
    log_path: Path
    runs: int = 1
    slot: str = ""  # where its last run happened
    proposer: str = ""  # who proposed it ("" for the baseline and experiments run by hand)


@dataclass
class StudySummary:
    experiments: list[ExperimentResult] = field(default_factory=list)  # in the order they finished
    proposals_failed: int = 0
    duplicates: int = 0
    spent_usd: float = 0.0  # model spend of this invocation, from the recorded token costs
    stop_reason: str = ""
    gave_up: bool = False  # stopped because no proposer can ever succeed (the reason says why)

    @property
    def kept(self) -> int:
        return sum(1 for r in self.experiments if r.status == Status.KEEP)
