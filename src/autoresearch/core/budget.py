"""The budget as the harness measures it, and when a run is over it.

`measure` turns the harness's stamped timeline of a run (run/clock.py) into training seconds:
from the first batch the frozen loader served to the handoff, less the warm-up (the leading
batches that took far longer than the run's steady pace: compiling, allocating). A run that
never used the frozen loader gets the harness's wall time less a start-up allowance; one that
never handed off trains until its process ends.

`over_budget` says why a run is over budget, or "". A run may pass the budget by its tolerance
(max(1 s, 5 %)) plus two of its own steps: the first one, which the run does not time, and the
last one, which ends past the budget; each counts at most three times the run's median step, so
work moved into the first step or a last step of its own counts. The warm-up is not counted up
to the bound (what the baseline needed, twice, at least 5 s; or `[budget] warmup_seconds`).

`past_any_allowance` is the same measure taken while a run still trains: once it is past anything
its budget could allow it, by a margin, the harness stops it there rather than at its timeout.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, replace

OVER_BUDGET = "over budget"  # how every reason of this kind begins (the trial's and this module's)
SLOW = 4.0  # a batch interval this many times the steady one is warm-up, not training
TOLERANCE_S, TOLERANCE_SHARE = 1.0, 0.05
STEP_LIMIT = 3.0  # the first and the last step are allowed up to this many median steps
WARMUP_FLOOR_S = 5.0
LIVE_MARGIN_S, LIVE_MARGIN_SHARE = 2.0, 0.10  # beyond the widest allowance before a training run is stopped


@dataclass(frozen=True)
class BudgetReading:
    """The harness's figures of one run (seconds of its own clock, tokens the frozen loader served)."""
    source: str  # "loader": from the batches it served; "wall": the run did not use the frozen loader
    training_seconds: float  # first batch (or start + allowance) -> handoff (or the end of the process)
    warmup_seconds: float  # the leading slow batches, not counted as training (up to the bound)
    step_seconds: float  # the median gap between budget checks (one a step) after the first step, 0 without one
    first_step_seconds: float  # from the first batch to the end of the first step, less the warm-up
    last_step_seconds: float  # the longest gap between budget checks after the first step
    tokens: int  # served before the handoff
    step_tokens: int  # median tokens served between two budget checks
    batches_after_handoff: int
    handed_off: bool

    def as_metrics(self) -> dict:
        return {"harness_training_seconds": round(self.training_seconds, 2),
                "harness_warmup_seconds": round(self.warmup_seconds, 2),
                "harness_step_seconds": round(self.step_seconds, 3), "harness_tokens": self.tokens,
                "harness_clock": self.source}

    def allowed_steps(self) -> float:
        """The two steps a run may spend beyond its budget, each at most STEP_LIMIT median steps."""
        limit = STEP_LIMIT * self.step_seconds
        return min(self.first_step_seconds, limit) + min(self.last_step_seconds, limit)


def measure(timeline, startup_seconds: float) -> BudgetReading:
    """The budget figures of a run from what the harness stamped (a clock.Timeline)."""
    end = timeline.handoff if timeline.handoff is not None else timeline.ended
    batches = [t for t, _ in timeline.batches]
    if not batches:
        wall = max(0.0, end - timeline.started - startup_seconds)
        return BudgetReading("wall", wall, 0.0, 0.0, 0.0, 0.0, 0, 0, 0, timeline.handoff is not None)
    before = [(t, n) for t, n in timeline.batches if t <= end]
    warmup, _ = _warmup(batches)
    steps = [t for t in timeline.steps if batches[0] <= t <= end]
    gaps = [b - a for a, b in zip(steps, steps[1:])]
    # the template asks once before its first step, then once after each: gap 0 is the first step,
    # left out of the pace it is judged by (a run of one long step would otherwise allow itself)
    first = max(0.0, gaps[0] - warmup) if gaps else 0.0
    pace = statistics.median(gaps[1:]) if len(gaps) > 1 else 0.0
    return BudgetReading("loader", end - batches[0], warmup, pace, first,
                         max(gaps[1:], default=0.0), sum(n for _, n in before), _step_tokens(timeline.batches, steps),
                         len(timeline.batches) - len(before), timeline.handoff is not None)


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


def _step_tokens(batches: list[tuple[float, int]], steps: list[float]) -> int:
    if len(steps) < 2:
        return 0
    counts = [sum(n for t, n in batches if a < t <= b) for a, b in zip(steps, steps[1:])]
    counts = [c for c in counts if c]
    return int(statistics.median(counts)) if counts else 0


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
    if kind == "tokens" and reading.source == "loader":
        allowed = value * (1 + TOLERANCE_SHARE) + 2 * reading.step_tokens
        if reading.tokens > allowed:
            return (f"over budget: {reading.tokens:,} tokens served by the harness's count for a {value:,.0f}-token "
                    f"budget (allowed {allowed:,.0f})")
        return ""
    if kind != "seconds":
        return ""  # a flops budget is counted by the run; the harness records the tokens it served
    warmup = reading.warmup_seconds if bound is None else min(reading.warmup_seconds, bound)
    training = reading.training_seconds - warmup
    allowed = value + reading.allowed_steps() + max(TOLERANCE_S, TOLERANCE_SHARE * value)
    if training <= allowed:
        return ""
    counted = f"; {warmup:.1f} s of warm-up not counted" if warmup else ""
    excess = reading.warmup_seconds - warmup
    beyond = f", {excess:.1f} s more warm-up than the {bound:.1f} s bound" if excess > 0 else ""
    return (f"over budget: {training:.1f} s of training by the harness clock for a {value:g} s budget "
            f"(allowed {allowed:.1f} s{counted}{beyond})")


def past_any_allowance(timeline, now: float, kind: str, value: float) -> str:
    """Why a run that has not handed off yet is already past anything its budget could allow it,
    or "". Lenient on purpose, so that no honest run is stopped: all its warm-up so far is left
    out, both of its extra steps count at their limit, and a margin of max(2 s, 10 %) comes on top;
    the verdict after the run (`over_budget`) stays the one that decides."""
    if timeline.handoff is not None or not timeline.batches or kind not in ("seconds", "tokens"):
        return ""
    if kind == "seconds" and now - timeline.batches[0][0] <= value:  # too early to be over: nothing to measure
        return ""
    reading = measure(replace(timeline, ended=now, batches=list(timeline.batches), steps=list(timeline.steps)), 0.0)
    if kind == "tokens":
        ceiling = value * (1 + TOLERANCE_SHARE + LIVE_MARGIN_SHARE) + 2 * STEP_LIMIT * reading.step_tokens
        if reading.tokens <= ceiling:
            return ""
        return (f"over budget: {reading.tokens:,} tokens served by the harness's count for a {value:,.0f}-token "
                f"budget (stopped by the harness past {ceiling:,.0f}, more than any run of its steps is allowed)")
    training = reading.training_seconds - reading.warmup_seconds
    ceiling = (value + 2 * STEP_LIMIT * reading.step_seconds + max(TOLERANCE_S, TOLERANCE_SHARE * value)
               + max(LIVE_MARGIN_S, LIVE_MARGIN_SHARE * value))
    if training <= ceiling:
        return ""
    return (f"over budget: {training:.1f} s of training by the harness clock for a {value:g} s budget "
            f"(stopped by the harness past {ceiling:.1f} s, more than any run of its pace is allowed)")
