"""Records: what the ledger keeps of an experiment, of its runs, of how it ended, and of a proposal.

Pure types, read by every layer above; the ledger (store/ledger.py) writes and reads them.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from autoresearch.core.status import ProposalStatus, Status


@dataclass(frozen=True)
class Experiment:
    id: int
    branch: str
    parent: str
    commit: str | None
    description: str
    status: Status
    metric: float | None
    incumbent: float | None
    metrics: dict = field(default_factory=dict)
    reason: str = ""
    diff: str = ""
    log_path: str = ""
    attempt_ref: str = ""
    exit_code: int | None = None
    timed_out: bool = False
    wall_seconds: float | None = None
    started_at: float = 0.0
    finished_at: float | None = None
    proposal_id: int | None = None
    proposer: str = ""  # who proposed it: "random", "openai:gpt-4.1", ...; "" for baselines and `exp`

    @property
    def memory_gb(self) -> float:
        mb = self.metrics.get("peak_vram_mb")
        return mb / 1024 if isinstance(mb, (int, float)) and math.isfinite(mb) else 0.0


@dataclass(frozen=True)
class RunRecord:
    """One run of an experiment, as the runs table keeps it."""
    metric: float | None
    metrics: dict
    exit_code: int | None
    timed_out: bool
    wall_seconds: float | None
    log_path: str


@dataclass(frozen=True)
class Outcome:
    """How an experiment ended, as the experiments table keeps it."""
    status: Status
    metric: float | None
    incumbent: float | None
    metrics: dict
    reason: str
    exit_code: int | None = None
    timed_out: bool = False
    wall_seconds: float | None = None


@dataclass(frozen=True, kw_only=True)
class ProposalRecord:
    """One proposal, as the proposals table keeps it (its columns, in their order)."""
    id: int | None = None  # set by the ledger
    kind: str  # propose | fix
    status: ProposalStatus
    proposer: str
    model: str = ""
    branch: str
    parent: str  # the commit it was written against
    description: str = ""
    reasoning: str = ""
    edits_json: str = "[]"
    prompt: str = ""
    response: str = ""
    tokens_in: int = 0
    tokens_out: int = 0
    tokens_cached: int = 0  # of tokens_in, served from the API's prompt cache (priced at its discount)
    cost_usd: float | None = None
    latency_s: float = 0.0
    attempts: int = 1
    error: str = ""
    experiment_id: int | None = None
    fix_of: int | None = None  # the crashed experiment a fix is for
    created_at: float = field(default_factory=time.time)  # when it was asked for
