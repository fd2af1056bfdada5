"""Early abort, live: the same proposer with the same seed for the same wall time, abort off and on.

A workspace of the `cpu` preset (a shorter budget, so that each side holds enough experiments)
runs its baseline once (three runs: the band); two copies of it then run a random-proposer study
for the same wall time each, one after the other (never side by side on a small machine), with
`--early-abort off` and `--early-abort on`. It prints, side by side: experiments per hour, how
many were stopped and the run time that saved, and the best val_bpb reached.

    python benchmarks/early_abort_live.py [--minutes 10] [--budget 30] [--seed 3]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ledger, llm_workspace

from autoresearch.core.status import Status
from autoresearch.store.workspace import Workspace


def cli(ws: Path, *args: str) -> float:
    started = time.time()
    out = subprocess.run([sys.executable, "-m", "autoresearch", *args, "--plain"], cwd=ws, capture_output=True,
                         text=True)
    if out.returncode != 0:
        raise SystemExit(f"autoresearch {' '.join(args)} failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    return time.time() - started


def copy_of(ws: Path, name: str) -> Path:
    """The workspace after its baseline, copied: its own git, ledger and runs; slots made afresh."""
    target = ws.with_name(name)
    shutil.copytree(ws, target, symlinks=True)
    shutil.rmtree(Workspace(target).slots_dir, ignore_errors=True)  # worktrees of the original's repository
    subprocess.run(["git", "-C", str(target), "worktree", "prune"], check=True)
    return target


def side(ws: Path, abort: str, args) -> dict:
    wall = cli(ws, "run", "--provider", "random", "--seed", str(args.seed), "--hours", f"{args.minutes / 60:.4f}",
               "--early-abort", abort)
    with ledger(ws) as record:
        experiments = record.experiments()[1:]  # after the shared baseline
        best = record.incumbent(record.experiments()[0].branch)
    stopped = [e for e in experiments if e.metrics.get("stopped_at") is not None]
    saved = sum((1 - e.metrics["stopped_at"]) * args.budget for e in stopped)
    return {"experiments": len(experiments), "per_hour": len(experiments) / (wall / 3600), "wall": wall,
            "stopped": len(stopped), "saved": saved, "best": best.metric, "best_id": best.id,
            "keeps": sum(1 for e in experiments if e.status == Status.KEEP)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="wall time of each side")
    parser.add_argument("--budget", type=float, default=30.0, help="training seconds per experiment")
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = llm_workspace(Path(tmp), "base", budget=args.budget, tag="live")
        seconds = cli(base, "run", "--provider", "random", "--max-experiments", "1")
        with ledger(base) as record:
            baseline = record.experiments()[0]
        print(f"baseline: {baseline.metric:.6f} ({baseline.metrics.get('runs')} runs, sd "
              f"{baseline.metrics.get('sigma') or 0:.4f}, {seconds:.0f} s); each side {args.minutes:g} min, "
              f"budget {args.budget:g} s, random proposer seed {args.seed}")
        results = {abort: side(copy_of(base, f"abort-{abort}"), abort, args) for abort in ("off", "on")}
    print(f"{'early abort':<12} {'experiments':>11} {'per hour':>9} {'stopped':>8} {'saved s':>8} {'keeps':>6} "
          f"{'best val_bpb':>13}")
    for abort, r in results.items():
        print(f"{abort:<12} {r['experiments']:>11} {r['per_hour']:>9.1f} {r['stopped']:>8} {r['saved']:>8.0f} "
              f"{r['keeps']:>6} {r['best']:>13.6f}")
    off, on = results["off"], results["on"]
    print(f"ratio on/off: {on['per_hour'] / off['per_hour']:.2f}x experiments per hour; best "
          f"{on['best'] - off['best']:+.6f}")


if __name__ == "__main__":
    main()
