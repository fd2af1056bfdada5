"""Crash safety of the harness: SIGKILL a running loop at random moments, ten times, and
restart it each time. Every restart must find git, results.tsv and the record consistent."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time

import pandas as pd
from conftest import git, ledger_for, run_cli, set_line

KILLS = 10


def test_sigkill_at_random_points_then_resume(tiny_workspace):
    ws = tiny_workspace
    # runs of uneven length, so kills land in proposals, commits, training, evaluation and records
    set_line(ws / "train.py", "    main()", "    import random, time; time.sleep(random.random() * 0.6); main()")
    git(ws, "commit", "-qam", "uneven runs")
    rng = random.Random(20261127)
    for trial in range(KILLS):
        proc = subprocess.Popen([sys.executable, "-m", "autoresearch", "run", "--plain", "--max-experiments", "50",
                                 "--seed", str(trial)], cwd=ws, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.5, 4.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        _assert_readable(ws)

    out = run_cli("run", "--plain", "--max-experiments", "2", "--seed", "99", cwd=ws)
    assert out.returncode == 0, out.stderr
    ledger = ledger_for(ws)
    experiments = ledger.experiments()
    branch = git(ws, "rev-parse", "--abbrev-ref", "HEAD")
    best = ledger.incumbent(branch)
    ledger.close()
    assert len(experiments) >= 3
    assert [e.id for e in experiments] == list(range(1, len(experiments) + 1))
    assert all(e.status in ("keep", "discard", "crash") for e in experiments), "an experiment left running"
    interrupted = [e for e in experiments if e.reason.startswith("interrupted")]
    print(f"{len(experiments)} experiments, {len(interrupted)} interrupted by the {KILLS} kills")
    assert 1 <= len(interrupted) <= KILLS
    table = pd.read_csv(ws / "results.tsv", sep="\t")
    assert list(table.status) == [e.status for e in experiments]
    assert git(ws, "rev-parse", "HEAD") == best.commit  # the branch is at the best kept commit
    assert git(ws, "status", "--porcelain", "--untracked-files=no") == ""
    for e in experiments:  # every attempt that got a commit is still reachable
        if e.commit:
            assert git(ws, "cat-file", "-t", e.commit) == "commit"
    git(ws, "fsck", "--no-progress")


def _assert_readable(ws):
    """Between kills: the record opens and results.tsv parses (a killed writer leaves no torn file)."""
    ledger = ledger_for(ws)
    rows = ledger.experiments()
    ledger.close()
    if (ws / "results.tsv").exists():
        table = pd.read_csv(ws / "results.tsv", sep="\t")
        assert len(table) <= len(rows)
