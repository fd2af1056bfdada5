"""`autoresearch history --json` carries what the built-in proposer sees: each run's training curve and
the briefing, beside every key it had before. Two real `exp` runs of the tiny task, whose train.py
is made to print progress lines (the template prints none)."""

from __future__ import annotations

import json

from conftest import set_line

from autoresearch.interfaces.cli import main

EXPERIMENT_KEYS = {"id", "branch", "commit", "parent", "status", "metric", "incumbent", "description", "reason",
                   "wall_seconds", "metrics", "log_path", "proposer", "proposal", "curves"}
POINT_KEYS = {"step", "fraction", "loss", "tokens_per_second", "seconds"}


def progress(*lines: str) -> str:
    return "    " + "; ".join(f"print({line!r}, flush=True)" for line in lines) + "; main()"


def history_json(capsys, ws, *flags: str) -> dict:
    capsys.readouterr()
    assert main(["history", "--json", "-C", str(ws), *flags]) == 0
    return json.loads(capsys.readouterr().out)


def test_history_json_has_each_runs_curve_and_the_briefing(tiny_workspace, capsys):
    ws = tiny_workspace
    set_line(ws / "train.py", "    main()", progress("step 00001 ( 50.0%) | loss 2.5000 | tok/s 100"))
    assert main(["exp", "-q", "-m", "baseline", "-C", str(ws)]) == 0
    set_line(ws / "train.py", "ORDER = ", "ORDER = 0")
    set_line(ws / "train.py", "    print('step", progress("step 00001 ( 50.0%) | loss 2.7000 | tok/s 90",
                                                         "step 00002 ( 90.0%) | loss nan | tok/s 90"))
    assert main(["exp", "-q", "-m", "order 0", "-C", str(ws)]) == 0

    data = history_json(capsys, ws)
    assert set(data) == {"experiments", "other_proposals", "proposers", "briefing"}
    base, worse = data["experiments"]
    assert (base["status"], worse["status"]) == ("keep", "discard")
    assert set(base) == EXPERIMENT_KEYS and set(worse) == EXPERIMENT_KEYS
    point = {"step": 1, "fraction": 0.5, "loss": 2.5, "tokens_per_second": 100.0, "seconds": 0.0}
    assert base["curves"] == {"1": [point], "2": [point], "3": [point]}  # the baseline runs three times
    assert set(worse["curves"]) == {"1"}
    first, diverged = worse["curves"]["1"]
    assert (first["step"], first["fraction"], first["loss"]) == (1, 0.5, 2.7)
    assert set(diverged) == POINT_KEYS and diverged["step"] == 2 and diverged["loss"] is None  # nan: null

    notes = data["briefing"]
    assert notes[0].startswith(f"The best so far (#{base['id']}, val_bpb ")
    assert notes[1] == "Its training curve (share of the budget: smoothed training loss): 50 %: 2.500."
    assert f"#{worse['id']} order 0: loss against the best's at 50 %" in notes[2]
    # across branches the briefing is still the current branch's, the one the proposer would read
    assert history_json(capsys, ws, "--all-branches")["briefing"] == notes
    assert main(["history", "-C", str(ws)]) == 0  # the text view unchanged


def test_history_json_before_any_run_has_no_briefing(tiny_workspace, capsys):
    assert history_json(capsys, tiny_workspace) == {"experiments": [], "other_proposals": [], "proposers": {},
                                                    "briefing": []}
