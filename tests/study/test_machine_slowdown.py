"""A crash the machine caused is not a bug: a run that a loaded machine slowed into its timeout is run
again by the harness, once, and never sent to the model as something to fix."""

from __future__ import annotations

import subprocess
import sys
import time

from conftest import git, ledger_for

from autoresearch.core.events import EventBus, Note, RunStarted
from autoresearch.core.machine import machine_slowdown
from autoresearch.propose.base import Draft
from autoresearch.propose.edits import Edit, Proposal
from autoresearch.study.study import StudyOptions, run_study

# a stub training run: fixed CPU work in 20 steps, progress lines with its throughput, then its score
STUB = '''import time
X = 10.0  # knob: float 0..100
WORK = {work}
start, tokens = time.perf_counter(), 0
for step in range(1, 21):
    total = 0
    for i in range(WORK):
        total += i * i
    tokens += 1000
    rate = tokens / (time.perf_counter() - start)
    print(f"step {{step:05d}} ({{5 * step:5.1f}}%) | loss {{5 - step / 10:.4f}} | tok/s {{rate:,.0f}}", flush=True)
print("---")
print(f"score: {{X}}")
'''
HOGS = 12  # busy processes on the runner's cores: the stub gets a small share of them


def test_the_rule_needs_a_failure_and_a_measured_slowdown():
    assert machine_slowdown(True, "", 100.0, 1000.0).startswith("it trained at 100 tokens/s against 1,000")
    assert machine_slowdown(False, "out of memory: over the 2.0 GB limit", 100.0, 1000.0)
    assert machine_slowdown(False, "", 100.0, 1000.0) == ""  # no timeout, no memory kill: not the machine's
    assert machine_slowdown(True, "", 400.0, 1000.0) == ""  # 2.5x slower: a bigger model may be the cause
    assert machine_slowdown(True, "", None, 1000.0) == "" and machine_slowdown(True, "", 100.0, None) == ""


class Bumper:
    """Raises X by one; a crash sent back to it for a fix is recorded (it must not happen here)."""
    name = "bumper"

    def __init__(self):
        self.fixes = []

    def propose(self, snapshot) -> Draft:
        line = next(line for line in snapshot.files["train.py"].splitlines() if line.startswith("X = "))
        return Draft(Proposal("X + 1", "", [Edit("train.py", line, line.replace("10.0", "11.0"))]), self.name)

    def fix(self, snapshot, crashed, log_tail):
        self.fixes.append(crashed.id)
        return None


def _quiet_seconds(work: int) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", STUB.format(work=work)], check=True, capture_output=True)
    return time.perf_counter() - started


def _stub_task(ws, work: int, timeout: float) -> None:
    (ws / "train.py").write_text(STUB.format(work=work))
    toml = ws / "autoresearch.toml"
    text = toml.read_text().replace('metric = "val_bpb"', 'metric = "score"')
    text = text.replace('direction = "minimize"', 'direction = "maximize"')
    text = text.replace('command = ["{python}", "-P", "prepare.py", "evaluate", "{handoff}"]', "")
    text = text.replace('kind = "seconds"', 'kind = "tokens"').replace("value = 10", "value = 20000")
    text = text.replace("timeout = 60", f"timeout = {timeout:.1f}")
    toml.write_text(text + '\n[judge]\nrule = "strict"\nbaseline_runs = 1\n\n[early_abort]\nenabled = false\n')
    git(ws, "commit", "-qam", "a stub task whose runs report their throughput")


def test_a_timeout_under_load_is_run_again_without_asking_the_model(tiny_workspace):
    work = 1_000_000  # about 2 s of work on a quiet core
    quiet = _quiet_seconds(work)
    _stub_task(tiny_workspace, work, timeout=max(4 * quiet, 3.0))
    hogs: list[subprocess.Popen] = []
    notes: list[str] = []

    def load_the_machine(event) -> None:
        if isinstance(event, RunStarted) and event.exp_id == 2 and event.run == 1:  # the candidate's first run
            # each in a session of its own: the kernel shares the cores between sessions (autogroups) first,
            # as it does between the runs and other jobs on a real machine
            hogs.extend(subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
                        for _ in range(HOGS))
        if isinstance(event, Note):
            notes.append(event.text)
            if "running it again" in event.text:  # the load goes away before the rerun
                for hog in hogs:
                    hog.kill()

    bus = EventBus()
    bus.subscribe(load_the_machine)
    bumper = Bumper()
    try:
        summary = run_study(tiny_workspace, [bumper], StudyOptions(max_experiments=2, pipeline=False), bus=bus)
    finally:
        for hog in hogs:
            hog.kill()
    assert hogs, "the candidate never started"
    candidate = summary.experiments[-1]
    rerun = next(n for n in notes if "running it again" in n)
    assert "timed out" in rerun and "the machine was loaded, not the change at fault" in rerun
    assert (candidate.status, candidate.metric, candidate.runs) == ("keep", 11.0, 2)
    assert bumper.fixes == []  # never sent to the model as a bug
    with ledger_for(tiny_workspace) as ledger:
        runs = ledger.runs(candidate.id)
    assert [r["metric"] for r in runs] == [None, 11.0]
