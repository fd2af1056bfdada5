"""Training curves: progress from a run's own output lines, and the loss at a share of the budget.

The templates print one progress line about every second, e.g.
`step 00012 ( 20.1%) | loss 4.1234 | lrm 1.00 | dt 640ms | tok/s 6,651 | mfu 3.1% | epoch 1`:
the step, the share of the budget spent, the smoothed training loss and the throughput. A curve
is the list of these points in order; the ledger keeps one per run.
"""

from __future__ import annotations

import math
import re
import statistics
from dataclasses import dataclass, replace

PROGRESS_LINE = re.compile(r"step (?P<step>\d+) \(\s*(?P<pct>[\d.]+)%\)\s*\|\s*loss (?P<loss>[\d.]+|nan|inf)"
                           r"(?:.*?tok/s (?P<tps>[\d,]+))?")


@dataclass(frozen=True)
class Point:
    step: int
    fraction: float  # of the budget, 0..1
    loss: float
    tokens_per_second: float | None
    seconds: float | None = None  # on the harness's clock since the run's first progress line (None: read back)


def parse_progress(line: str) -> Point | None:
    match = PROGRESS_LINE.search(line)
    if match is None:
        return None
    tps = float(match["tps"].replace(",", "")) if match["tps"] else None
    return Point(int(match["step"]), float(match["pct"]) / 100, float(match["loss"]), tps)


def points_from_log(text: str) -> list[Point]:
    """The curve of a finished run, from its log (for runs whose output was not followed live)."""
    return [p for p in map(parse_progress, text.splitlines()) if p is not None]


def at_least_elapsed(point: Point, budget_seconds: float | None) -> Point:
    """A point's share of a seconds budget, never less than the harness's own clock says has passed
    since the first progress line: a run that prints a smaller share than it has spent (to escape an
    early stop) gains nothing by it."""
    if not budget_seconds or point.seconds is None:
        return point
    return replace(point, fraction=max(point.fraction, min(point.seconds / budget_seconds, 1.0)))


def loss_at(points: list[Point], fraction: float) -> float | None:
    """The loss at `fraction` of the budget, interpolated between the points around it; None if
    the curve has not got there (or starts after it)."""
    if not points or fraction < points[0].fraction or fraction > points[-1].fraction:
        return None
    for before, after in zip(points, points[1:]):
        if before.fraction <= fraction <= after.fraction:
            if not (math.isfinite(before.loss) and math.isfinite(after.loss)):
                return math.inf
            span = after.fraction - before.fraction
            weight = (fraction - before.fraction) / span if span > 0 else 1.0
            return before.loss + weight * (after.loss - before.loss)
    return points[-1].loss if math.isfinite(points[-1].loss) else math.inf


def mean_loss_at(curves: list[list[Point]], fraction: float) -> float | None:
    values = [v for v in (loss_at(c, fraction) for c in curves) if v is not None]
    return statistics.fmean(values) if values else None


SPREAD_SAMPLES = 6  # shares of the budget a windowed spread pools


def pooled_spread(groups: list[list[list[Point]]], fraction: float, window: float = 0.0) -> tuple[float, int]:
    """The spread of repeated runs' losses at `fraction`: the pooled sd of each commit's runs around
    their own mean, and how many curves reached `fraction` (of commits with two or more there).
    With a `window`, pooled over shares from `fraction - window` to `fraction`: three runs at one
    share give 2 degrees of freedom, an sd often a quarter of the true one, and a rule that trusts
    it sees noise as signal."""
    shares = [fraction - window * k / (SPREAD_SAMPLES - 1) for k in range(SPREAD_SAMPLES)] if window > 0 else [fraction]
    squares, dof = 0.0, 0
    for share in shares:
        for values in _finite_losses(groups, share):
            mean = statistics.fmean(values)
            squares += sum((v - mean) ** 2 for v in values)
            dof += len(values) - 1
    used = sum(len(values) for values in _finite_losses(groups, fraction))
    return (math.sqrt(squares / dof) if dof else 0.0), used


def _finite_losses(groups: list[list[list[Point]]], fraction: float) -> list[list[float]]:
    """For each commit with two or more runs there, its runs' finite losses at `fraction`."""
    found = []
    for runs in groups:
        values = [v for v in (loss_at(c, fraction) for c in runs) if v is not None and math.isfinite(v)]
        if len(values) >= 2:
            found.append(values)
    return found
