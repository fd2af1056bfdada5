"""Where the wall time of one `cpu`-preset experiment goes, by the harness's own clock.

Through the command line, as a user would: a fresh workspace of the `cpu` preset (60 s budget,
trusted evaluation in its sandbox), then `autoresearch exp` for the baseline, which runs it
`--runs` times (the judge's baseline runs). Each run's parts come from the ledger, as the harness
recorded them (run/trial.py, core/budget.py `wall_parts`):

    startup   the training process began -> the frozen loader served its first batch
    training  -> train.py handed its model off (the untimed first step and warm-up included)
    export    -> the handoff was written (torch.export and the weights)
    exit      -> the training process and its children were gone
    checks    the harness's checks between the two processes (frozen files, the handoff's digest)
    evaluate  the trusted evaluation's process (start-up, loading, scoring `eval_seconds`, probes)

Goal (issue 15): the whole run at most the budget + 15 s.

    python benchmarks/wall_split.py [--runs 3] [--workspace DIR]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ledger, llm_workspace

from autoresearch.store.workspace import Workspace

PARTS = ("startup", "training", "export", "exit")


def split(metrics: dict) -> dict[str, float]:
    parts = {name: metrics.get(f"wall_{name}_seconds", float("nan")) for name in PARTS}
    evaluation = metrics.get("wall_evaluation_seconds", float("nan"))
    total = metrics.get("wall_total_seconds", float("nan"))
    return {**parts, "checks": total - sum(parts.values()) - evaluation, "evaluate": evaluation,
            "scoring": metrics.get("eval_seconds", float("nan")), "total": total}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of the baseline experiment")
    parser.add_argument("--workspace", type=Path, help="keep the workspace here (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.workspace or Path(tmp)
        ws = llm_workspace(root, "wall", preset="cpu", extra_toml=f"\n[judge]\nbaseline_runs = {args.runs}\n")
        started = time.time()
        out = subprocess.run([sys.executable, "-m", "autoresearch", "exp", "-m", "baseline"], cwd=ws,
                             capture_output=True, text=True)
        print(f"$ autoresearch exp -m baseline  ({time.time() - started:.0f} s, exit {out.returncode})")
        if out.returncode != 0:
            sys.exit(out.stdout[-2000:] + out.stderr[-2000:])
        with ledger(ws) as book:
            experiment = book.experiments()[-1]
            runs = [split(run["metrics"]) for run in book.runs(experiment.id)]
        report(runs, Workspace(ws).task().budget.value)


def report(runs: list[dict[str, float]], budget: float) -> None:
    names = [*PARTS, "checks", "evaluate", "scoring", "total"]
    print(f"{'run':>4} " + " ".join(f"{name:>9}" for name in names) + "   over the budget")
    for i, run in enumerate(runs, 1):
        print(f"{i:>4} " + " ".join(f"{run[name]:9.2f}" for name in names) + f"   +{run['total'] - budget:.1f} s")
    median = {name: statistics.median(run[name] for run in runs) for name in names}
    print("  md " + " ".join(f"{median[name]:9.2f}" for name in names) + f"   +{median['total'] - budget:.1f} s")
    print(f"goal: total <= budget + 15 s = {budget + 15:.0f} s: {'met' if median['total'] <= budget + 15 else 'NOT met'}"
          " (scoring is part of evaluate)")


if __name__ == "__main__":
    main()
