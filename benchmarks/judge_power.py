"""The judge's power with seeds in the noise: which share of real gains of 0-3 seed-sd does it keep?

The real judge (core/judge.py) decides, rerun by rerun, on simulated runs whose spread is the
spread across seeds: a baseline of `baseline_runs` runs, then a candidate whose true gain is
k seed-sd (k = 0 is a null edit). Two states of knowledge side by side:
- "seeds": every run on its own seed, as the harness runs them now: the judge's sigma is the
  spread of the baseline's runs (early in a study, 2 degrees of freedom) or a sigma pooled over
  many repeats (late, --late-dof);
- "one seed": every repeat of a commit on the same seed, as before issue 23: repeats are
  identical, the judge measures no noise and keeps any gain above its floor, while each change's
  result still carries one draw of seed luck.

    python benchmarks/judge_power.py [--trials 4000] [--late-dof 30]
"""

from __future__ import annotations

import argparse
import random
import statistics

from autoresearch.core.judge import Evidence, judge, pooled_sigma
from autoresearch.core.settings import Budget, JudgeSettings
from autoresearch.core.status import Status
from autoresearch.core.task import Task

GAINS = (0.0, 1.0, 2.0, 3.0)  # true gains in seed-sd


def decide(task: Task, gain: float, rng: random.Random, seeds: bool, late_dof: int) -> tuple[bool, int]:
    """One candidate judged to the end: (kept, runs it took)."""
    baseline_seed_luck = [rng.gauss(0, 1) for _ in range(task.judge.baseline_runs)]
    baseline = baseline_seed_luck if seeds else [baseline_seed_luck[0]] * task.judge.baseline_runs
    candidate_luck = rng.gauss(0, 1)  # the first run's seed (the only one when repeats share it)
    runs = [candidate_luck - gain]  # lower is better
    while True:
        if seeds and late_dof:
            sigma, dof = statistics.fmean(rng.gauss(0, 1) ** 2 for _ in range(late_dof)) ** 0.5, late_dof
        else:
            sigma, dof = pooled_sigma([baseline, runs] if len(runs) > 1 else [baseline])
        decision = judge(task, Evidence(list(runs), baseline, sigma, dof))
        if decision.status != Status.RERUN:
            return decision.status == Status.KEEP, len(runs)
        runs.append((rng.gauss(0, 1) if seeds else candidate_luck) - gain)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4000)
    parser.add_argument("--late-dof", type=int, default=30, help="degrees of freedom of a sigma late in a study")
    args = parser.parse_args()
    task = Task("power", ["true"], "val_bpb", "minimize", Budget("seconds", 60, 180), ["train.py"], [], judge=JudgeSettings())
    print(f"judge: z {task.judge.z}, baseline runs {task.judge.baseline_runs}, max reruns {task.judge.max_reruns}; "
          f"{args.trials} candidates per cell; gains in seed-sd")
    print(f"{'knowledge':<34}" + "".join(f"{'kept at ' + format(g, 'g') + ' sd':>15}" for g in GAINS) + f"{'runs/cand':>11}")
    for label, seeds, late in (("one seed (before): no noise seen", False, 0), ("seeds, early (baseline sigma)", True, 0),
                               (f"seeds, late (sigma of {args.late_dof} dof)", True, args.late_dof)):
        rng = random.Random(7)
        shares, runs = [], []
        for gain in GAINS:
            outcomes = [decide(task, gain, rng, seeds, late) for _ in range(args.trials)]
            shares.append(sum(kept for kept, _ in outcomes) / args.trials)
            runs += [n for _, n in outcomes]
        print(f"{label:<34}" + "".join(f"{100 * s:>14.1f}%" for s in shares) + f"{statistics.fmean(runs):>11.2f}")


if __name__ == "__main__":
    main()
