"""Early abort: stop a candidate whose training curve cannot catch the best's.

At each checkpoint (a share of the budget) the candidate's smoothed training loss is compared with
the incumbent's at the same share. It is stopped only if all of these hold:

- the band is known: at least `min_repeats` repeated runs of one commit (the baseline's runs, a
  grey-zone rerun's) have reached the checkpoint, so the spread of curves there is measured (pooled
  over the `window` before it: at one share alone three runs say little of it);
- it trails by more than `band_sd` times that spread (the difference of a run and the mean of the
  incumbent's runs), plus `headroom` times what the incumbent itself still gains from here to the
  end: curves cross (a longer warm-down is worse until late and better at the end), so a candidate
  may make up at most that much more than the best does in the rest of its budget;
- it is not closing the gap: `window` earlier it trailed by no more than now, give or take the
  noise of two gaps (CLOSING_Z sd of their difference), or it closes so slowly that at that rate
  it would still trail by more than the allowance at the end.

A loss that is no longer finite is stopped at once. Never the baseline and never a rerun; the study applies those rules. Pure: curves in, verdict out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from autoresearch.core.curve import Point, loss_at, mean_loss_at, pooled_spread

CLOSING_Z = 2.0  # a gap counts as closing when it shrank by this many sd of the change of two noisy gaps


@dataclass(frozen=True)
class AbortRule:
    checkpoints: tuple[float, ...] = (0.3, 0.5, 0.7)
    band_sd: float = 3.0
    headroom: float = 0.5
    window: float = 0.1
    min_repeats: int = 3


@dataclass(frozen=True)
class Reference:
    """What a candidate's curve is held against: the incumbent's runs and repeated runs' spread."""
    incumbent_id: int
    incumbent: list[list[Point]]  # the curve of each of the incumbent's runs
    repeats: list[list[list[Point]]]  # for each commit run more than once, its runs' curves

    def end_loss(self) -> float | None:
        ends = [c[-1].loss for c in self.incumbent if c and math.isfinite(c[-1].loss)]
        return sum(ends) / len(ends) if ends else None


@dataclass(frozen=True)
class Verdict:
    fraction: float
    loss: float
    reference: float
    spread: float
    reason: str


def check(points: list[Point], reference: Reference, rule: AbortRule) -> Verdict | None:
    """A verdict to stop at the last checkpoint the curve has reached, or None to let it run."""
    if points and not math.isfinite(points[-1].loss):  # a smoothed loss that is nan or inf stays so
        last = points[-1]
        return Verdict(last.fraction, math.inf, math.nan, math.nan,
                       f"stopped at {100 * last.fraction:.0f} %: the training loss is {last.loss}")
    reached = [c for c in rule.checkpoints if points and points[-1].fraction >= c]
    if not reached:
        return None
    at = reached[-1]
    spread, curves = pooled_spread(reference.repeats, at, rule.window)
    if curves < rule.min_repeats or spread <= 0:
        return None  # too few repeated curves to know the band
    loss, best = loss_at(points, at), mean_loss_at(reference.incumbent, at)
    end = reference.end_loss()
    if loss is None or best is None or end is None:
        return None
    runs = sum(1 for c in reference.incumbent if loss_at(c, at) is not None)
    noise = rule.band_sd * spread * math.sqrt(1 + 1 / max(runs, 1))
    gap, allowance = loss - best, noise + rule.headroom * max(best - end, 0.0)
    if not gap > allowance:
        return None
    earlier_loss, earlier_best = loss_at(points, at - rule.window), mean_loss_at(reference.incumbent, at - rule.window)
    if earlier_loss is not None and earlier_best is not None:
        closing = (earlier_loss - earlier_best) - gap
        closing_noise = CLOSING_Z * spread * math.sqrt(2 * (1 + 1 / max(runs, 1)))  # sd of a change of two gaps
        if closing > closing_noise and gap - closing / rule.window * (1 - at) <= allowance:
            return None  # closing the gap beyond the noise, fast enough to catch up by the end: it may cross
    reason = (f"stopped at {100 * at:.0f} %: loss {loss:.4f} against {best:.4f} +- {spread:.4f} "
              f"for the best (#{reference.incumbent_id}) at {100 * at:.0f} %")
    return Verdict(at, loss, best, spread, reason)
