"""The Ray executor on a real local Ray cluster started by the test (4 workers, small object store)."""

from __future__ import annotations

import os
import signal
import tempfile
import time
from pathlib import Path

import pytest
from conftest import git, set_line
from helpers import consistent_record

from autoresearch.core.task import load_task
from autoresearch.execute.base import Job
from autoresearch.propose.search import RandomProposer
from autoresearch.study.study import StudyOptions, run_study

if os.environ.get("CI") == "true":
    import ray  # in CI the dev extra installs Ray: a missing install step must fail, not skip
else:
    ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'autoresearch[ray]'")

from autoresearch.execute.ray_cluster import RayExecutor  # noqa: E402

WORKERS = 4


@pytest.fixture(scope="module")
def cluster():
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray.init(address="local", num_cpus=WORKERS, object_store_memory=80 * 2**20, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    yield
    ray.shutdown()


def _slow_tiny(ws, seconds):
    set_line(ws / "train.py", "    main()", f"    import time; time.sleep({seconds}); main()")
    git(ws, "commit", "-qam", "slow runs")


def test_loop_on_a_ray_cluster(cluster, tiny_workspace):
    ws = tiny_workspace
    _slow_tiny(ws, 1.5)
    executor = RayExecutor(ws, load_task(ws))
    assert executor.capacity == WORKERS
    summary = run_study(ws, [RandomProposer(seed=11)], StudyOptions(max_experiments=8), executor=executor)
    experiments = consistent_record(ws)
    assert len(summary.experiments) >= 9  # the baseline, 8 started, and replays if any
    runs = experiments[1:]
    at_once = max(sum(1 for b in runs if b.started_at <= a.started_at < (b.finished_at or 0)) for a in runs)
    assert at_once >= 3, f"at most {at_once} experiments ran at once on {WORKERS} workers"
    for e in runs:  # logs came back from the workers
        assert "val_bpb" in (ws / e.log_path).read_text() or e.status == "crash"


def test_a_killed_worker_runs_the_experiment_again(cluster, tiny_workspace):
    ws = tiny_workspace
    _slow_tiny(ws, 6)
    executor = RayExecutor(ws, load_task(ws))
    started = time.time()
    job = Job(exp_id=1, run=1, commit=git(ws, "rev-parse", "HEAD"), log_path=ws / ".autoresearch" / "runs" / "00001" / "run.log")
    executor.submit(job)
    pid = _worker_pid_of_newest_job(started)
    os.kill(pid, signal.SIGKILL)  # the worker dies mid-task; Ray must run it again
    result = executor.next_result(timeout=180)
    assert result is not None and result.job == job
    assert result.trial.failure == "" and result.trial.metric == pytest.approx(2.888227, abs=1e-6)
    assert result.attempts == 2
    assert "val_bpb" in job.log_path.read_text()


def _worker_pid_of_newest_job(since: float, timeout: float = 60) -> int:
    """The worker records each start of a job (its pid) under the temp dir; wait for ours."""
    folder = Path(tempfile.gettempdir()) / "autoresearch-ray-attempts"
    deadline = time.time() + timeout
    while time.time() < deadline:
        fresh = [p for p in folder.glob("*") if p.stat().st_mtime >= since] if folder.exists() else []
        if fresh:
            return int(max(fresh, key=lambda p: p.stat().st_mtime).read_text().split()[0])
        time.sleep(0.1)
    raise AssertionError("the Ray task never started")


def test_a_node_without_the_heads_data_prepares_it_and_checks_the_hashes(shakespeare_512, tmp_path, monkeypatch):
    """A worker whose node lacks the head's data directory prepares the data from the task's spec
    (into its own cache) and runs only if every file hashes as on the head."""
    from autoresearch.core.task import parse_task
    from autoresearch.execute.ray_cluster import DataMismatch, worker_data
    from autoresearch.run.trial import data_hashes

    task = parse_task({"task": {"command": ["x"]}, "budget": {"value": 10},
                       "data": {"dataset": "shakespeare", "vocab_size": 512}})
    head = dict(data_hashes(shakespeare_512))
    monkeypatch.setenv("AUTORESEARCH_CACHE", str(tmp_path / "node-cache"))  # this node's own, empty cache
    missing = str(tmp_path / "head-only" / "data")
    prepared = worker_data(task, missing, head)
    assert prepared != shakespeare_512 and str(prepared).startswith(str(tmp_path / "node-cache"))
    here = data_hashes(prepared)
    assert {k: v for k, v in here.items() if k != "meta.json"} == {k: v for k, v in head.items() if k != "meta.json"}
    assert worker_data(task, str(shakespeare_512), head) == shakespeare_512  # the same path: used as it is
    forged = {**head, "train.bin": "0" * 64}
    with pytest.raises(DataMismatch, match="differs from the head's in train.bin"):
        worker_data(task, str(shakespeare_512), forged)
