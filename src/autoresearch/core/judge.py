"""Judge: keep, discard or rerun a candidate against the incumbent, knowing the noise.

Rule `noise` (the default): the baseline runs several times (3), each on its own seed (the
harness gives run k of every commit seed k), so the spread across seeds is known, and every
later rerun refines it (pooled standard deviation of repeated runs of the same
code; a candidate whose runs spread over 4 times as far as all the others' is unstable: it is left
out of that noise and judged by its own spread instead). A candidate is kept only when its gain beats z times the standard deviation of the
difference of the two means (and a floor); an apparent gain below that is the grey zone, where
the candidate runs again (at most `max_reruns` times) before the decision. Changes that only
touch a seed or comments are never kept for their own sake.

Rule `strict` is the original's: kept if strictly better after one run.
"""

from __future__ import annotations

import math
import re
import statistics
from dataclasses import dataclass, field

from autoresearch.core.best import gain as gain_of
from autoresearch.core.status import Status
from autoresearch.core.task import Task

SEED_LINE = re.compile(r"^\s*(#.*|[A-Z_]*SEED[A-Z_]*\s*=.*|.*\b(manual_seed|random\.seed|np\.random\.seed|set_seed)\(.*)?$")
COMMENT_LINE = re.compile(r"^\s*(#.*)?$")
UNSTABLE = 4.0  # a spread this many times the pooled one is not noise: one candidate is unstable
MIN_REFERENCE_DOF = 3  # degrees of freedom the other runs need before a group is called unstable


@dataclass(frozen=True)
class Decision:
    status: Status  # keep | discard | crash | rerun
    reason: str
    margin: float | None = None  # gain in units of the difference's standard deviation


@dataclass
class Evidence:
    """What the judge knows about one decision."""
    candidate: list[float]  # valid metric of each run of the candidate
    incumbent: list[float] = field(default_factory=list)  # of the incumbent; empty for the baseline
    sigma: float | None = None  # run-to-run standard deviation, None while unknown
    dof: int = 0  # degrees of freedom of that estimate (0: treat sigma as known)
    change: str = ""  # "", "seed-only" or "comments-only"
    memory_gb: float = 0.0
    lines_added: int = 0
    lines_removed: int = 0


def judge(task: Task, evidence: Evidence, failure: str = "") -> Decision:
    settings = task.judge
    if failure or not evidence.candidate:
        return Decision(Status.CRASH, failure or f"no valid {task.metric} in the summary block")
    mean = statistics.fmean(evidence.candidate)
    n = len(evidence.candidate)
    if not evidence.incumbent:  # the baseline: measure the noise first
        if settings.rule == "noise" and n < settings.baseline_runs:
            return Decision(Status.RERUN, f"baseline run {n} of {settings.baseline_runs}")
        spread = f", runs {' '.join(f'{x:.6f}' for x in evidence.candidate)}" if n > 1 else ""
        return Decision(Status.KEEP, f"baseline{spread}")
    if settings.max_memory_gb and evidence.memory_gb > settings.max_memory_gb:
        return Decision(Status.DISCARD, f"peak memory {evidence.memory_gb:.1f} GB over the {settings.max_memory_gb:g} GB cap")
    incumbent = statistics.fmean(evidence.incumbent)
    gain = gain_of(mean, incumbent, task.direction)
    if settings.rule == "strict":
        if gain > 0:
            return Decision(Status.KEEP, f"{task.metric} {incumbent:.6f} -> {mean:.6f} ({mean - incumbent:+.6f})")
        return Decision(Status.DISCARD, f"not better than {incumbent:.6f} ({mean - incumbent:+.6f})")

    sigma = evidence.sigma
    own, theirs = (candidate_sigma(runs, sigma or 0.0) for runs in (evidence.candidate, evidence.incumbent))
    sd_diff = math.sqrt(own**2 / n + theirs**2 / len(evidence.incumbent)) if sigma else None
    margin = gain / sd_diff if sd_diff else None
    unstable = f", its own {own:.6f}: unstable" if sigma and own != sigma else ""
    dof = n - 1 if unstable else evidence.dof  # its own spread is known from its own few runs only
    where = (f"gain {gain:+.6f} = {margin:+.1f} sd (sigma {sigma:.6f}{unstable}, {n} vs {len(evidence.incumbent)} runs)"
             if margin is not None else f"gain {gain:+.6f} ({_no_noise(sigma)})")
    if evidence.change and settings.never_keep_seed_only:
        return Decision(Status.DISCARD, f"changes only {evidence.change.replace('-only', 's')}: never kept for its own sake; {where}", margin)
    z = t_quantile(settings.z, dof)  # a sigma from few runs is itself uncertain: demand more
    threshold = max(z * sd_diff if sd_diff else 0.0, settings.min_delta)
    if gain > threshold:
        # no margin in sd without a measured sd: then only the floor (min_delta) stood in the way
        beaten = f"{z:.2g} sd" if sd_diff else f"the floor {settings.min_delta:g}"
        return Decision(Status.KEEP, f"{where} > {beaten}", margin)
    simpler = evidence.lines_removed > evidence.lines_added
    if settings.prefer_simpler and simpler and sd_diff and gain >= -sd_diff:  # the original's simplicity criterion
        fewer = evidence.lines_removed - evidence.lines_added
        return Decision(Status.KEEP, f"as good within noise and {fewer} lines shorter; {where}", margin)
    if gain > 0:
        if n <= settings.max_reruns and (margin is None or margin >= settings.grey_zone):  # measure again
            return Decision(Status.RERUN, f"grey zone: {where}", margin)
        return Decision(Status.DISCARD, f"within noise after {n} run{'s' * (n > 1)}: {where}", margin)
    return Decision(Status.DISCARD, f"not better: {where}", margin)


