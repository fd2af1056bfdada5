"""Winner's curse, measured: the gain a study reports for its best against the best's true gain.

Simulated studies of the synthetic objective of benchmarks/scale.py (8 knobs, known true value
of every candidate: the bowl without its noise), run by the real study, judge, git and ledger on
virtual slots. Two judges on the same proposals and noise: the original's rule (one run, strictly
lower is kept) and ours (the noise rule: baseline repeats, pooled sigma, a t-corrected 2.5 sd
threshold, grey-zone reruns). For each: the gain it reports (baseline's measured value minus the
best's), the true gain (the same two commits without noise), how many keeps were true
improvements, and the gain a verification of the best would re-measure (5 fresh runs each).

    python benchmarks/winners_curse.py [--experiments 500] [--seeds 5] [--noise 0.01]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
from pathlib import Path

from common import ledger
from scale import SimulatedExecutor, objective, simulation_workspace

from autoresearch.propose.search import RandomProposer
from autoresearch.store import gitops
from autoresearch.study.study import StudyOptions, run_study

RULES = {"original": '\n[judge]\nrule = "strict"\nbaseline_runs = 1\nmax_reruns = 0\n', "ours": ""}


def true_value(ws: Path, commit: str) -> float:
    return objective(gitops.file_at(ws, commit, "train.py").decode(), None)


def one_study(root: Path, rule: str, seed: int, args) -> dict:
    ws = simulation_workspace(root, f"{rule}-{seed}", RULES[rule])
    executor = SimulatedExecutor(ws, args.slots, seed=seed, noise=args.noise)
    run_study(ws, [RandomProposer(seed=seed)], StudyOptions(max_experiments=args.experiments, max_idle_proposals=500,
                                                            seed=seed), executor=executor)
    with ledger(ws) as record:
        experiments = record.experiments()
        best = record.incumbent(experiments[0].branch)
    baseline = experiments[0]
    kept = [e for e in experiments if e.status == "keep" and e.incumbent is not None]
    truly_better, previous = 0, true_value(ws, baseline.commit)
    for exp in kept:
        value = true_value(ws, exp.commit)
        truly_better += value < previous
        previous = value
    rng = random.Random(seed + 99)
    remeasured = [statistics.fmean(true_value(ws, c) + rng.gauss(0, args.noise) for _ in range(5))
                  for c in (baseline.commit, best.commit)]
    return {"reported": baseline.metric - best.metric,
            "true": true_value(ws, baseline.commit) - true_value(ws, best.commit),
            "verified": remeasured[0] - remeasured[1], "keeps": len(kept), "real_keeps": truly_better,
            "runs": sum(e.metrics.get("runs") or 1 for e in experiments)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=500)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--noise", type=float, default=0.01, help="sd of one run (the cpu preset's is ~0.01-0.03)")
    parser.add_argument("--slots", type=int, default=8)
    args = parser.parse_args()
    print(f"{args.seeds} seeds x {args.experiments} experiments on {args.slots} virtual slots, noise sd {args.noise}; "
          "gains in metric units (positive = better than the baseline)")
    print(f"{'rule':<9} {'seed':>4} {'reported':>9} {'true':>9} {'verified':>9} {'inflation':>9} "
          f"{'keeps':>6} {'real':>5} {'runs':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        for rule in RULES:
            rows = [one_study(Path(tmp), rule, seed, args) for seed in range(args.seeds)]
            for seed, r in enumerate(rows):
                print(f"{rule:<9} {seed:>4} {r['reported']:>9.4f} {r['true']:>9.4f} {r['verified']:>9.4f} "
                      f"{r['reported'] - r['true']:>+9.4f} {r['keeps']:>6} {r['real_keeps']:>5} {r['runs']:>6}")
            mean = {k: statistics.fmean(r[k] for r in rows) for k in rows[0]}
            print(f"{rule:<9} {'mean':>4} {mean['reported']:>9.4f} {mean['true']:>9.4f} {mean['verified']:>9.4f} "
                  f"{mean['reported'] - mean['true']:>+9.4f} {mean['keeps']:>6.1f} {mean['real_keeps']:>5.1f} "
                  f"{mean['runs']:>6.0f}")


if __name__ == "__main__":
    main()
