"""Scaling out: experiments per hour against slots, and 1,000 experiments on 64 virtual slots.

Part 1 runs a stub task of fixed duration (a command that sleeps, then prints a metric) through the
real coordinator and local executor with 1, 2, 4 and 8 slots, and prints experiments per hour and the
scheduler's overhead per experiment (slot time not spent in the stub).

Part 2 simulates 1,000 experiments on 64 virtual slots: the real coordinator, proposer, judge, git
and ledger, but an executor that computes a synthetic objective of the candidate's knobs (a bowl
with its minimum away from the start, plus noise) and finishes runs after random virtual durations,
out of order. It prints the best-so-far against experiments, the replays, and checks the ledger.

    python benchmarks/scale.py [--stub-seconds 2] [--experiments 24] [--simulate 1000] [--virtual-slots 64]
"""

from __future__ import annotations

import argparse
import heapq
import math
import random
import re
import tempfile
import time
from pathlib import Path

from common import commit_all, ledger, stub_workspace

from autoresearch.core.task import load_task
from autoresearch.execute.base import Job, JobResult
from autoresearch.execute.local import LocalExecutor, plan_slots
from autoresearch.propose.search import RandomProposer
from autoresearch.run.process import RunResult
from autoresearch.run.trial import TrialResult
from autoresearch.store import gitops
from autoresearch.store.results_tsv import results_tsv_rows
from autoresearch.study.manual import run_experiment
from autoresearch.study.study import StudyOptions, run_study

NOISE = 0.003
OPTIMUM = [0.8, -1.2, 0.5, 1.5, -0.3, -2.0, 1.1, 0.0]  # of the 8 knobs; they all start at 0
KNOBS = "\n".join(f"X{i} = 0.0                     # knob: float -3.0..3.0" for i in range(len(OPTIMUM)))
OBJECTIVE = f'''
import random, re
source = open("train.py").read()
x = [float(re.search(rf"^X{{i}} = (\\S+)", source, re.M).group(1)) for i in range({len(OPTIMUM)})]
value = 2.0 + 0.02 * sum((a - b) ** 2 for a, b in zip(x, {OPTIMUM})) + random.gauss(0, {NOISE})
print("---")
print(f"val_bpb: {{value:.6f}}")
'''


def objective(source: str, rng: random.Random | None, noise: float = NOISE) -> float:
    """A bowl over the knobs X0..X7 with its minimum (2.0) away from the start (2.198), plus noise
    (none without `rng`: the true value)."""
    x = [float(re.search(rf"^X{i} = (\S+)", source, re.M).group(1)) for i in range(len(OPTIMUM))]
    return 2.0 + 0.02 * sum((a - b) ** 2 for a, b in zip(x, OPTIMUM)) + (rng.gauss(0, noise) if rng else 0.0)


def part1(root: Path, seconds: float, experiments: int) -> None:
    print(f"Part 1: stub task of {seconds:g} s, {experiments} experiments per configuration (after the baseline)")
    print(f"{'slots':>5} {'wall s':>8} {'exp/hour':>9} {'speed-up':>9} {'overhead/exp':>13}")
    base_rate = None
    for slots in (1, 2, 4, 8):
        command = f'command = ["/bin/sh", "-c", "sleep {seconds}; echo ---; echo val_bpb: 2.$(date +%N | cut -c1-5)"]'
        ws = stub_workspace(root, f"stub{slots}", command)
        run_experiment(ws, "baseline", allow_empty=True)  # 3 runs, outside the timing
        executor = LocalExecutor(ws, load_task(ws), plan_slots(slots, []))
        started = time.perf_counter()
        summary = run_study(ws, [RandomProposer(seed=slots)], StudyOptions(max_experiments=experiments),
                            executor=executor)
        wall = time.perf_counter() - started
        done = len(summary.experiments)
        runs = sum(r.runs for r in summary.experiments)
        rate = done / wall * 3600
        base_rate = base_rate or rate
        overhead = (wall * slots - runs * seconds) / runs
        print(f"{slots:>5} {wall:>8.1f} {rate:>9.0f} {rate / base_rate:>8.2f}x {overhead * 1000:>10.0f} ms")


