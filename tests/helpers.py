"""Helpers several test modules share: scripted proposers, a task that prints its curve, record checks."""

from __future__ import annotations

import pandas as pd
from conftest import git, ledger_for

from autoresearch.propose.base import Draft
from autoresearch.propose.edits import Edit, Proposal

TRAIN = '''import random, time
X = 1.0  # knob: float 0..10
BUDGET = 3.0
rng = random.Random()
start, step = time.time(), 0
while (progress := (time.time() - start) / BUDGET) < 1.0:
    step += 1
    loss = 3.0 - progress + 0.3 * abs(X - 1.0) + rng.gauss(0, 0.01)
    print(f"step {step:05d} ({100 * progress:5.1f}%) | loss {loss:.4f} | tok/s 1,000", flush=True)
    time.sleep(0.05)
print("---")
print(f"score: {2.0 + 0.3 * abs(X - 1.0) + rng.gauss(0, 0.01):.6f}")
'''

# a worse X falls further behind as it trains: never "closing the gap", whatever the noise of two points


class ScriptedProposer:
    """Proposes the given knob changes in order, against whatever best it is shown."""
    name = "scripted"

    def __init__(self, changes: list[tuple[str, str, str]]):
        self.changes = list(changes)
        self.seen_in_flight: list[list[str]] = []

    def propose(self, snapshot) -> Draft:
        self.seen_in_flight.append(list(snapshot.in_flight))
        if not self.changes:
            return Draft(None, self.name, error="nothing left to propose")
        description, old, new = self.changes.pop(0)
        line = next(line for line in snapshot.files["train.py"].splitlines() if line.startswith(old))
        return Draft(Proposal(description, "", [Edit("train.py", line, new + line[len(new):] if len(line) > len(new)
                                                     else new)]), self.name)

    def fix(self, snapshot, crashed, log_tail):
        return None


class ListProposer:
    name = "list"

    def __init__(self, values: list[float]):
        self.values = list(values)

    def propose(self, snapshot) -> Draft:
        line = next(line for line in snapshot.files["train.py"].splitlines() if line.startswith("X = "))
        value = self.values.pop(0)
        return Draft(Proposal(f"X {value:g}", "", [Edit("train.py", line, f"X = {value:g}  # knob: float 0..10")]),
                     self.name)

    def fix(self, snapshot, crashed, log_tail):
        return None


def consistent_record(ws) -> list:
    """The ledger, results.tsv and git agree; kept commits form one line. Returns the experiments."""
    ledger = ledger_for(ws)
    experiments = ledger.experiments()
    branch = git(ws, "rev-parse", "--abbrev-ref", "HEAD")
    best = ledger.incumbent(branch)
    ledger.close()
    assert all(e.status in ("keep", "discard", "crash") for e in experiments)
    assert git(ws, "rev-parse", "HEAD") == best.commit
    assert list(pd.read_csv(ws / "results.tsv", sep="\t").status) == [e.status for e in experiments]
    kept = [e for e in experiments if e.status == "keep"]
    for before, after in zip(kept, kept[1:]):  # kept commits form one line, each on top of the last
        assert after.parent == before.commit
    assert git(ws, "status", "--porcelain", "--untracked-files=no") == ""
    return experiments


def curve_task(ws, extra: str = "", train: str = TRAIN) -> None:
    (ws / "train.py").write_text(train)
    toml = ws / "autoresearch.toml"
    text = toml.read_text().replace('metric = "val_bpb"', 'metric = "score"')
    text = text.replace('command = ["{python}", "-P", "prepare.py", "evaluate", "{handoff}"]', "")
    toml.write_text(text + "\n[judge]\nbaseline_runs = 3\nmax_reruns = 0\n" + extra)
    git(ws, "commit", "-qam", "a task that prints its curve")
