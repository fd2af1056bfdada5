"""The autonomous loop on the tiny template with real git, subprocesses and SQLite."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pandas as pd
from conftest import git, ledger_for, run_cli, set_line

from autoresearch.core.events import EventBus, ExperimentFinished, Note
from autoresearch.propose.base import Draft
from autoresearch.propose.edits import Edit, Proposal
from autoresearch.propose.search import RandomProposer
from autoresearch.study.study import StudyOptions, run_study


def test_random_loop_runs_records_and_keeps_the_best(tiny_workspace):
    ws = tiny_workspace
    summary = run_study(ws, [RandomProposer(seed=3)], StudyOptions(max_experiments=5))
    assert len(summary.experiments) == 5 and summary.stop_reason.startswith("ran 5")
    table = pd.read_csv(ws / "results.tsv", sep="\t")
    assert len(table) == 5 and table.status.iloc[0] == "keep" and table.description.iloc[0].startswith("baseline [mean of 3 runs, sd 0.0000]")
    kept = [r for r in summary.experiments if r.status == "keep"]
    assert git(ws, "rev-parse", "HEAD") == kept[-1].commit
    best = min(r.metric for r in summary.experiments if r.metric is not None)
    assert kept[-1].metric == best
    ledger = ledger_for(ws)
    used = ledger.proposals(status="used")
    ledger.close()
    assert len(used) == 4 and all(p.proposer == "random" and p.experiment_id for p in used)


def test_stop_file_stops_and_is_removed(tiny_workspace):
    ws = tiny_workspace
    stop = ws / ".autoresearch" / "stop"
    stop.parent.mkdir(exist_ok=True)
    bus = EventBus(lambda e: isinstance(e, ExperimentFinished) and e.result.id == 2 and stop.touch())
    summary = run_study(ws, [RandomProposer(seed=1)], StudyOptions(max_experiments=50), bus=bus)
    assert "stop file" in summary.stop_reason and not stop.exists()
    assert len(summary.experiments) == 2


class SameFileAgain:
    """A proposer that keeps proposing the same file: after the first run it must not run again."""
    name = "same"

    def __init__(self, text):
        self.text = text

    def propose(self, snapshot):
        return Draft(Proposal("alpha 0.5", "", [Edit("train.py", "", self.text, whole_file=True)]), self.name)

    def fix(self, snapshot, crashed, log_tail):
        return None


def test_duplicate_code_is_not_run_again(tiny_workspace):
    ws = tiny_workspace
    text = (ws / "train.py").read_text().replace("ALPHA = 1.0 ", "ALPHA = 0.5 ")
    options = StudyOptions(max_experiments=5, pipeline=False, failure_backoff_s=0.01, max_idle_proposals=3)
    summary = run_study(ws, [SameFileAgain(text)], options)
    # baseline, then alpha 0.5 once; after that only duplicates, until the loop gives up on the proposer
    assert [r.description for r in summary.experiments] == ["baseline", "alpha 0.5"]
    assert summary.duplicates == 3 and summary.stop_reason.startswith("3 proposals in a row could not run")
    ledger = ledger_for(ws)
    assert [p.status for p in ledger.proposals()] == ["used", "duplicate", "duplicate", "duplicate"]
    ledger.close()


def test_cli_run_without_a_model_says_how_to_plug_one_in(tiny_workspace):
    out = run_cli("run", "--max-experiments", "2", "--seed", "5", cwd=tiny_workspace)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0].startswith("no model configured: using the built-in random proposer")
    history = json.loads(run_cli("history", "--json", cwd=tiny_workspace).stdout)
    assert [e["status"] for e in history["experiments"]][0] == "keep"
    assert history["experiments"][1]["proposal"]["proposer"] == "random"


def _slow_tiny(ws):
    """Each run takes ~2 s, so a kill lands in the middle of one."""
    set_line(ws / "train.py", "    main()", "    import time; time.sleep(2); main()")
    git(ws, "commit", "-qam", "slow runs")


def _running_experiment(ws, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            db = sqlite3.connect(ws / ".autoresearch" / "ledger.sqlite")
            row = db.execute("SELECT id FROM experiments WHERE status = 'running' AND id >= 2").fetchone()
            db.close()
            if row and (ws / ".autoresearch" / "runs" / f"{row[0]:05d}" / "pgid").exists():
                return row[0]
        except sqlite3.OperationalError:
            pass
        time.sleep(0.05)
    raise AssertionError("no experiment started")


def test_sigkill_during_an_experiment_then_resume(tiny_workspace):
    """Without a sandbox the training process outlives a killed harness and the restart kills it
    (bubblewrap's die-with-parent takes it down at once; the fault catalog covers that case)."""
    ws = tiny_workspace
    set_line(ws / "autoresearch.toml", 'kind = "auto"', 'kind = "none"')
    _slow_tiny(ws)
    cmd = [sys.executable, "-m", "autoresearch", "run", "--max-experiments", "10", "--seed", "2"]
    proc = subprocess.Popen(cmd, cwd=ws, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    killed = _running_experiment(ws)
    pgid = int((ws / ".autoresearch" / "runs" / f"{killed:05d}" / "pgid").read_text().split()[0])
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    os.killpg(pgid, 0)  # the training process outlived the harness...

    out = run_cli("run", "--max-experiments", "2", "--seed", "9", cwd=ws)
    assert out.returncode == 0, out.stderr
    assert f"closed 1 experiment(s) interrupted by the last stop: [{killed}]" in out.stdout
    try:
        os.killpg(pgid, 0)
        raise AssertionError("the orphaned training process group is still alive")
    except ProcessLookupError:
        pass  # ...and the restart killed it

    ledger = ledger_for(ws)
    experiments = ledger.experiments()
    ledger.close()
    assert [e.id for e in experiments] == list(range(1, len(experiments) + 1))
    assert all(e.status in ("keep", "discard", "crash") for e in experiments)
    interrupted = experiments[killed - 1]
    assert interrupted.status == "crash" and interrupted.reason.startswith("interrupted")
    table = pd.read_csv(ws / "results.tsv", sep="\t")
    assert len(table) == len(experiments) and list(table.status) == [e.status for e in experiments]
    kept = [e for e in experiments if e.status == "keep"]
    assert git(ws, "rev-parse", "HEAD") == kept[-1].commit
    commits = [e.commit for e in experiments]
    assert len(set(commits)) == len(commits)  # nothing ran twice
    for e in experiments:
        assert git(ws, "rev-parse", f"refs/autoresearch/attempts/{e.id:05d}") == e.commit


def test_top_k_explores_from_other_kept_commits_and_returns_to_the_best(tiny_workspace):
    ws = tiny_workspace
    events = []
    options = StudyOptions(max_experiments=10, top_k=3, explore=1.0, seed=0)
    summary = run_study(ws, [RandomProposer(seed=11)], options,
                        bus=EventBus(lambda e: isinstance(e, Note) and events.append(e.text)))
    ledger = ledger_for(ws)
    experiments = ledger.experiments()
    best = ledger.incumbent(experiments[0].branch)
    ledger.close()
    kept_commits = [e.commit for e in experiments if e.status == "keep"]
    explored = [e for e in experiments[1:] if e.parent != _best_before(experiments, e)]
    assert any(m.startswith("exploring from #") for m in events)
    assert explored and all(e.parent in kept_commits for e in explored)
    assert git(ws, "rev-parse", "HEAD") == best.commit and len(summary.experiments) == 10


def _best_before(experiments, exp):
    kept = [e for e in experiments if e.status == "keep" and e.id < exp.id]
    return kept[-1].commit
