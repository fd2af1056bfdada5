"""The running best, aware of the task's direction: the one place that knows which way is better."""

from __future__ import annotations

from collections.abc import Iterable

from autoresearch.core.status import Status


def better(candidate: float, incumbent: float, direction: str = "minimize") -> bool:
    return candidate < incumbent if direction == "minimize" else candidate > incumbent


def gain(candidate: float, incumbent: float, direction: str = "minimize") -> float:
    """How much better `candidate` is than `incumbent` (positive = better), in metric units."""
    return incumbent - candidate if direction == "minimize" else candidate - incumbent


def best_value(values: Iterable[float], direction: str = "minimize") -> float | None:
    values = list(values)
    if not values:
        return None
    return min(values) if direction == "minimize" else max(values)


def running_best(points: Iterable[tuple[str, float | None]], direction: str = "minimize") -> list[float | None]:
    """For (status, metric) pairs in order: after each one, the best metric kept so far (None before any)."""
    best, out = None, []
    for status, metric in points:
        if status == Status.KEEP and metric is not None and (best is None or better(metric, best, direction)):
            best = metric
        out.append(best)
    return out
