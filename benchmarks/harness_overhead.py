"""Harness overhead per experiment with a trivial training command.

Everything `autoresearch exp` does around the command (lock, git status/commit/refs/reset,
ledger writes, summary parsing, results.tsv) is timed in-process, and the command's own wall time
is subtracted. Goal: at most 1 s per experiment.

    python benchmarks/harness_overhead.py [--experiments 20]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from autoresearch.experiment import run_experiment
from autoresearch.workspace import init_workspace

TRIVIAL = 'command = ["/bin/sh", "-c", "echo ---; echo val_bpb: $(date +%N | cut -c1-3)"]'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ws = init_workspace(Path(tmp) / "ws", template="tiny", tag="bench")
        toml = ws / "autoresearch.toml"
        toml.write_text(toml.read_text().replace('command = ["{python}", "train.py"]', TRIVIAL))
        subprocess.run(["git", "-C", str(ws), "commit", "-qam", "trivial command"], check=True)
        totals, commands = [], []
        for i in range(args.experiments):
            with open(ws / "train.py", "a") as f:
                f.write(f"# change {i}\n")  # every experiment commits a real change
            started = time.perf_counter()
            result = run_experiment(ws, f"change {i}")
            totals.append(time.perf_counter() - started)
            commands.append(result.wall_seconds)
        overheads = [t - c for t, c in zip(totals, commands)]
        started = time.perf_counter()
        with open(ws / "train.py", "a") as f:
            f.write("# cli\n")
        subprocess.run([sys.executable, "-m", "autoresearch.cli", "exp", "-q", "-m", "cli"], cwd=ws, check=True,
                       capture_output=True)
        cli_total = time.perf_counter() - started
        rows = (ws / "results.tsv").read_text().count("\n") - 1
    print(f"experiments:                 {args.experiments} (results.tsv rows: {rows})")
    print(f"command wall, median:        {statistics.median(commands) * 1000:.0f} ms")
    print(f"harness overhead, median:    {statistics.median(overheads) * 1000:.0f} ms")
    print(f"harness overhead, max:       {max(overheads) * 1000:.0f} ms")
    print(f"`autoresearch exp` CLI total: {cli_total * 1000:.0f} ms (Python start-up and imports included)")
    print(f"goal <= 1000 ms:             {'met' if statistics.median(overheads) <= 1.0 else 'MISSED'}")


if __name__ == "__main__":
    main()
