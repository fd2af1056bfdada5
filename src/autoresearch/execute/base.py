"""Executors: where the runs of experiments happen, one or several at once.

An executor takes jobs (one run of one committed candidate) and hands back their results in the
order they finish. A study sees only this small interface; two kinds implement it:

- `LocalExecutor` (local.py): N slots on this machine, each with its own git worktree and its own
  device: one GPU per slot (CUDA_VISIBLE_DEVICES), or a share of the CPU cores. One slot is the
  plain case: the whole machine, one run at a time.
- `RayExecutor` (ray_cluster.py): each run a Ray task asking for one GPU (or CPU cores); the code
  travels as a git bundle, the log and the result come back; a task lost with its node runs again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from autoresearch.core.errors import UserError
from autoresearch.run.trial import TrialResult


class ExecutorError(UserError):
    """An executor cannot be set up as asked; one line that says what to do."""


@dataclass(frozen=True)
class Job:
    exp_id: int
    run: int  # 1 for the first run of the candidate, 2.. for the judge's reruns
    commit: str
    log_path: Path  # where the run's log must end up in the workspace (its other files go beside it)
    score_test: bool = False  # a verification's run: the evaluation scores the held-out test split too
    seed: int | None = None  # the harness's seed for this run (AUTORESEARCH_SEED); None: the run number

    @property
    def run_seed(self) -> int:
        """Run k of every candidate gets seed k: repeats of one commit differ by their seed, and run k
        of a candidate shares its seed with run k of the incumbent (common random numbers)."""
        return self.run if self.seed is None else self.seed


@dataclass
class JobResult:
    job: Job
    trial: TrialResult
    slot: str  # which slot or node ran it
    attempts: int = 1  # >1 when it was queued again after a lost worker


class Executor(Protocol):
    capacity: int  # runs at once

    def submit(self, job: Job) -> None: ...

    def next_result(self, timeout: float | None = None) -> JobResult | None: ...

    def close(self) -> None: ...

    # optional: `stop(exp_id)` ends one run in flight (early abort), `listen(on_line)` follows output
