"""Early abort over many seeds of the noise: how often the rule stops curves it must stop and curves
it must leave alone, for the working tree and an older commit side by side.

Synthetic curves (50 points, noise sd 0.01 a point, three baseline runs for the band), each case on
`--seeds` seeds: hopeless ones (a constant gap of 1.0 or 0.3), one trailing by 1.5 on a straight
curve as a study's test prints it (80 points, checkpoints 30/50 %), one closing its gap by 0.3 a
tenth of the budget, one crossing late (a later warm-down, better at the end), one within the band.

    python benchmarks/early_abort_seeds.py [--against HEAD~1] [--seeds 300]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import subprocess
import sys

from common import tree_env, worktree_of

MEASURE = r'''
import json, math, random, sys
from autoresearch.core.abort import AbortRule, Reference, check
from autoresearch.core.curve import Point

seeds = int(sys.argv[1])
RULE = AbortRule(checkpoints=(0.3, 0.5, 0.7), band_sd=3.0, headroom=1.0, window=0.1, min_repeats=3)
STUDY_RULE = AbortRule(checkpoints=(0.3, 0.5), headroom=0.5)  # [early_abort] of the study's test

def baseline(p): return 3.0 + math.exp(-6 * p) - 0.2 * p
def straight(p): return 3.0 - p

def curve(loss_of, seed, points):
    rng = random.Random(seed)
    return [Point(i, i / points, loss_of(i / points) + rng.gauss(0, 0.01), 1000.0) for i in range(1, points + 1)]

def first_stop(points, ref, rule):
    return next((v for v in (check(points[:n], ref, rule) for n in range(1, len(points) + 1)) if v), None)

def stops(loss_of, base, rule, points):
    found = []
    for seed in range(seeds):
        runs = [curve(base, 100 * seed + k, points) for k in range(3)]
        found.append(first_stop(curve(loss_of, 10_000 + seed, points), Reference(1, runs, [runs]), rule))
    return [v.fraction for v in found if v]

CASES = {
    "hopeless +1.0": (lambda p: baseline(p) + 1.0, baseline, RULE, 50),
    "hopeless +0.3": (lambda p: baseline(p) + 0.3, baseline, RULE, 50),
    "straight +1.5 (study test)": (lambda p: straight(p) + 1.5, straight, STUDY_RULE, 80),
    "closing 0.3 a tenth": (lambda p: baseline(p) + max(0.0, 1.6 - 3.0 * p), baseline, RULE, 50),
    "crossing late": (lambda p: baseline(p) + (0.14 if p < 0.6 else 0.14 - 0.24 * (p - 0.6) / 0.4), baseline, RULE, 50),
    "within the band +0.02": (lambda p: baseline(p) + 0.02, baseline, RULE, 50),
}
print(json.dumps({name: stops(*case) for name, case in CASES.items()}))
'''


def measure(env: dict | None, seeds: int) -> dict[str, list[float]]:
    out = subprocess.run([sys.executable, "-c", MEASURE, str(seeds)], capture_output=True, text=True, env=env,
                         check=True)
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", default="HEAD~1", help="the older commit to compare with")
    parser.add_argument("--seeds", type=int, default=300)
    args = parser.parse_args()
    with worktree_of(args.against, "abort-seeds") as (short, tree):
        before = measure(tree_env(tree), args.seeds)
    after = measure(None, args.seeds)
    print(f"| case ({args.seeds} seeds) | stopped, {short} | stopped, working tree | at 30 %, {short} | at 30 %, now |")
    print("| --- | --- | --- | --- | --- |")
    for name in after:
        old, new = before[name], after[name]
        print(f"| {name} | {len(old)} | {len(new)} | {sum(math.isclose(f, 0.3) for f in old)} | "
              f"{sum(math.isclose(f, 0.3) for f in new)} |")


if __name__ == "__main__":
    random.seed(0)
    main()
