"""Harness overhead per experiment, measured side by side for the ways a run can be isolated.

Everything `autoresearch exp` does around the training command (lock, git status/commit/refs/reset,
sandbox, watchdog, frozen-file and ref checks, provenance, ledger writes, results.tsv) is timed
in-process, and the training command's own wall time is subtracted. Configurations:

  plain         a trivial command that prints its own metric, no sandbox
  bubblewrap    the same command in the bubblewrap sandbox
  trusted       the tiny task's real train.py in the sandbox, its model handed off and scored by the
                trusted evaluation in a second sandbox (the evaluation counts as overhead here)

Goal: at most 1 s per experiment.

    python benchmarks/harness_overhead.py [--experiments 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ledger, stub_workspace

from autoresearch.run.sandbox import find_sandbox
from autoresearch.study.manual import run_experiment

TRIVIAL = 'command = ["/bin/sh", "-c", "echo ---; echo val_bpb: $(date +%N | cut -c1-3)"]'
CLI_RUNS = 5


def training_seconds(ws: Path, exp_id: int) -> float:
    """Wall time of the training command alone (the runs table), without checks or evaluation."""
    with ledger(ws) as record:
        return record.db.execute("SELECT SUM(wall_seconds) FROM runs WHERE experiment_id = ?", (exp_id,)).fetchone()[0]


def measure(root: Path, name: str, experiments: int) -> dict:
    ws = stub_workspace(root, name, None if name == "trusted" else TRIVIAL,
                        sandbox="none" if name == "plain" else "bwrap", extra_toml="\n[judge]\nbaseline_runs = 1\n")
    totals, commands = [], []
    for i in range(experiments):
        with open(ws / "train.py", "a") as f:
            f.write(f"# change {i}\n")  # every experiment commits a real change
        started = time.perf_counter()
        result = run_experiment(ws, f"change {i}")
        assert result.status != "crash", result.reason
        totals.append(time.perf_counter() - started)
        commands.append(training_seconds(ws, result.id))
    overheads = [t - c for t, c in zip(totals, commands)]
    return {"command": statistics.median(commands), "overhead": statistics.median(overheads),
            "max": max(overheads), "cli": statistics.median(cli_seconds(ws) for _ in range(CLI_RUNS))}


def cli_seconds(ws: Path) -> float:
    """One whole `autoresearch exp` command: interpreter start-up and imports included, with the
    bytecode cache a normal install has (some environments switch it off for every process)."""
    with open(ws / "train.py", "a") as f:
        f.write(f"# cli {time.time()}\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "autoresearch", "exp", "-q", "-m", "cli"], cwd=ws, check=True,
                   capture_output=True, env=env)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=20)
    args = parser.parse_args()
    names = ["plain", "bubblewrap", "trusted"] if find_sandbox("auto").isolates else ["plain"]
    with tempfile.TemporaryDirectory() as tmp:
        rows = {name: measure(Path(tmp), name, args.experiments) for name in names}
    print(f"{args.experiments} experiments each; medians in ms")
    print(f"{'configuration':<14}{'command':>10}{'overhead':>10}{'max':>8}{'CLI total':>11}  (CLI: median of {CLI_RUNS})")
    for name, row in rows.items():
        print(f"{name:<14}{row['command'] * 1000:>10.0f}{row['overhead'] * 1000:>10.0f}{row['max'] * 1000:>8.0f}"
              f"{row['cli'] * 1000:>11.0f}")
    worst = max(row["overhead"] for row in rows.values())
    print(f"goal <= 1000 ms: {'met' if worst <= 1.0 else 'MISSED'} (worst median {worst * 1000:.0f} ms)")


if __name__ == "__main__":
    main()
