"""Harness and scheduler overhead before and after: an older commit against the working tree, side by side.

Runs benchmarks/harness_overhead.py (overhead per experiment: plain / bubblewrap / trusted) and part 1 of
benchmarks/scale.py (experiments per hour and scheduler overhead per experiment at 1, 2, 4, 8 slots, stub
task) for the commit --rev (checked out in a temporary git worktree, its own benchmark files and src/) and
for the working tree, each as a subprocess. The runs are interleaved (old, new, new, old, ...) so machine
load hits both alike; each figure is the median over the rounds. Prints the raw output of every run, then
`figure | before | after | after/before`.

    python benchmarks/before_after.py [--rev 7cc1f05] [--rounds 2] [--experiments 8]
                                      [--stub-seconds 1] [--scale-experiments 12]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
from pathlib import Path

from common import ROOT, tree_env, worktree_of

NUMBER = r"(-?[\d.]+)"


def run(tree: Path, script: str, *args: str) -> str:
    """One benchmark from `tree` with `tree`'s own src/ first on the path; returns its stdout."""
    done = subprocess.run([sys.executable, str(tree / "benchmarks" / script), *args], env=tree_env(tree), cwd=tree,
                          capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{script} in {tree} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


def parse_harness(out: str) -> dict[str, float]:
    """`name command overhead max cli` rows of harness_overhead.py, in ms."""
    figures = {}
    row = rf"^(plain|bubblewrap|trusted)\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s*$"
    for name, _, overhead, peak, cli in re.findall(row, out, re.M):
        figures |= {f"harness {name} overhead ms": float(overhead), f"harness {name} max ms": float(peak),
                    f"harness {name} CLI total ms": float(cli)}
    return figures


def parse_scale(out: str) -> dict[str, float]:
    """`slots wall exp/hour speed-up overhead` rows of scale.py's part 1."""
    figures = {}
    row = rf"^\s*(\d+)\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}x\s+{NUMBER} ms\s*$"
    for slots, _, rate, _, overhead in re.findall(row, out, re.M):
        figures |= {f"scale {slots} slots exp/hour": float(rate),
                    f"scale {slots} slots overhead/exp ms": float(overhead)}
    return figures


def measure(trees: dict[str, Path], args: argparse.Namespace) -> dict[str, dict[str, list[float]]]:
    """Every benchmark for both trees, alternating which goes first each round."""
    benches = [("harness_overhead.py", ["--experiments", str(args.experiments)], parse_harness),
               ("scale.py", ["--stub-seconds", str(args.stub_seconds), "--experiments", str(args.scale_experiments),
                             "--simulate", "0"], parse_scale)]
    figures: dict[str, dict[str, list[float]]] = {side: {} for side in trees}
    for round_ in range(args.rounds):
        for script, bench_args, parse in benches:
            sides = list(trees) if round_ % 2 == 0 else list(trees)[::-1]
            for side in sides:
                out = run(trees[side], script, *bench_args)
                print(f"--- round {round_ + 1}, {script}, {side} ({trees[side]})\n{out}", flush=True)
                for key, value in parse(out).items():
                    figures[side].setdefault(key, []).append(value)
    return figures


def table(figures: dict[str, dict[str, list[float]]], rounds: int) -> None:
    print(f"medians of {rounds} round(s)")
    keys = list(figures["after"])
    width = max(map(len, keys)) + 2
    print(f"{'figure':<{width}}{'before':>10}{'after':>10}{'after/before':>14}")
    for key in keys:
        before = statistics.median(figures["before"].get(key, [float("nan")]))
        after = statistics.median(figures["after"][key])
        ratio = after / before if before else float("nan")
        print(f"{key:<{width}}{before:>10.0f}{after:>10.0f}{ratio:>13.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", default="7cc1f05")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--experiments", type=int, default=8, help="harness_overhead.py experiments per configuration")
    parser.add_argument("--stub-seconds", type=float, default=1.0)
    parser.add_argument("--scale-experiments", type=int, default=12, help="scale.py part 1 experiments per slot count")
    args = parser.parse_args()
    with worktree_of(args.rev, "ar-before") as (rev, old):
        figures = measure({"before": old, "after": ROOT}, args)
    print(f"before = {rev}, after = working tree of {ROOT}")
    table(figures, args.rounds)


if __name__ == "__main__":
    main()
