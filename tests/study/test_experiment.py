"""One experiment end to end on the tiny template: real git, real subprocess, real SQLite."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import git, ledger_for, run_cli, set_line

from autoresearch.store.gitops import commit_paths
from autoresearch.study.manual import ExperimentError, run_experiment
from autoresearch.study.recovery import recover_interrupted


def results(ws):
    return pd.read_csv(ws / "results.tsv", sep="\t")


def test_baseline_then_keep_then_discard(tiny_workspace):
    ws = tiny_workspace
    initial = git(ws, "rev-parse", "HEAD")
    base = run_experiment(ws, "baseline")
    assert base.status == "keep" and base.reason.startswith("baseline") and base.runs == 3
    assert base.commit == initial  # nothing changed: the baseline runs the workspace as made

    set_line(ws / "train.py", "ORDER = ", "ORDER = 3")
    better = run_experiment(ws, "order 3")
    assert better.status == "keep" and better.metric < base.metric
    assert git(ws, "rev-parse", "HEAD") == better.commit
    assert git(ws, "log", "-1", "--format=%s") == "order 3"

    set_line(ws / "train.py", "ORDER = ", "ORDER = 0")
    worse = run_experiment(ws, "order 0")
    assert worse.status == "discard" and worse.metric > better.metric
    assert git(ws, "rev-parse", "HEAD") == better.commit  # the branch moved back
    assert "ORDER = 3" in (ws / "train.py").read_text()
    # the discarded attempt stays reachable under its ref, with its diff recorded
    assert git(ws, "rev-parse", f"refs/autoresearch/attempts/{worse.id:05d}") == worse.commit
    ledger = ledger_for(ws)
    record = ledger.get(worse.id)
    ledger.close()
    assert "-ORDER = 3" in record.diff and "+ORDER = 0" in record.diff
    assert record.metrics["depth"] == 0.0 and (ws / record.log_path).exists()

    table = results(ws)
    assert list(table.columns) == ["commit", "val_bpb", "memory_gb", "status", "description"]
    assert list(table.status) == ["keep", "keep", "discard"]
    assert list(table.commit) == [c[:7] for c in (base.commit, better.commit, worse.commit)]
    assert table.val_bpb.round(6).tolist() == [round(r.metric, 6) for r in (base, better, worse)]
    assert all(len(line.split("\t")) == 5 for line in (ws / "results.tsv").read_text().splitlines())


def test_crash_is_recorded_and_reverted(tiny_workspace):
    ws = tiny_workspace
    run_experiment(ws, "baseline")
    head = git(ws, "rev-parse", "HEAD")
    (ws / "train.py").write_text((ws / "train.py").read_text() + "\ndef broken(:\n")
    crash = run_experiment(ws, "broken edit")
    assert crash.status == "crash" and "exit code 1" in crash.reason and "SyntaxError" in crash.reason
    assert git(ws, "rev-parse", "HEAD") == head
    assert "def broken(" not in (ws / "train.py").read_text()
    row = results(ws).iloc[-1]
    assert row.status == "crash" and row.val_bpb == 0.0 and row.memory_gb == 0.0


def test_exit_zero_without_summary_is_a_crash(tiny_workspace):
    ws = tiny_workspace
    run_experiment(ws, "baseline")
    set_line(ws / "train.py", "    main()", "    print('bye')")
    result = run_experiment(ws, "no summary")
    assert result.status == "crash" and result.reason == "exited without a summary block"


def test_nan_metric_is_a_crash(tiny_workspace):
    """A task without a trusted evaluation reads the metric its run prints: NaN is no result."""
    ws = tiny_workspace
    toml = ws / "autoresearch.toml"
    toml.write_text(toml.read_text().replace('command = ["{python}", "-P", "prepare.py"', '# command = ["{python}", "-I", "prepare.py"'))
    set_line(ws / "train.py", "    val_bpb = evaluate_bpb(", "    val_bpb = float('nan')")
    set_line(ws / "train.py", "    if val_bpb is not None:", "    if True:")
    git(ws, "commit", "-qam", "self-reported metric")
    result = run_experiment(ws, "nan")
    assert result.status == "crash" and "no valid val_bpb" in result.reason


def test_timeout_kills_and_records(tiny_workspace):
    ws = tiny_workspace
    toml = ws / "autoresearch.toml"
    set_line(toml, "value = ", "value = 1")
    set_line(toml, "timeout = ", "timeout = 2")
    commit_paths(ws, ["autoresearch.toml"], "short timeout")
    set_line(ws / "train.py", "    main()", "    import time; time.sleep(60)")
    result = run_experiment(ws, "hang")
    assert result.status == "crash" and result.reason == "timed out after 2 s"
    assert result.wall_seconds < 15


def test_nothing_changed_is_refused_unless_allowed(tiny_workspace):
    ws = tiny_workspace
    run_experiment(ws, "baseline")
    with pytest.raises(ExperimentError, match="nothing changed"):
        run_experiment(ws, "same again")
    rerun = run_experiment(ws, "same again", allow_empty=True)
    assert rerun.status == "discard"  # equal is not better
    assert rerun.commit != rerun.parent and git(ws, "rev-parse", "HEAD") == rerun.parent


def test_edited_frozen_file_is_refused(tiny_workspace):
    ws = tiny_workspace
    (ws / "prepare.py").write_text((ws / "prepare.py").read_text() + "\n# tweak\n")
    with pytest.raises(ExperimentError, match="frozen file changed: prepare.py"):
        run_experiment(ws, "tweak eval")
    assert not (ws / "results.tsv").exists()


def test_run_that_writes_a_frozen_file_is_a_crash_and_restored(tiny_workspace):
    ws = tiny_workspace
    run_experiment(ws, "baseline")
    original = (ws / "prepare.py").read_text()
    set_line(ws / "train.py", "    main()", "    open('prepare.py', 'a').write('# hacked'); main()")
    result = run_experiment(ws, "tamper")
    assert result.status == "crash"
    assert ("modified frozen file(s) prepare.py" in result.reason  # no sandbox: written, then restored
            or "Read-only file system" in result.reason)  # bubblewrap: the write fails
    assert (ws / "prepare.py").read_text() == original


def test_interrupted_experiment_is_closed_and_branch_restored(tiny_workspace):
    ws = tiny_workspace
    run_experiment(ws, "baseline")
    parent = git(ws, "rev-parse", "HEAD")
    # what a harness killed mid-run leaves: a 'running' row and the branch on the unjudged commit
    set_line(ws / "train.py", "ORDER = ", "ORDER = 4")
    ledger = ledger_for(ws)
    exp_id = ledger.start(git(ws, "rev-parse", "--abbrev-ref", "HEAD"), parent, "killed")
    commit = commit_paths(ws, ["train.py"], "killed")
    ledger.set_commit(exp_id, commit, "diff", "ref")
    assert recover_interrupted(ws, ledger, "val_bpb") == [exp_id]
    assert ledger.get(exp_id).status == "crash"
    ledger.close()
    assert git(ws, "rev-parse", "HEAD") == parent
    assert list(results(ws).status) == ["keep", "crash"]


def test_cli_exp_and_status(tiny_workspace):
    ws = tiny_workspace
    out = run_cli("exp", "-m", "baseline", "-q", cwd=ws)
    assert out.returncode == 0, out.stderr
    assert "experiment 1: KEEP" in out.stdout
    status = run_cli("status", cwd=ws)
    assert "best: " in status.stdout and "baseline" in status.stdout


def test_cli_errors_are_one_line(tmp_path):
    out = run_cli("exp", "-m", "x", cwd=tmp_path)
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1 and "not inside an autoresearch workspace" in out.stderr
    out = run_cli("init", str(tmp_path / "w"), "--preset", "nope")
    assert out.returncode == 1 and out.stderr.strip().startswith("autoresearch: unknown preset 'nope'")
