"""A real study of the cpu preset, then its verification: the figures that need real runs.

Through the command line, as a user would: a workspace of the `cpu` preset (60 s budget,
Shakespeare), a first part with the random proposer alone, a second with random and TPE sharing
the asks (so that some curves cross), then `autoresearch verify`. It prints how many runs the
harness's clock checked and how many it marked over budget, the study's reported gain against
the re-measured one with its interval, validation against test, and keeps the workspace (its
run logs hold every training curve, for benchmarks/early_abort.py).

    python benchmarks/real_study.py [--workspace runs/real-cpu] [--random 16] [--more 17] [--verify-runs 4]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from autoresearch.store.workspace import Workspace


def cli(*args: str, cwd: Path | None = None) -> str:
    started = time.time()
    out = subprocess.run([sys.executable, "-m", "autoresearch", *args], cwd=cwd, capture_output=True, text=True)
    print(f"$ autoresearch {' '.join(args)}  ({time.time() - started:.0f} s, exit {out.returncode})", flush=True)
    if out.returncode not in (0, 1):
        print(out.stdout[-3000:], out.stderr[-3000:])
        raise SystemExit(out.returncode)
    return out.stdout


def budget_checks(ws: Workspace) -> tuple[int, list[str]]:
    """How many runs of the study the harness's clock measured, and the reasons of those over budget."""
    with ws.open_ledger(readonly=True) as ledger:
        runs = [r for e in ledger.experiments() for r in ledger.runs(e.id)]
        over = [e.reason for e in ledger.experiments() if e.metrics.get("over_budget")]
    return sum(1 for r in runs if r["metrics"].get("harness_training_seconds") is not None), over


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, default=Path("runs/real-cpu"))
    parser.add_argument("--random", type=int, default=16, help="experiments of the first part (the baseline included)")
    parser.add_argument("--more", type=int, default=17, help="experiments of the second part (random and TPE)")
    parser.add_argument("--verify-runs", type=int, default=4)
    args = parser.parse_args()
    root = args.workspace.resolve()
    if not (root / "autoresearch.toml").exists():
        cli("init", str(root), "--preset", "cpu", "--tag", "real")
        cli("prepare", cwd=root)
        print(cli("run", "--provider", "random", "--seed", "1", "--plain", "--max-experiments", str(args.random),
                  cwd=root).splitlines()[-1])
        print(cli("run", "--provider", "random", "--provider", "tpe", "--seed", "2", "--plain", "--max-experiments",
                  str(args.more), cwd=root).splitlines()[-1])
    checked, over = budget_checks(Workspace(root))
    print(f"budget: {checked} runs measured by the harness's clock, {len(over)} over budget")
    for reason in over:
        print(f"  {reason}")
    result = json.loads(cli("verify", "--runs", str(args.verify_runs), "--json", cwd=root))
    (root / "verify.json").write_text(json.dumps(result, indent=2))
    from autoresearch.interfaces.verification import render
    print("\n".join(render(result)))


if __name__ == "__main__":
    main()
