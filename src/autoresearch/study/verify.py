"""Verify: re-measure a study's claims on runs and data that did not select them.

1. The record: results.tsv, the ledger and git against each other; every experiment's metric
   against its runs, and every run's against the trusted evaluation's own lines in its log; every
   kept result's provenance against its commit, the baseline's and the data as it is now (hashed
   again, in full). Each forged or altered row is named.
2. The claim: the baseline and the best (or any two commits) run k times each, interleaved
   (A B A B ...) so that drift in the machine's load hits both alike, scored on validation and on
   the held-out test split that no selection ever saw; the gain with its 95 % interval beside the
   gain the study reported.
3. With `ablate`: the best with each kept change taken back out in turn, what each keep contributes.

A verification record goes into the ledger; report and dashboard show it beside the claims.
"""

from __future__ import annotations

import math
import secrets
import statistics
import time
from dataclasses import asdict, dataclass, field

from autoresearch.core.best import gain as gain_of
from autoresearch.core.budget import over_budget, warmup_bound
from autoresearch.core.errors import UserError
from autoresearch.core.events import EventBus, Note, RunStarted
from autoresearch.core.judge import t_quantile
from autoresearch.core.records import Experiment
from autoresearch.core.status import Status
from autoresearch.core.task import Task
from autoresearch.execute.base import Executor, Job
from autoresearch.store.ledger import Ledger
from autoresearch.store.workspace import Workspace
from autoresearch.study.audit import audit

Z_95 = 1.959964
FRESH_SEEDS = 2**30  # a verification's seeds lie in [2^30, 2^31): never a study's (run k has seed k)


class VerifyError(UserError):
    """A verification that cannot run as asked; one line."""


@dataclass(frozen=True)
class VerifyOptions:
    runs: int = 3  # of each side, interleaved
    baseline: str = ""  # a commit or ref; default: the branch's baseline
    best: str = ""  # default: the best kept commit
    ablate: bool = False
    records_only: bool = False


@dataclass
class Side:
    """One commit measured again: the baseline, the best, or the best without one kept change."""
    label: str
    commit: str
    val: list[float] = field(default_factory=list)
    test: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def test_metric(metric: str) -> str:
    """The name an evaluation prints its test-split score under: val_bpb -> test_bpb."""
    return "test_" + metric.removeprefix("val_")


def interval(a: list[float], b: list[float], direction: str) -> dict | None:
    """How much better `b` is than `a` (positive = better), with a 95 % interval (Welch's t)."""
    if len(a) < 2 or len(b) < 2:
        return None
    mean = gain_of(statistics.fmean(b), statistics.fmean(a), direction)
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    se = math.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1)) if se > 0 else 0
    half = t_quantile(Z_95, max(1, round(dof))) * se if se > 0 else 0.0
    return {"gain": mean, "low": mean - half, "high": mean + half, "runs": [len(a), len(b)]}


