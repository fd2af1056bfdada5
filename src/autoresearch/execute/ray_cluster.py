"""Ray executor: each run of an experiment is a Ray task on a cluster (`pip install 'autoresearch[ray]'`).

The task asks for one GPU (or `cpus_per_run` cores on CPU clusters), so Ray never puts two runs
on one device. The code travels as a git bundle of the candidate's commit; the worker clones it
into a scratch directory, links the prepared data (the same path on every node: a shared file
system, or `autoresearch prepare` run on each node), runs the trial in its sandbox and sends back
the result and the log. A task whose worker or node dies is run again by Ray (`max_retries`).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from autoresearch.core.errors import first_line
from autoresearch.core.task import Task
from autoresearch.execute.base import ExecutorError, Job, JobResult
from autoresearch.run.trial import TrialResult, data_hashes
from autoresearch.store import gitops
from autoresearch.store.workspace import Workspace

MAX_RETRIES = 3


def _ray():
    try:
        import ray
    except ImportError:
        raise ExecutorError("--executor ray needs Ray: pip install 'autoresearch[ray]'") from None
    return ray


@dataclass(frozen=True)
class RunResources:
    """What each run asks Ray for: one GPU where the cluster has GPUs, else some CPU cores."""
    gpus_per_run: float | None = None  # None: 1 on a cluster with GPUs, else 0
    cpus_per_run: float = 1.0  # on a CPU-only cluster


class RayExecutor:
    def __init__(self, workspace: Workspace, task: Task, address: str | None = "auto", slots: int | None = None,
                 resources: RunResources = RunResources()):
        ray = _ray()
        self.ray, self.workspace, self.task = ray, Workspace.of(workspace), task
        if not ray.is_initialized():
            try:
                ray.init(address=address, log_to_driver=False)
            except ConnectionError as exc:
                raise ExecutorError(f"no Ray cluster at {address!r} ({exc}); start one with `ray start --head`") from None
        cluster = ray.cluster_resources()
        gpus = cluster.get("GPU", 0)
        self.gpus_per_run = resources.gpus_per_run if resources.gpus_per_run is not None else (1.0 if gpus else 0.0)
        per_run = self.gpus_per_run or resources.cpus_per_run
        available = int((gpus if self.gpus_per_run else cluster.get("CPU", 1)) // per_run) or 1
        self.capacity = min(slots, available) if slots else available
        self.cpus_per_run = 0.0 if self.gpus_per_run else resources.cpus_per_run
        data = self.workspace.data_dir()
        self.data_dir = str(data.resolve()) if data is not None else ""
        self.data_hashes = tuple(sorted(data_hashes(data).items())) if data is not None else ()
        self._remote = ray.remote(_run_on_worker).options(num_gpus=self.gpus_per_run, num_cpus=self.cpus_per_run,
                                                          max_retries=MAX_RETRIES, retry_exceptions=False)
        self._pending: dict = {}  # object ref -> job
        self._bundles: dict = {}  # commit -> its bundle in Ray's object store, the latest few (reruns reuse them)

    def submit(self, job: Job) -> None:
        if job.commit not in self._bundles:
            self._bundles[job.commit] = self.ray.put(_bundle(self.workspace, job.commit))
            while len(self._bundles) > 2 * self.capacity:
                del self._bundles[next(iter(self._bundles))]  # the oldest
        work = WorkerJob(job.commit, self.data_dir, job.log_path.name, job.exp_id, job.run, secrets.token_hex(8),
                         job.score_test, self.data_hashes, job.run_seed)
        ref = self._remote.remote(self._bundles[job.commit], work)
        self._pending[ref] = job

    def next_result(self, timeout: float | None = None) -> JobResult | None:
        if not self._pending:
            return None
        ready, _ = self.ray.wait(list(self._pending), num_returns=1, timeout=timeout)
        if not ready:
            return None
        job = self._pending.pop(ready[0])
        try:
            payload = self.ray.get(ready[0])
        except Exception as exc:  # retries spent (node lost again and again), or Ray itself failed
            reason = f"the Ray task failed after {MAX_RETRIES} retries: {type(exc).__name__}: {first_line(str(exc), 200)}"
            return JobResult(job, TrialResult.never_ran(job.log_path, reason), "ray")
        job.log_path.parent.mkdir(parents=True, exist_ok=True)
        job.log_path.write_text(payload.pop("log"))
        trial = payload.pop("trial")
        trial.run.log_path = job.log_path
        return JobResult(job, trial, payload["node"], payload["attempt"])

    def close(self) -> None:
        for ref in list(self._pending):
            self.ray.cancel(ref, force=True)
        self._pending.clear()


def _bundle(workspace: Workspace, commit: str) -> bytes:
    """The candidate's history as a git bundle (small: a workspace is a few files)."""
    with tempfile.TemporaryDirectory() as tmp:
        ref = f"refs/autoresearch/bundle/{commit}"
        gitops.git(workspace.root, "update-ref", ref, commit)
        try:
            gitops.git(workspace.root, "bundle", "create", "-q", f"{tmp}/code.bundle", ref)
        finally:
            gitops.git(workspace.root, "update-ref", "-d", ref)
        return Path(f"{tmp}/code.bundle").read_bytes()