def _no_noise(sigma: float | None) -> str:
    if sigma is None:
        return "no run-to-run noise measured yet"
    return "runs on different seeds gave identical results: no noise"


def t_quantile(z: float, dof: int) -> float:
    """Student's t quantile at the normal quantile z (Cornish-Fisher); z itself when dof is 0 (sigma known)."""
    if dof <= 0:
        return z
    return z + (z**3 + z) / (4 * dof) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * dof**2)


def pooled_sigma(groups: list[list[float]]) -> tuple[float | None, int]:
    """Pooled standard deviation of repeated runs (each group: runs of one code), and its degrees of
    freedom. A group whose spread is over UNSTABLE times that of all the others together (when they
    have at least MIN_REFERENCE_DOF degrees of freedom) is an unstable candidate, not run-to-run
    noise: it is left out, so that one such candidate does not make every later gain look like noise
    (its own decision weighs its own spread: see `judge`)."""
    groups = sorted((_squares(runs) for runs in groups if len(runs) >= 2), key=lambda g: g[0] / g[1], reverse=True)
    while len(groups) > 1:
        squares, dof = groups[0]
        rest_squares, rest_dof = sum(g[0] for g in groups[1:]), sum(g[1] for g in groups[1:])
        steady = rest_dof < MIN_REFERENCE_DOF or rest_squares == 0  # no reference to call it unstable against
        if steady or squares / dof <= UNSTABLE**2 * rest_squares / rest_dof:
            break
        groups.pop(0)
    squares, dof = sum(g[0] for g in groups), sum(g[1] for g in groups)
    if dof == 0:
        return None, 0
    return math.sqrt(squares / dof), dof


def _squares(runs: list[float]) -> tuple[float, int]:
    mean = statistics.fmean(runs)
    return sum((x - mean) ** 2 for x in runs), len(runs) - 1


def candidate_sigma(runs: list[float], sigma: float) -> float:
    """The spread to judge a candidate by: the pooled one, or its own where that marks it unstable."""
    own = statistics.stdev(runs) if len(runs) >= 2 else 0.0
    return own if own > UNSTABLE * sigma else sigma


def classify_change(diff: str) -> str:
    """"seed-only" or "comments-only" when the diff's changed lines touch nothing else, else ""."""
    changed = [line[1:] for line in diff.splitlines()
               if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    if not changed:
        return ""
    if all(COMMENT_LINE.match(line) for line in changed):
        return "comments-only"
    if all(SEED_LINE.match(line) for line in changed):
        return "seed-only"
    return ""


def change_size(diff: str) -> tuple[int, int]:
    """(lines added, lines removed) of code, blank lines and comments not counted."""
    added = removed = 0
    for line in diff.splitlines():
        if line.startswith(("+++", "---")) or COMMENT_LINE.match(line[1:] if line[:1] in "+-" else "#"):
            continue
        added += line.startswith("+")
        removed += line.startswith("-")
    return added, removed
