"""`autoresearch verify` on the tiny template: real runs, real git, the real ledger."""

from __future__ import annotations

import json
import sqlite3

import pytest
from conftest import git, ledger_for, run_cli
from helpers import ScriptedProposer

from autoresearch.interfaces.dashboard import read_state
from autoresearch.study.study import StudyOptions, run_study


@pytest.fixture
def studied(tiny_workspace):
    """A study with two kept changes: a longer context, then more smoothing."""
    proposer = ScriptedProposer([("order 3", "ORDER = 2", "ORDER = 3"), ("alpha 2.0", "ALPHA = 1.0", "ALPHA = 2.0")])
    summary = run_study(tiny_workspace, [proposer], StudyOptions(max_experiments=3, pipeline=False, max_idle_proposals=1))
    assert [r.status for r in summary.experiments] == ["keep", "keep", "keep"]
    return tiny_workspace


def _verify(ws, *args):
    out = run_cli("verify", "--json", *args, cwd=ws)
    return out, (json.loads(out.stdout) if out.stdout.strip().startswith("{") else None)


def test_baseline_and_best_are_rerun_interleaved_on_validation_and_test(studied):
    out, result = _verify(studied, "--runs", "2")
    assert out.returncode == 0, out.stderr
    assert result["problems"] == [] and result["checked"] == {"experiments": 3, "runs": 5, "kept": 3}
    assert [r["label"] for r in result["runs"]] == ["baseline", "best", "baseline", "best"]
    assert [r["number"] for r in result["runs"]] == [1, 2, 3, 4]
    assert all(a["started_at"] < b["started_at"] for a, b in zip(result["runs"], result["runs"][1:]))
    val = result["gain"]["val"]
    assert val["gain"] == pytest.approx(result["reported_gain"], abs=1e-6) and val["low"] <= val["gain"] <= val["high"]
    assert result["test_split"] and result["gain"]["test"]["gain"] > 0  # the gain holds on text no selection saw
    assert all(r["test"] is not None and r["test"] != r["val"] for r in result["runs"])
    ledger = ledger_for(studied)
    recorded = ledger.verifications()
    ledger.close()
    assert len(recorded) == 1 and recorded[0]["result"]["gain"]["val"]["gain"] == val["gain"]
    report = run_cli("report", cwd=studied)
    assert report.returncode == 0, report.stderr
    page = (studied / ".autoresearch" / "report" / "report.html").read_text()
    assert "Verified" in page and f"{val['gain']:+.6f}" in page
    assert read_state(studied)["verification"]["gain"]["val"]["gain"] == val["gain"]
    git(studied, "checkout", "-qb", "autoresearch/elsewhere")  # the dashboard shows the workspace branch's only
    assert read_state(studied)["verification"] is None


def test_a_forged_ledger_row_is_named(studied):
    db = sqlite3.connect(studied / ".autoresearch" / "ledger.sqlite")
    db.execute("UPDATE experiments SET metric = metric - 0.5 WHERE id = 2")  # a better number than it measured
    db.commit()
    db.close()
    out, result = _verify(studied, "--records-only")
    assert out.returncode == 1
    assert any(p.startswith("experiment #2: val_bpb") and "but its runs measured" in p for p in result["problems"])
    assert any(p.startswith("results.tsv row 2 (experiment #2)") for p in result["problems"])
    # forging the runs as well is caught by the trusted evaluation's own lines in the run's log
    db = sqlite3.connect(studied / ".autoresearch" / "ledger.sqlite")
    db.execute("UPDATE runs SET metric = metric - 0.5 WHERE experiment_id = 2")
    db.commit()
    db.close()
    out, result = _verify(studied, "--records-only")
    assert any(p.startswith("experiment #2 run 1: val_bpb") and "its log's last summary block says" in p
               for p in result["problems"])
    plain = run_cli("verify", "--records-only", cwd=studied)
    assert plain.returncode == 1 and "experiment #2 run 1" in plain.stdout


def test_a_changed_data_file_is_detected(tiny_workspace, tmp_path):
    data = tmp_path / "prepared"
    data.mkdir()
    (data / "train.bin").write_bytes(b"the data the study was measured on")
    from autoresearch.store.workspace import Workspace
    Workspace(tiny_workspace).link_data(data)
    proposer = ScriptedProposer([("order 3", "ORDER = 2", "ORDER = 3")])
    run_study(tiny_workspace, [proposer], StudyOptions(max_experiments=2, pipeline=False, max_idle_proposals=1))
    assert _verify(tiny_workspace, "--records-only")[1]["problems"] == []
    (data / "train.bin").write_bytes(b"other data, same name")
    out, result = _verify(tiny_workspace, "--records-only")
    assert out.returncode == 1
    changed = [p for p in result["problems"] if p.startswith("data file train.bin has changed since experiment")]
    assert len(changed) == 2  # the baseline and the kept change were both measured on the old data


def test_ablation_takes_each_kept_change_out_in_turn(studied):
    out, result = _verify(studied, "--runs", "2", "--ablate")
    assert out.returncode == 0, out.stderr
    labels = [a["label"] for a in result["ablation"]]
    assert labels == ["without #2: order 3", "without #3: alpha 2.0"]
    without_order, without_alpha = (a["val"]["gain"] for a in result["ablation"])
    assert without_order > without_alpha > 0  # both keeps help; the longer context helps most
    assert [r["label"] for r in result["runs"]][:4] == ["baseline", "best", labels[0], labels[1]]
    for side in result["sides"][2:]:
        source = git(studied, "show", f"{side['commit']}:train.py")
        assert ("ORDER = 3" in source) != ("order 3" in side["label"])  # exactly that change is gone