@dataclass(frozen=True)
class WorkerJob:
    """One run, as a Ray worker receives it (with the code's bundle beside it)."""
    commit: str
    data_dir: str  # the prepared data on the head node (used where the same path holds the same files)
    log_name: str
    exp_id: int
    run: int
    token: str  # tells this job's attempts apart on a node
    score_test: bool = False
    data_hashes: tuple[tuple[str, str], ...] = ()  # sha256 of each prepared data file on the head
    seed: int | None = None  # the harness's seed for the run (Job.run_seed)


def _run_on_worker(bundle: bytes, work: WorkerJob) -> dict:
    """On a Ray worker: unpack the code, run one trial, return the result and the log."""
    commit, data_dir, log_name, exp_id, run = work.commit, work.data_dir, work.log_name, work.exp_id, work.run
    from autoresearch.run.process import RUN_MARKER
    from autoresearch.run.trial import RunSpec, run_trial
    from autoresearch.store.workspace import RunPaths

    attempt = _attempt_number(work.token)
    with tempfile.TemporaryDirectory(prefix="autoresearch-") as tmp:
        ws, bundle_path = Path(tmp) / "ws", Path(tmp) / "code.bundle"
        bundle_path.write_bytes(bundle)
        for args in (["init", "-q", str(ws)], ["-C", str(ws), "fetch", "-q", str(bundle_path), f"refs/autoresearch/bundle/{commit}"],
                     ["-C", str(ws), "checkout", "-q", "--detach", commit]):
            subprocess.run(["git", *args], check=True, capture_output=True)
        checkout = Workspace(ws)
        task, paths = checkout.task(), RunPaths(checkout.run_dir(exp_id) / log_name)
        gpus = os.environ.get("CUDA_VISIBLE_DEVICES")  # Ray sets it to the GPU it gave this task
        extra = {RUN_MARKER: f"ray-{exp_id}-{run}-{attempt}"} | ({"CUDA_VISIBLE_DEVICES": gpus} if gpus is not None else {})
        try:
            data = worker_data(task, data_dir, dict(work.data_hashes))
            if data is not None:
                checkout.link_data(data)
            trial = run_trial(RunSpec(checkout, task, commit, paths, env=extra, guard_refs=False,
                                      score_test=work.score_test, seed=work.seed))
        except DataMismatch as exc:  # a crash that says why; never a run on other data
            trial = TrialResult.never_ran(paths.log, str(exc))
        log = paths.log.read_text(errors="replace") if paths.log.exists() else ""
    return {"trial": trial, "log": log, "node": _node_name(), "attempt": attempt}


def _node_name() -> str:
    """The host and the node's address: several nodes may share a host name (containers, namespaces)."""
    import platform

    try:
        import ray
        return f"{platform.node()}@{ray.util.get_node_ip_address()}"
    except Exception:  # outside a Ray worker
        return platform.node()


class DataMismatch(ExecutorError):
    """A node's prepared data is not the head's: a run there would not be comparable."""


def worker_data(task: Task, head_dir: str, head_hashes: dict[str, str]) -> Path | None:
    """The prepared data for a run on this node: the head's path where it holds the same files,
    else prepared here from the task's data spec (cached), and either way checked file by file
    against the head's hashes."""
    if not head_dir:
        return None
    data = Path(head_dir)
    if not (data / "meta.json").exists():
        if not task.data.dataset:
            raise DataMismatch(f"this node has no {head_dir} and the task names no dataset to prepare")
        from autoresearch.data.build import prepare_data
        data = prepare_data(task.data.dataset, task.data.vocab_size, log=lambda message: None)
    here = data_hashes(data)
    differ = sorted(name for name, digest in head_hashes.items()
                    if name != "meta.json" and here.get(name) != digest)  # meta.json: when and how long it took
    if differ:
        raise DataMismatch(f"the data on this node ({data}) differs from the head's in {', '.join(differ)}: "
                           "prepare it with the same autoresearch version and settings")
    return data


def _attempt_number(token: str) -> int:
    """How many times this job was started on this node (>1 when Ray ran it again after a lost
    worker; a retry on another node starts again from 1 there)."""
    counter = Path(tempfile.gettempdir()) / "autoresearch-ray-attempts" / token
    counter.parent.mkdir(parents=True, exist_ok=True)
    with open(counter, "a") as f:
        f.write(f"{os.getpid()}\n")
    return len(counter.read_text().splitlines())
