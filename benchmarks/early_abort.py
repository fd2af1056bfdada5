"""Early abort, replayed on a real study's recorded curves: what it would have saved and lost.

For each candidate of the study, in order, the rule is asked after every point of its first run's
curve, against what the study knew when it started (the incumbent then, and the repeated runs
finished before it), exactly as a live study asks it. A stop saves the rest of the budget, the
trusted evaluation and any rerun the judge ordered. It prints, for the default rule and variants:
the share of all run time saved, the keeps it would have stopped, and the near misses (discards
at most 1 sd worse than the incumbent, or better but not enough to keep) it would have stopped; and the crossing curves the study holds
(behind the incumbent by more than the band at a checkpoint, ahead at the end).

    python benchmarks/early_abort.py [--workspace runs/real-cpu]

Curves come from the ledger, or from the runs' logs for a study recorded before curves were.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from autoresearch.core.abort import AbortRule, Reference, check
from autoresearch.core.curve import loss_at, points_from_log
from autoresearch.core.records import Experiment
from autoresearch.core.status import Status
from autoresearch.store.ledger import Ledger
from autoresearch.store.workspace import Workspace
from autoresearch.study.curves import reference_from

DEFAULT = AbortRule()
VARIANTS = {
    "default": DEFAULT,
    "headroom 0": replace(DEFAULT, headroom=0.0),
    "headroom 0.1": replace(DEFAULT, headroom=0.1),
    "headroom 0.25": replace(DEFAULT, headroom=0.25),
    "headroom 1": replace(DEFAULT, headroom=1.0),
    "headroom 2": replace(DEFAULT, headroom=2.0),
    "band 2 sd": replace(DEFAULT, band_sd=2.0),
    "checkpoints .2 .4 .6": replace(DEFAULT, checkpoints=(0.2, 0.4, 0.6)),
    "checkpoints .5 .7": replace(DEFAULT, checkpoints=(0.5, 0.7)),
}


@dataclass
class Outcome:
    saved: float = 0.0
    stopped: int = 0
    keeps_stopped: int = 0
    near_stopped: int = 0


def backfilled(ws: Workspace, into: Path) -> Ledger:
    """A copy of the study's ledger with every run's curve (read from its log where none is recorded)."""
    source = sqlite3.connect(f"file:{ws.ledger_path}?mode=ro", uri=True)  # with what its write-ahead log holds
    copy = sqlite3.connect(into)
    source.backup(copy)
    source.close()
    copy.close()
    ledger = Ledger(into)
    have = ledger.curves()
    for exp in ledger.experiments():
        for run in ledger.runs(exp.id):
            log = ws.root / run["log_path"]
            if run["n"] not in have.get(exp.id, {}) and log.is_file():
                ledger.add_curve(exp.id, run["n"], points_from_log(log.read_text(errors="replace")))
    return ledger


@dataclass
class Case:
    """One experiment as the replay sees it: its runs, its first run's curve, what it was held against."""
    exp: Experiment
    runs: list[dict]
    first: list | None
    reference: Reference | None


def cases_of(ledger: Ledger) -> list[Case]:
    """Read once: every variant of the rule replays the same cases."""
    curves, cases = ledger.curves(), []
    for exp in ledger.experiments():
        reference = reference_from(ledger, exp.branch, upto=exp.id - 1) if exp.incumbent is not None else None
        cases.append(Case(exp, ledger.runs(exp.id), curves.get(exp.id, {}).get(1), reference))
    return cases


def replay(cases: list[Case], rule: AbortRule, budget: float) -> tuple[Outcome, float]:
    outcome = Outcome()
    total = sum(r["wall_seconds"] or 0.0 for case in cases for r in case.runs)
    for case in cases:
        exp, first, reference = case.exp, case.first, case.reference
        if reference is None or not first or exp.metrics.get("stopped_at") is not None:
            continue  # the baseline is never stopped; a run stopped live has no rest to replay
        verdict = next((v for n in range(1, len(first) + 1) if (v := check(first[:n], reference, rule)) is not None),
                       None)
        if verdict is None:
            continue
        eval_seconds = case.runs[0]["metrics"].get("eval_seconds") or 0.0
        outcome.saved += ((1 - verdict.fraction) * budget + eval_seconds
                          + sum(r["wall_seconds"] or 0.0 for r in case.runs[1:]))
        outcome.stopped += 1
        outcome.keeps_stopped += exp.status == Status.KEEP
        margin = exp.metrics.get("margin")
        outcome.near_stopped += exp.status == Status.DISCARD and isinstance(margin, (int, float)) and margin > -1.0
    return outcome, total


def crossings(cases: list[Case], rule: AbortRule) -> list[str]:
    """Candidates behind the incumbent by more than the band at a checkpoint, and ahead at the end."""
    found = []
    for case in cases:
        exp = case.exp
        if not case.first or case.reference is None or exp.metric is None:
            continue
        best = case.reference.incumbent[0]
        for share in rule.checkpoints:
            mine, theirs = loss_at(case.first, share), loss_at(best, share)
            if mine is not None and theirs is not None and mine - theirs > 0.05 and exp.metric < exp.incumbent:
                found.append(f"#{exp.id} {exp.description[:50]}: {mine - theirs:+.3f} at {100 * share:.0f} %, "
                             f"ends {exp.metric - exp.incumbent:+.4f} in the metric")
                break
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, default=Path("runs/real-cpu"))
    args = parser.parse_args()
    ws = Workspace(args.workspace.resolve())
    budget = ws.task().budget.value
    with tempfile.TemporaryDirectory() as tmp:
        ledger = backfilled(ws, Path(tmp) / "ledger.db")
        experiments = ledger.experiments()
        keeps = sum(1 for e in experiments if e.status == Status.KEEP and e.incumbent is not None)
        print(f"{len(experiments)} experiments ({keeps} keeps after the baseline), "
              f"{sum(len(ledger.runs(e.id)) for e in experiments)} runs, budget {budget:g} s")
        print(f"{'rule':<22} {'saved':>7} {'stopped':>8} {'keeps stopped':>14} {'near misses stopped':>20}")
        cases = cases_of(ledger)
        for name, rule in VARIANTS.items() if experiments else ():
            outcome, total = replay(cases, rule, budget)
            print(f"{name:<22} {100 * outcome.saved / total:>6.1f}% {outcome.stopped:>8} "
                  f"{outcome.keeps_stopped:>14} {outcome.near_stopped:>20}")
        print("curves that cross (behind by more than 0.05 at a checkpoint, better in the metric at the end):")
        for line in crossings(cases, DEFAULT) or ["  none"]:
            print(f"  {line}")
        ledger.close()


if __name__ == "__main__":
    main()