class SimulatedExecutor:
    """Virtual slots: a run 'takes' a random virtual duration and returns a synthetic metric."""

    def __init__(self, ws: Path, slots: int, seed: int = 0, noise: float = NOISE):
        self.ws, self.capacity, self.noise = ws, slots, noise
        self.rng = random.Random(seed)
        self.clock = 0.0
        self.queue: list = []

    def submit(self, job: Job) -> None:
        source = gitops.file_at(self.ws, job.commit, "train.py").decode()
        value = objective(source, self.rng, self.noise)
        finish = self.clock + 300 * self.rng.lognormvariate(0, 0.3)  # about a 5-minute budget each
        heapq.heappush(self.queue, (finish, job.exp_id, job.run, job, value))

    def next_result(self, timeout=None) -> JobResult | None:
        if not self.queue:
            return None
        finish, _, _, job, value = heapq.heappop(self.queue)
        self.clock = finish
        job.log_path.parent.mkdir(parents=True, exist_ok=True)
        job.log_path.write_text(f"---\nval_bpb: {value:.6f}\n")
        run = RunResult(exit_code=0, wall_seconds=0.0, timed_out=False, log_path=job.log_path, log_truncated=False)
        return JobResult(job, TrialResult(run, {"val_bpb": value}, value), f"virtual{job.exp_id % self.capacity}")

    def close(self) -> None:
        pass


def simulation_workspace(root: Path, name: str, extra_toml: str = "") -> Path:
    """The synthetic task: train.py declares the 8 knobs, a frozen objective.py scores them."""
    ws = stub_workspace(root, name, 'command = ["{python}", "objective.py"]', extra_toml=extra_toml,
                        files={"objective.py": OBJECTIVE, "train.py": f"# a synthetic objective of these knobs\n{KNOBS}\n"})
    toml = ws / "autoresearch.toml"
    toml.write_text(toml.read_text().replace('frozen = ["prepare.py"', 'frozen = ["objective.py", "prepare.py"'))
    commit_all(ws, "objective is frozen")
    return ws


def part2(root: Path, experiments: int, slots: int) -> None:
    print(f"\nPart 2: {experiments} experiments on {slots} virtual slots, synthetic objective of 8 knobs "
          f"(start 2.198, optimum 2.000, noise sd {NOISE})")
    ws = simulation_workspace(root, "simulation")
    executor = SimulatedExecutor(ws, slots)
    started = time.perf_counter()
    summary = run_study(ws, [RandomProposer(seed=7)], StudyOptions(max_experiments=experiments, max_idle_proposals=200),
                        executor=executor)
    wall = time.perf_counter() - started
    with ledger(ws) as record:
        rows = record.experiments()
        best = record.incumbent(gitops.current_branch(ws))
    print(f"coordinator wall {wall:.0f} s for {len(rows)} experiments: {wall / len(rows) * 1000:.0f} ms each "
          f"(git commits, proposals, judging, ledger); stop: {summary.stop_reason}")
    print(f"{'experiments':>11} {'best so far':>12} {'kept':>5} {'replays':>8}")
    running_best, kept, replays = math.inf, 0, 0
    marks = {int(experiments * f) for f in (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)} | {1}
    for i, e in enumerate(rows, 1):
        if e.status == "keep":
            kept += 1
            running_best = min(running_best, e.metric)
        replays += e.description.startswith("replay of")
        if i in marks or i == len(rows):
            print(f"{i:>11} {running_best:>12.4f} {kept:>5} {replays:>8}")
    print(f"virtual time {executor.clock / 3600:.1f} h on {slots} slots (one slot: ~{len(rows) * 300 / 3600:.0f} h)")
    # consistency: every experiment closed, kept commits in one line, branch on the best, results.tsv agrees
    statuses = {e.status for e in rows}
    chain = [e for e in rows if e.status == "keep"]
    linear = all(b.parent == a.commit for a, b in zip(chain, chain[1:]))
    tsv = (ws / "results.tsv").read_text().splitlines()
    ok = (statuses <= {"keep", "discard", "crash"} and linear and gitops.head(ws) == best.commit
          and tsv == results_tsv_rows(rows, load_task(ws).metric))
    print(f"ledger consistent: {ok} (statuses {sorted(map(str, statuses))}, {len(chain)} kept commits in one line, "
          f"branch on the best, results.tsv {len(tsv) - 1} rows = ledger)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stub-seconds", type=float, default=2.0)
    parser.add_argument("--experiments", type=int, default=24)
    parser.add_argument("--simulate", type=int, default=1000)
    parser.add_argument("--virtual-slots", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.experiments:
            part1(Path(tmp), args.stub_seconds, args.experiments)
        if args.simulate:
            part2(Path(tmp), args.simulate, args.virtual_slots)


if __name__ == "__main__":
    main()
