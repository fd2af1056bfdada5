"""The budget as the harness measures it, and when a run is over it.

`measure` turns the harness's stamped timeline of a run (run/clock.py) into training seconds:
from the first batch the frozen loader served to the handoff, less the warm-up (the leading
batches that took far longer than the run's steady pace: compiling, allocating). A run that
never used the frozen loader gets the harness's wall time less a start-up allowance; one that
never handed off trains until its process ends.

`over_budget` says why a run is over budget, or "". The allowance is what an honest run can
overshoot and nothing more, judged on the run's budget checks (the `step` stamps: the template
checks once before its first step and once after each, and stops once the end is nearer than
half a step), so that it does not grow with the machine's load:

- The clock's tolerance, TOLERANCE_S + TOLERANCE_SHARE of the budget (0.25 s + 1 %): what
  separates the harness's clock from the run's. The run times its steps; between them it prints
  and asks for its progress, the channel carries the stamps a little late, and the handoff comes
  just after the last check. Measured: 0.05-0.2 s in a 10 s run, alone or under load.
- The warm-up is not counted, up to its bound (twice the baseline's, at least 5 s, or
  `[budget] warmup_seconds`), and neither is a first step that began with warm-up, up to one
  median step: the template does not time a compiling first step; the warm-up takes the compile
  out of it, and what is left is one step. (An eager first step is timed, and counts.)
- A run whose training, less those, is within the budget and the tolerance is within it. Past
  that, it must have stopped the way an honest run stops. (1) When it last decided to go on (its
  last check before the final one) its training plus half the step it had just done (at most
  STEP_CAP median steps) was within the budget and the tolerance: a run that stretches its clock
  or its progress goes on past that point, however slow its steps are. (2) Its final step, from
  that check to the handoff, served no more tokens than the step before it (at most STEP_CAP
  median steps): work moved into the final step shows in the loader's count, whatever the load.
  (3) It took at most FINAL_STEPS times the run's longest earlier step (or median step), plus
  the tolerance. Loose on purpose: under load the final step is often the run's longest (a slow
  step is the one that brings the end within half a step, so the rule picks the slow ones).
- A `tokens` budget: the tokens served, at most the budget, plus half a step (the step before
  the final one, at most STEP_CAP median steps) and one batch (the loader serves the next batch
  at the end of each micro-step, one more than the run trains on).

`past_any_allowance` is the same verdict taken while a run still trains, as if it handed off
now (its last check its final one, or the one before a final check now), with a margin of
max(LIVE_MARGIN_S, LIVE_MARGIN_SHARE): once it fails both ways, the harness stops the run there
rather than at its timeout. Every warm-up so far is left out: no honest run is stopped.
"""

from __future__ import annotations

import bisect
import itertools
import statistics
from dataclasses import dataclass, replace

OVER_BUDGET = "over budget"  # how every reason of this kind begins (the trial's and this module's)
SLOW = 4.0  # a batch interval this many times the steady one is warm-up, not training
TOLERANCE_S, TOLERANCE_SHARE = 0.25, 0.01  # the harness's clock against the run's
STEP_CAP = 2.0  # the step before the final one counts at most this many median steps
FINAL_STEPS = 4.0  # the final step may take this many of the longest earlier step (or of the median)
WARMUP_FLOOR_S = 5.0
LIVE_MARGIN_S, LIVE_MARGIN_SHARE = 1.0, 0.05  # beyond the verdict's allowance before a training run is stopped


@dataclass(frozen=True)
class Ending:
    """How a run ended, by its budget checks: the last one at which it went on, and its final step."""
    went_on: float  # seconds from the first batch to the check before the final one
    previous: float  # the step it had just done there (the first less the warm-up), 0 if none
    previous_tokens: int  # served in that step
    final: float  # from that check to the end of training: the final step, its check, the handoff
    final_tokens: int  # served in it
    longest: float  # the longest step before the final one (the first less the warm-up)


@dataclass(frozen=True)
class BudgetReading:
    """The harness's figures of one run (seconds of its own clock, tokens the frozen loader served)."""
    source: str  # "loader": from the batches it served; "wall": the run did not use the frozen loader
    training_seconds: float  # first batch (or start + allowance) -> handoff (or the end of the process)
    warmup_seconds: float  # the leading slow batches, not counted as training (up to the bound)
    step_seconds: float  # the median step between the first and the final one, 0 without one
    first_step_seconds: float  # from the first check to the second, less the warm-up
    tokens: int  # served before the handoff
    step_tokens: int  # the median tokens of those steps
    batch_tokens: int  # the median batch the loader served
    batches_after_handoff: int
    handed_off: bool
    ending: Ending | None = None  # None with fewer than two budget checks

    def as_metrics(self) -> dict:
        ending = {} if self.ending is None else {"harness_went_on_seconds": round(self.ending.went_on, 2),
                                                 "harness_final_step_seconds": round(self.ending.final, 2)}
        return {"harness_training_seconds": round(self.training_seconds, 2),
                "harness_warmup_seconds": round(self.warmup_seconds, 2),
                "harness_step_seconds": round(self.step_seconds, 3), "harness_tokens": self.tokens,
                "harness_clock": self.source, **ending}

    def untimed_first_step(self) -> float:
        """The part of the first step left out when it began with warm-up: the template does not time a
        compiling first step; the warm-up takes the compile out, the rest counts beyond one median step."""
        return min(self.first_step_seconds, self.step_seconds) if self.warmup_seconds > 0 else 0.0

    def half_step(self, previous: float, median: float) -> float:
        """Half the step before the final one, counted at most STEP_CAP median steps (when there are any)."""
        return (min(previous, STEP_CAP * median) if median else previous) / 2


