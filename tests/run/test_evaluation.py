"""The trusted evaluation started early (with the run, or at the handoff): its start-up overlaps
the training process's, and it reads the model only once the training process is gone and the run
passed its checks."""

from __future__ import annotations

import re

import pytest
from conftest import git, needs_bwrap

from autoresearch.store.templates import init_workspace
from autoresearch.study.manual import run_experiment

TRAIN = '''
import os, sys, time
print(f"training {time.time():.3f}", flush=True)
time.sleep(1.0)  # its start-up: Python, torch, the model
from autoresearch.run.clock import tell
tell("batch", 1)
tell("step")
print(f"handoff {time.time():.3f}", flush=True)
tell("handoff")
time.sleep(1.5)  # the export
with open(os.path.join(os.environ["AUTORESEARCH_HANDOFF"], "model.txt"), "w") as f:
    f.write("1.25")
tell("handed-off")
time.sleep(1.0)  # the rest of the process
print("---")
print("steps: 1")
print(f"exiting {time.time():.3f}", flush=True)
sys.exit(1 if os.path.exists("fail") else 0)
'''

EVALUATE = '''
import sys, time
print(f"started {time.time():.3f}", flush=True)
time.sleep(1.0)  # its start-up: Python, torch
from autoresearch.run.evaluation import wait_for
wait_for("handoff")
print(f"told {time.time():.3f}", flush=True)
time.sleep(0.5)  # the evaluator's own imports
wait_for("go")
print(f"read {time.time():.3f}", flush=True)
print("---")
print("val_bpb: " + open(sys.argv[1] + "/model.txt").read())
'''


def _workspace(tmp_path, early: str):
    """`early`: the value of [evaluation] early_start ("run", true, false)."""
    ws = init_workspace(tmp_path / "ws", template="tiny", tag="early")
    (ws / "train.py").write_text(TRAIN)
    (ws / "evaluate.py").write_text(EVALUATE)
    toml = (ws / "autoresearch.toml").read_text()
    toml = toml.replace('"complaint_test.txt"]', '"complaint_test.txt", "evaluate.py"]', 1)  # frozen
    toml = toml.replace('command = ["{python}", "-P", "prepare.py", "evaluate", "{handoff}"]',
                        f'command = ["{{python}}", "-P", "evaluate.py", "{{handoff}}"]\nearly_start = {early}')
    (ws / "autoresearch.toml").write_text(toml + '\n[judge]\nbaseline_runs = 1\n')
    git(ws, "add", "-A")
    git(ws, "commit", "-qm", "a task that takes its time to hand off")
    return ws


def _stamps(log: str) -> dict[str, float]:
    return {m["what"]: float(m["at"]) for m in re.finditer(r"^(?P<what>training|handoff|started|told|read|exiting) (?P<at>[\d.]+)$", log, re.M)}


@needs_bwrap
def test_an_evaluation_started_with_the_run_loads_while_training_starts_and_reads_after_it(tmp_path):
    ws = _workspace(tmp_path, early='"run"')
    result = run_experiment(ws, "baseline")
    assert result.status == "keep" and result.metric == 1.25, result.reason
    stamps = _stamps(result.log_path.read_text())
    assert stamps["started"] < stamps["handoff"]  # it started during training's start-up, not at the handoff
    assert stamps["handoff"] <= stamps["told"] < stamps["exiting"] < stamps["read"]  # told at the handoff, read after
    m = result.metrics
    assert m["wall_export_seconds"] >= 1.4 and m["wall_exit_seconds"] >= 0.9
    assert m["wall_evaluation_seconds"] < 0.5  # its 1 s start-up and its 0.5 s of imports were hidden


@needs_bwrap
def test_an_early_evaluation_starts_at_the_handoff_and_reads_after_the_run(tmp_path):
    ws = _workspace(tmp_path, early="true")
    result = run_experiment(ws, "baseline")
    assert result.status == "keep" and result.metric == 1.25, result.reason
    stamps = _stamps(result.log_path.read_text())
    assert stamps["handoff"] <= stamps["started"] < stamps["exiting"] < stamps["read"]  # started at the handoff
    m = result.metrics
    assert m["wall_export_seconds"] >= 1.4 and m["wall_exit_seconds"] >= 0.9
    assert m["wall_evaluation_seconds"] < 0.9  # what it added after the run: its 1 s start-up was hidden


@needs_bwrap
@pytest.mark.parametrize("early", ['"run"', "true"])
def test_an_early_evaluation_of_a_failed_run_reads_nothing(tmp_path, early):
    ws = _workspace(tmp_path, early=early)
    (ws / "fail").write_text("")
    git(ws, "add", "fail")
    git(ws, "commit", "-qm", "train.py fails after its handoff")
    result = run_experiment(ws, "baseline")
    assert result.status == "crash" and result.reason.startswith("exit code 1"), result.reason
    eval_log = next(result.log_path.parent.glob("eval*.log")).read_text()
    assert "started" in eval_log and "\nread " not in eval_log  # it was waiting, and went without reading the model


def test_without_an_early_start_the_evaluation_starts_after_the_run(tmp_path):
    ws = _workspace(tmp_path, early="false")
    result = run_experiment(ws, "baseline")
    assert result.status == "keep" and result.metric == 1.25, result.reason
    stamps = _stamps(result.log_path.read_text())
    assert stamps["exiting"] < stamps["started"] < stamps["told"] < stamps["read"]
    assert result.metrics["wall_evaluation_seconds"] >= 1.0  # its whole start-up came after the run