class Verifier:
    def __init__(self, workspace: Workspace, executor: Executor, options: VerifyOptions = VerifyOptions(),
                 bus: EventBus | None = None):
        self.ws, self.executor, self.options = Workspace.of(workspace), executor, options
        self.bus = bus or EventBus()
        self.task: Task = self.ws.task()

    def run(self) -> dict:
        with self.ws.lock(), self.ws.open_ledger() as ledger:
            branch = self.ws.branch()
            problems, checked = audit(self.ws, ledger, self.task, branch)
            for problem in problems:
                self.bus.publish(Note(f"record: {problem}"))
            result = {"branch": branch, "problems": problems, "checked": checked}
            if self.options.records_only:
                return result
            baseline, best = self._claim(ledger, branch)
            sides = [Side("baseline", baseline.commit), Side("best", best.commit)]
            if self.options.ablate:
                sides += self._ablations(ledger, branch, best)
            verification = ledger.start_verification(branch, baseline.commit, best.commit)
            runs = self._measure(ledger, verification, sides, branch)
            result.update(self._summary(baseline, best, sides, runs))
            result["verification"] = verification
            ledger.finish_verification(verification, result)
            return result

    def _claim(self, ledger: Ledger, branch: str) -> tuple[Experiment, Experiment]:
        """The experiments (or plain commits) to re-measure: by default the baseline and the best."""
        experiments = [e for e in ledger.experiments(branch) if e.status == Status.KEEP]
        if not experiments:
            raise VerifyError(f"nothing kept on {branch} yet: run the baseline and a study first")
        baseline = self._pick(experiments, self.options.baseline) if self.options.baseline else experiments[0]
        best = self._pick(experiments, self.options.best) if self.options.best else ledger.incumbent(branch)
        if baseline.commit == best.commit:
            raise VerifyError("the best is the baseline: there is no gain to verify (or pass --baseline/--best)")
        return baseline, best

    def _pick(self, kept: list[Experiment], ref: str) -> Experiment:
        commit = self.ws.resolve(ref)
        found = next((e for e in kept if e.commit == commit), None)
        return found or Experiment(0, "", "", commit, ref, Status.KEEP, None, None)  # any commit: nothing claimed

    def _ablations(self, ledger: Ledger, branch: str, best: Experiment) -> list[Side]:
        """The best with each kept change after the baseline taken out on its own."""
        kept = [e for e in ledger.experiments(branch) if e.status == Status.KEEP and e.incumbent is not None]
        sides = []
        for exp in kept:
            commit = self.ws.revert_onto(best.commit, (exp.parent, exp.commit), f"verify: the best without #{exp.id}")
            if commit is None:
                self.bus.publish(Note(f"#{exp.id} ({exp.description}) cannot be taken out alone: later changes build on it"))
                continue
            sides.append(Side(f"without #{exp.id}: {exp.description}"[:120], commit))
        return sides

    def _measure(self, ledger: Ledger, verification: int, sides: list[Side], branch: str) -> list[dict]:
        """k rounds, every side once a round, in the same order: A B A B ... Each round on a fresh
        seed that no study uses (study runs take seeds 1, 2, ...), the same for every side of it:
        the sides differ by their code, the rounds by their seed."""
        runs, bound = [], warmup_bound(self.task.budget.warmup_seconds, ledger.baseline_warmups(branch))
        first_seed = FRESH_SEEDS + secrets.randbelow(FRESH_SEEDS)
        for round_ in range(1, self.options.runs + 1):
            for side in sides:
                runs.append(self._run_once(verification, side, len(runs) + 1, (round_, first_seed + round_), bound))
        return runs

    def _run_once(self, verification: int, side: Side, number: int, round_seed: tuple[int, int],
                  bound: float | None) -> dict:
        round_, seed = round_seed
        log = self.ws.verify_dir(verification) / f"run{number:03d}.log"
        self.bus.publish(RunStarted(number, 1, f"verify {side.label} ({round_}/{self.options.runs})", side.commit))
        started = time.time()
        self.executor.submit(Job(number, 1, side.commit, log, score_test=True, seed=seed))
        result = None
        while result is None:
            result = self.executor.next_result(timeout=1.0)
        trial = result.trial
        failure = trial.failure or (over_budget(trial.budget, self.task.budget.kind, self.task.budget.value, bound)
                                    if trial.budget else "")
        val, test = (None, None) if failure else (trial.metric, trial.summary.get(test_metric(self.task.metric)))
        if failure:
            side.failures.append(failure)
        if val is not None:
            side.val.append(val)
        if isinstance(test, float):
            side.test.append(test)
        shown = f"{self.task.metric} {val:.6f}" + (f", test {test:.6f}" if isinstance(test, float) else "") \
            if val is not None else f"failed: {failure}"
        self.bus.publish(Note(f"verify run {number}: {side.label}, {shown}"))
        return {"number": number, "label": side.label, "commit": side.commit, "started_at": started, "seed": seed,
                "val": val, "test": test if isinstance(test, float) else None, "failure": failure,
                "log_path": self.ws.relative(log)}

    def _summary(self, baseline: Experiment, best: Experiment, sides: list[Side], runs: list[dict]) -> dict:
        direction = self.task.direction
        a, b = sides[0], sides[1]
        reported = (gain_of(best.metric, baseline.metric, direction)
                    if best.metric is not None and baseline.metric is not None else None)
        contributions = [{"label": s.label, "commit": s.commit, "val": interval(s.val, b.val, direction),
                          "test": interval(s.test, b.test, direction)} for s in sides[2:]]
        return {"metric": self.task.metric, "direction": direction, "runs_per_side": self.options.runs,
                "baseline": {"commit": a.commit, "id": baseline.id, "claimed": baseline.metric},
                "best": {"commit": b.commit, "id": best.id, "claimed": best.metric},
                "reported_gain": reported, "gain": {"val": interval(a.val, b.val, direction),
                                                    "test": interval(a.test, b.test, direction)},
                "sides": [asdict(s) for s in sides], "ablation": contributions, "runs": runs,
                "test_split": bool(a.test and b.test)}