def tolerance(value: float) -> float:
    """The harness's clock against the run's, for a budget of `value` seconds."""
    return TOLERANCE_S + TOLERANCE_SHARE * value


def measure(timeline, startup_seconds: float) -> BudgetReading:
    """The budget figures of a run from what the harness stamped (a clock.Timeline)."""
    end = timeline.handoff if timeline.handoff is not None else timeline.ended
    batches = [t for t, _ in timeline.batches]
    if not batches:
        wall = max(0.0, end - timeline.started - startup_seconds)
        return BudgetReading("wall", wall, 0.0, 0.0, 0.0, 0, 0, 0, 0, timeline.handoff is not None)
    before = [(t, n) for t, n in timeline.batches if t <= end]
    warmup, _ = _warmup(batches)
    checks = [t for t in timeline.steps if batches[0] <= t <= end]
    served = _Served(before)
    gaps = [b - a for a, b in zip(checks, checks[1:])]
    tokens = [served.between(a, b) for a, b in zip(checks, checks[1:])]
    # gap 0 is the first step: left out of the pace it is judged by (a run of one long step would
    # otherwise allow itself), and so is the final one (it is what the pace judges)
    first = max(0.0, gaps[0] - warmup) if gaps else 0.0
    pace = statistics.median(gaps[1:-1]) if len(gaps) > 2 else 0.0
    step_tokens = int(statistics.median(tokens[1:-1])) if len(tokens) > 2 else 0
    ending = None
    if gaps:
        steps = [first, *gaps[1:]]
        ending = Ending(went_on=checks[-2] - batches[0], previous=steps[-2] if len(steps) > 1 else 0.0,
                        previous_tokens=tokens[-2] if len(tokens) > 1 else 0, final=end - checks[-2],
                        final_tokens=served.since(checks[-2]), longest=max(steps[:-1], default=0.0))
    return BudgetReading("loader", end - batches[0], warmup, pace, first, served.total, step_tokens,
                         int(statistics.median(n for _, n in before)) if before else 0,
                         len(timeline.batches) - len(before), timeline.handoff is not None, ending)


class _Served:
    """Tokens the loader served, by the harness's clock: cumulative, so each interval is two look-ups."""

    def __init__(self, batches: list[tuple[float, int]]):
        self.times = [t for t, _ in batches]
        self.sums = [0, *itertools.accumulate(n for _, n in batches)]
        self.total = self.sums[-1]

    def upto(self, t: float) -> int:
        return self.sums[bisect.bisect_right(self.times, t)]

    def between(self, a: float, b: float) -> int:
        return self.upto(b) - self.upto(a)

    def since(self, a: float) -> int:
        return self.total - self.upto(a)


def wall_parts(timeline) -> dict[str, float]:
    """Where a training process's wall time went, by the harness's clock: start-up (the process
    began -> the first batch served), training (-> the handoff), export (-> handed off) and exit
    (-> the process and its children gone). A part whose ends the run never reached is left out."""
    marks = [timeline.started, timeline.batches[0][0] if timeline.batches else None, timeline.handoff,
             timeline.handed_off, timeline.ended]
    names = ("startup", "training", "export", "exit")
    return {f"wall_{name}_seconds": round(end - begin, 2)
            for name, begin, end in zip(names, marks, marks[1:]) if begin is not None and end is not None}


