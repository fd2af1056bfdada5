"""Local slots: runs on this machine, each slot in its own git worktree and on its own device.

A slot's worktree (`<state>/slots/NAME`) is checked out at the job's commit and cleaned before
each run, so a run never happens in the workspace itself and nothing one run leaves reaches the
next but the compile cache. A slot is pinned to one GPU (CUDA_VISIBLE_DEVICES) or to a share of
the CPU cores (thread counts); never two runs on one device. One slot without named GPUs is the
whole machine, as a plain `python train.py` would see it.
"""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from autoresearch.core.task import Task
from autoresearch.execute.base import ExecutorError, Job, JobResult
from autoresearch.run.process import kill_recorded
from autoresearch.run.trial import RunSpec, TrialResult, run_trial
from autoresearch.store import gitops
from autoresearch.store.workspace import RunPaths, Workspace

LineSink = Callable[[Job, str], None]


@dataclass
class Slot:
    name: str
    env: dict[str, str] = field(default_factory=dict)  # what pins it to its device
    path: Path | None = None  # its worktree


def plan_slots(slots: int, gpus: list[str] | None = None, cpu_count: int | None = None) -> list[Slot]:
    """One slot per GPU when there are GPUs (at most one run per device), else CPU slots that
    split the cores between them. One slot and no GPUs named: the whole machine."""
    if slots < 1:
        raise ExecutorError(f"--slots must be at least 1, not {slots}")
    if gpus:
        if slots > len(gpus):
            raise ExecutorError(f"{slots} slots but {len(gpus)} GPU(s) ({', '.join(gpus)}): one experiment per GPU, "
                                f"so at most {len(gpus)} slots")
        return [Slot(f"gpu{gpu}", {"CUDA_VISIBLE_DEVICES": gpu}) for gpu in gpus[:slots]]
    if slots == 1:
        return [Slot("local")]
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
    """N slots on this machine; each run in its slot's worktree, checked out at the job's commit.

    `coordinator_refs`: ref prefixes the study moves while runs go on, left out of each run's ref
    guard (default: the checked-out research branch and refs/autoresearch/). `on_line` gets each
    line of a run's output (a study sets it with `listen`)."""

    def __init__(self, workspace: Workspace, task: Task, slots: list[Slot], on_line: LineSink | None = None,
                 coordinator_refs: tuple[str, ...] | None = None):
        self.workspace, self.task = Workspace.of(workspace), task
        self.capacity = len(slots)
        self.on_line = on_line
        self.coordinator_refs = coordinator_refs if coordinator_refs is not None else (
            f"refs/heads/{self.workspace.branch()}", gitops.AUTORESEARCH_REFS)
        self._free: queue.Queue[Slot] = queue.Queue()
        self._done: queue.Queue[JobResult] = queue.Queue()
        self._running: dict[int, Job] = {}  # exp_id -> job, to stop them on close
        for slot in slots:
            slot.path = self.workspace.slots_dir / slot.name
            self._free.put(slot)

    def listen(self, on_line: LineSink) -> None:
        self.on_line = on_line

    def submit(self, job: Job) -> None:
        slot = self._free.get_nowait()  # a study never submits more than the capacity
        self._running[job.exp_id] = job
        threading.Thread(target=self._run, args=(slot, job), daemon=True, name=f"slot-{slot.name}").start()

    def _run(self, slot: Slot, job: Job) -> None:
        on_line = (lambda line: self.on_line(job, line)) if self.on_line else None
        try:
            shared = prepare_worktree(self.workspace, slot.path, job.commit, self.task.outputs)
            # the whole workspace is hidden (its state, its copies of private files); the slot inside it is not
            spec = RunSpec(Workspace(slot.path), self.task, job.commit, RunPaths(job.log_path), env=slot.env,
                           hide=(self.workspace.root,), shared=shared, coordinator_refs=self.coordinator_refs,
                           score_test=job.score_test, seed=job.run_seed)
            trial = run_trial(spec, on_line)
        except Exception as exc:  # a broken slot is a crashed run, never a dead coordinator
            trial = TrialResult.never_ran(job.log_path, f"slot {slot.name} could not run it: {type(exc).__name__}: {exc}")
        self._running.pop(job.exp_id, None)
        self._done.put(JobResult(job, trial, slot.name))
        self._free.put(slot)

    def next_result(self, timeout: float | None = None) -> JobResult | None:
        try:
            return self._done.get(timeout=timeout)
        except queue.Empty:
            return None

    def stop(self, exp_id: int) -> None:
        """Stop one run in flight (early abort): its process group killed; its result still comes back."""
        job = self._running.get(exp_id)
        pgid = RunPaths(job.log_path).pgid if job else None
        if pgid is not None and pgid.exists():
            kill_recorded(pgid)

    def close(self) -> None:
        """Stop the runs still going (a study interrupted); worktrees stay for the next start."""
        for exp_id in list(self._running):
            self.stop(exp_id)


def prepare_worktree(workspace: Workspace, path: Path, commit: str, outputs: tuple[str, ...] = ()) -> tuple[Path, ...]:
    """A detached worktree of the workspace at `commit`, cleaned, with the prepared data linked in:
    ours, and what the repository prepared inside itself (git-ignored, not outputs); returns the
    workspace paths those links lead to (a run may read them, nothing else of the workspace)."""
    slot = Workspace(path)
    if not _own_worktree(workspace, path):  # new, or its link to the repository is not the one git made
        shutil.rmtree(path, ignore_errors=True)
        gitops.git(workspace.root, "worktree", "prune")
        gitops.git(workspace.root, "worktree", "add", "-q", "--detach", "--force", str(path), commit)
    else:
        gitops.git(path, "checkout", "-q", "--detach", "--force", commit)
        gitops.git(path, "clean", "-q", "-fdx", "-e", slot.state.name)
    data = workspace.data_dir()
    if data is not None and not (slot.data_link.is_symlink() and slot.data_link.resolve() == data.resolve()):
        slot.link_data(data.resolve())  # new, or the workspace's data was prepared again elsewhere
    shared = []
    for name in workspace.prepared_inside(outputs) if outputs else ():
        target = path / name
        if not target.exists() and not target.is_symlink():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(workspace.root / name)
        shared.append(workspace.root / name)
    return tuple(shared)


def _own_worktree(workspace: Workspace, path: Path) -> bool:
    """The slot's `.git` is the file git wrote, pointing into the workspace's repository."""
    link = path / ".git"
    try:
        gitdir = Path(link.read_text().strip().removeprefix("gitdir: ")) if link.is_file() else None
        return (gitdir is not None and gitdir.parent == workspace.root / ".git" / "worktrees"
                and (gitdir / "gitdir").read_text().strip() == str(link))
    except OSError:
        return False
