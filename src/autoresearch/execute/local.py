"""Executors: where the runs of experiments happen, several at once.

An executor takes jobs (one run of one committed candidate) and hands back their results, in
the order they finish. Two kinds behind one small interface:

- `LocalExecutor`: N slots on this machine, each with its own git worktree and its own device:
  one GPU per slot (CUDA_VISIBLE_DEVICES), or a share of the CPU cores (thread counts); never two
  runs on one device.
- `RayExecutor` (ray_executor.py): each run a Ray task asking for one GPU (or CPU cores); the
  code travels as a git bundle, the log and the result come back; a task lost with its node is
  run again by Ray.

The coordinator (parallel.py) alone touches the ledger and the research branch.
"""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from autoresearch.store import gitops
from autoresearch.run.process import RunResult
from autoresearch.core.task import Task
from autoresearch.run.trial import STATE_DIR, TrialResult, data_dir, run_trial


class ExecutorError(RuntimeError):
    """An executor cannot be set up as asked; one line that says what to do."""


@dataclass(frozen=True)
class Job:
    exp_id: int
    run: int  # 1 for the first run of the candidate, 2.. for the judge's reruns
    commit: str
    log_path: Path  # where the run's log must end up in the workspace


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


@dataclass
class Slot:
    name: str
    env: dict[str, str] = field(default_factory=dict)  # what pins it to its device
    path: Path | None = None  # its worktree


def plan_slots(slots: int, gpus: list[str] | None = None, cpu_count: int | None = None) -> list[Slot]:
    """One slot per GPU when there are GPUs (at most one run per device), else CPU slots that
    split the cores between them."""
    if gpus:
        if slots > len(gpus):
            raise ExecutorError(f"{slots} slots but {len(gpus)} GPU(s) ({', '.join(gpus)}): one experiment per GPU, "
                                f"so at most {len(gpus)} slots")
        return [Slot(f"gpu{gpu}", {"CUDA_VISIBLE_DEVICES": gpu}) for gpu in gpus[:slots]]
    threads = str(max(1, (cpu_count or os.cpu_count() or 1) // slots))
    thread_env = {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads,
                  "CUDA_VISIBLE_DEVICES": ""}
    return [Slot(f"cpu{i}", dict(thread_env)) for i in range(slots)]


def visible_gpus() -> list[str]:
    """GPU indices this machine offers (CUDA_VISIBLE_DEVICES if set, else nvidia-smi's list)."""
    if "CUDA_VISIBLE_DEVICES" in os.environ:
        return [g for g in os.environ["CUDA_VISIBLE_DEVICES"].split(",") if g.strip() and g.strip() != "-1"]
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU ")]


class LocalExecutor:
    """N slots on this machine; each run in its slot's worktree, checked out at the job's commit."""

    def __init__(self, workspace: Path, task: Task, slots: list[Slot]):
        self.workspace, self.task = Path(workspace).resolve(), task
        self.capacity = len(slots)
        self._free: queue.Queue[Slot] = queue.Queue()
        self._done: queue.Queue[JobResult] = queue.Queue()
        for slot in slots:
            slot.path = self.workspace / STATE_DIR / "slots" / slot.name
            self._free.put(slot)

    def submit(self, job: Job) -> None:
        slot = self._free.get_nowait()  # the coordinator never submits more than the capacity
        threading.Thread(target=self._run, args=(slot, job), daemon=True, name=f"slot-{slot.name}").start()

    def _run(self, slot: Slot, job: Job) -> None:
        try:
            prepare_worktree(self.workspace, slot.path, job.commit)
            trial = run_trial(slot.path, self.task, job.commit, job.log_path, guard_refs=False,
                              hide=(self.workspace / STATE_DIR,), extra_env=slot.env)
        except Exception as exc:  # a broken slot is a crashed run, never a dead coordinator
            trial = failed_trial(job, f"slot {slot.name} could not run it: {type(exc).__name__}: {exc}")
        self._done.put(JobResult(job, trial, slot.name))
        self._free.put(slot)

    def next_result(self, timeout: float | None = None) -> JobResult | None:
        try:
            return self._done.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        pass  # worktrees stay for the next start (a checkout is cheaper than a new worktree)


def prepare_worktree(workspace: Path, path: Path, commit: str) -> None:
    """A detached worktree of the workspace at `commit`, with the prepared data linked in."""
    if not (path / ".git").exists():
        shutil.rmtree(path, ignore_errors=True)
        gitops.git(workspace, "worktree", "prune")
        gitops.git(workspace, "worktree", "add", "-q", "--detach", "--force", str(path), commit)
    else:
        gitops.git(path, "checkout", "-q", "--detach", "--force", commit)
        gitops.git(path, "clean", "-q", "-fdx", "-e", STATE_DIR)
    data = data_dir(workspace)
    link = path / STATE_DIR / "data"
    if data is not None and not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(data.resolve(), target_is_directory=True)


def failed_trial(job: Job, reason: str) -> TrialResult:
    """A run that never ran (a broken slot, a Ray task out of retries), as a crash with its reason."""
    job.log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(job.log_path, "a") as log:
        log.write(f"[autoresearch] {reason}\n")
    run = RunResult(exit_code=None, wall_seconds=0.0, timed_out=False, log_path=job.log_path, log_truncated=False)
    return TrialResult(run, {}, None, reason)