def _warmup(batches: list[float]) -> tuple[float, float]:
    """The excess time of the leading batch intervals that are far slower than the steady pace,
    and when the warm-up ended."""
    gaps = [b - a for a, b in zip(batches, batches[1:])]
    if not gaps:
        return 0.0, batches[0]
    steady = statistics.median(gaps[len(gaps) // 2:])  # the pace of the second half
    excess, end = 0.0, batches[0]
    for gap, arrival in zip(gaps, batches[1:]):
        if gap <= SLOW * steady:
            break
        excess, end = excess + gap - steady, arrival
    return excess, end


def warmup_bound(setting: float, baseline_warmups: list[float]) -> float | None:
    """How much warm-up a candidate may leave uncounted: the setting, or twice what the baseline
    needed (at least 5 s). None for the baseline itself, whose warm-up defines the bound."""
    if setting > 0:
        return setting
    if not baseline_warmups:
        return None
    return max(WARMUP_FLOOR_S, 2 * max(baseline_warmups))


def over_budget(reading: BudgetReading, kind: str, value: float, bound: float | None) -> str:
    """Why this run is over its budget, or "" when it is not (the budget of `kind` and `value`)."""
    if reading.batches_after_handoff:
        return f"over budget: {reading.batches_after_handoff} batches served after the handoff (training went on)"
    return _verdict(reading, kind, value, bound)


def _verdict(reading: BudgetReading, kind: str, value: float, bound: float | None, margin: float = 0.0,
             note: str = "") -> str:
    """over_budget's rule with `margin` more of every allowance (seconds, or a share of a tokens
    budget); `note` ends the reason."""
    if kind == "tokens" and reading.source == "loader":
        return _over_tokens(reading, value, margin * value, note)
    if kind != "seconds":
        return ""  # a flops budget is counted by the run; the harness records the tokens it served
    warmup = reading.warmup_seconds if bound is None else min(reading.warmup_seconds, bound)
    training = reading.training_seconds - warmup
    allowed = value + tolerance(value) + reading.untimed_first_step() + margin
    if training <= allowed:
        return ""
    why = _ended_past(reading, allowed, warmup, tolerance(value) + margin)
    if why is None:
        return ""
    counted = f"; {warmup:.1f} s of warm-up not counted" if warmup else ""
    excess = reading.warmup_seconds - warmup
    beyond = f", {excess:.1f} s more warm-up than the {bound:.1f} s bound" if excess > 0 else ""
    return (f"over budget: {training:.1f} s of training by the harness clock for a {value:g} s budget "
            f"({why}{counted}{beyond}{note})")


def _ended_past(reading: BudgetReading, allowed: float, warmup: float, slack: float) -> str | None:
    """How a run past `allowed` did not stop the way an honest run stops, or None when it did.
    `allowed` and the training it is compared with are both less the warm-up."""
    end, pace = reading.ending, reading.step_seconds
    if end is None:
        return f"allowed {allowed:.1f} s"  # no budget checks: nothing to judge it by
    if not (end.previous or end.previous_tokens):  # its first step was its last: the budget is shorter than a step
        return f"allowed {allowed:.1f} s: its one step outlasted the budget, which is too short for the step"
    went_on, half = end.went_on - warmup, reading.half_step(end.previous, pace)
    if went_on + half > allowed:
        return f"it went on at {went_on:.1f} s after a step of {2 * half:.2f} s: allowed until {allowed - half:.1f} s"
    step_tokens = round(2 * reading.half_step(end.previous_tokens, reading.step_tokens))
    if end.final_tokens > step_tokens:
        return f"its final step served {end.final_tokens:,} tokens, the step before it {step_tokens:,}"
    limit = FINAL_STEPS * max(end.longest, pace) + slack
    if end.final > limit:
        return f"its final step took {end.final:.1f} s: allowed {limit:.1f} s, {FINAL_STEPS:g} of its longest step"
    return None


def _over_tokens(reading: BudgetReading, value: float, margin: float, note: str) -> str:
    end = reading.ending
    half = reading.half_step(end.previous_tokens, reading.step_tokens) if end else 0.0
    allowed = value + half + reading.batch_tokens + margin
    if reading.tokens <= allowed:
        return ""
    return (f"over budget: {reading.tokens:,} tokens served by the harness's count for a {value:,.0f}-token "
            f"budget (allowed {allowed:,.0f}: half a step of {2 * half:,.0f} tokens and one batch of "
            f"{reading.batch_tokens:,} more{note})")


def past_any_allowance(timeline, now: float, kind: str, value: float) -> str:
    """Why a run that has not handed off yet is already past anything its budget could allow it,
    or "". The verdict as if it handed off now, both ways it could (its last check its final one,
    or the one before a final check now), with every warm-up so far left out and a margin on top
    (max(LIVE_MARGIN_S, LIVE_MARGIN_SHARE) of a seconds budget, LIVE_MARGIN_SHARE of a tokens
    budget); the verdict after the run stays the one that decides."""
    if timeline.handoff is not None or not timeline.batches or kind not in ("seconds", "tokens"):
        return ""
    if kind == "seconds" and now - timeline.batches[0][0] <= value:  # too early to be over: nothing to measure
        return ""
    margin = max(LIVE_MARGIN_S, LIVE_MARGIN_SHARE * value) if kind == "seconds" else LIVE_MARGIN_SHARE
    note = "; stopped by the harness before its handoff"
    seen = replace(timeline, ended=now, handoff=now, batches=list(timeline.batches), steps=list(timeline.steps))
    checked_now = replace(seen, steps=[*seen.steps, now])
    reasons = [_verdict(measure(tl, 0.0), kind, value, None, margin, note) for tl in (checked_now, seen)]
    return reasons[0] if all(reasons) else ""
