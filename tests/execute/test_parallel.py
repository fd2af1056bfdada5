"""Several experiments at once: local slots, coordination, replays on a newer best."""

from __future__ import annotations

import pytest
from conftest import git, ledger_for, run_cli, set_line
from helpers import ScriptedProposer, consistent_record

from autoresearch.core.task import load_task
from autoresearch.execute.base import ExecutorError
from autoresearch.execute.local import LocalExecutor, plan_slots
from autoresearch.propose.search import RandomProposer
from autoresearch.study.study import StudyOptions, run_study


def test_plan_slots_one_device_each():
    assert [s.env["CUDA_VISIBLE_DEVICES"] for s in plan_slots(2, ["0", "1", "2"])] == ["0", "1"]
    with pytest.raises(ExecutorError, match="one experiment per GPU"):
        plan_slots(3, ["0", "1"])
    cpu = plan_slots(4, [], cpu_count=8)
    assert len(cpu) == 4 and {s.env["OMP_NUM_THREADS"] for s in cpu} == {"2"}
    assert all(s.env["CUDA_VISIBLE_DEVICES"] == "" for s in cpu)


def test_slots_run_at_once_and_the_record_staysconsistent_record(tiny_workspace):
    ws = tiny_workspace
    set_line(ws / "train.py", "    main()", "    import time; time.sleep(1.0); main()")
    git(ws, "commit", "-qam", "runs of a second")
    task = load_task(ws)
    executor = LocalExecutor(ws, task, plan_slots(3, []))
    summary = run_study(ws, [RandomProposer(seed=5)], StudyOptions(max_experiments=6), executor=executor)
    experiments = consistent_record(ws)
    assert len(experiments) >= 7 and summary.stop_reason.startswith("started 6")
    runs = [e for e in experiments[1:]]
    overlapping = sum(1 for a in runs for b in runs if a.id < b.id and b.started_at < a.finished_at)
    assert overlapping >= 3, "the slots did not run experiments at the same time"
    worktrees = git(ws, "worktree", "list")
    assert worktrees.count(".autoresearch/slots/cpu") == 3


def test_a_gain_on_an_older_parent_is_replayed_on_the_new_best(tiny_workspace):
    ws = tiny_workspace
    # ORDER 3 is a big gain but slow; the ALPHA change is a small gain and fast, so it is kept first
    set_line(ws / "train.py", "    main()", "    import time; time.sleep(2.0 if ORDER == 3 else 0.0); main()")
    git(ws, "commit", "-qam", "order 3 is slow")
    proposer = ScriptedProposer([("order 3", "ORDER = 2", "ORDER = 3"), ("alpha 1.2", "ALPHA = 1.0", "ALPHA = 1.2")])
    executor = LocalExecutor(ws, load_task(ws), plan_slots(2, []))
    run_study(ws, [proposer], StudyOptions(max_experiments=3, max_idle_proposals=1), executor=executor)
    experiments = consistent_record(ws)
    by_description = {e.description: e for e in experiments}
    order3, alpha = by_description["order 3"], by_description["alpha 1.2"]
    replay = next(e for e in experiments if e.description.startswith("replay of"))
    assert alpha.status == "keep"
    assert order3.status == "discard" and "older parent" in order3.reason and order3.parent == alpha.parent
    assert replay.description == f"replay of #{order3.id} on #{alpha.id}: order 3"
    assert replay.parent == alpha.commit and replay.status == "keep"
    source = git(ws, "show", f"{replay.commit}:train.py")
    assert "ORDER = 3" in source and "ALPHA = 1.2" in source
    assert ["order 3"] in proposer.seen_in_flight  # the second proposal saw the first one in flight


def test_cli_runs_local_slots(tiny_workspace):
    out = run_cli("run", "--slots", "2", "--max-experiments", "4", "--seed", "1", "--plain", cwd=tiny_workspace)
    assert out.returncode == 0, out.stderr
    assert "on 2 local slot(s)" in out.stdout and "started 4 experiments" in out.stdout
    consistent_record(tiny_workspace)
    bad = run_cli("run", "--slots", "2", "--gpus", "0", cwd=tiny_workspace)
    assert bad.returncode == 1 and "at most 1 slots" in bad.stderr


def test_sigkill_of_the_coordinator_then_resume(tiny_workspace):
    """Kill the parallel loop while several experiments run; the restart closes them and goes on."""
    import signal
    import subprocess
    import sys
    import time

    ws = tiny_workspace
    set_line(ws / "train.py", "    main()", "    import time; time.sleep(1.5); main()")
    git(ws, "commit", "-qam", "slow runs")
    proc = subprocess.Popen([sys.executable, "-m", "autoresearch", "run", "--slots", "3", "--plain",
                             "--max-experiments", "30", "--seed", "4"], cwd=ws,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline:  # wait until the slots are busy
        ledger = ledger_for(ws)
        running = [e for e in ledger.experiments() if e.status == "running" and e.id > 1]
        ledger.close()
        if len(running) >= 2:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    out = run_cli("run", "--slots", "3", "--plain", "--max-experiments", "3", "--seed", "5", cwd=ws)
    assert out.returncode == 0, out.stderr
    assert "interrupted by the last stop" in out.stdout
    experiments = consistent_record(ws)
    interrupted = [e for e in experiments if e.reason.startswith("interrupted")]
    assert len(interrupted) >= 2
