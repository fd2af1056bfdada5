"""Briefing: what limits the model, told to the proposer in a few lines.

Beside the history of final metrics, a proposer is shown the best run's figures (steps, tokens/s,
MFU, peak memory, the device and its peak), the best's training curve at a few shares of the
budget, where recent experiments' curves part from it, training loss against the metric where
they disagree, and, after a run of experiments without a keep, a note that asks for a structural
change instead of another nearby value. Pure: experiments and curves in, lines of text out.
"""

from __future__ import annotations

import math

from autoresearch.core.curve import Point, loss_at, pooled_spread
from autoresearch.core.records import Experiment
from autoresearch.core.status import Status

SHARES = (0.1, 0.25, 0.5, 0.75, 1.0)
END = 0.95  # the share at which a run counts as having run through
RECENT = 6


def curves_wanted(history: list[Experiment]) -> list[int]:
    """The experiments whose curves the briefing reads: the recent finished ones and the best."""
    finished = [e for e in history if e.status != Status.RUNNING]
    return [e.id for e in finished[-RECENT:]] + [e.id for e in finished if e.status == Status.KEEP][-1:]


def briefing(history: list[Experiment], curves: dict[int, dict[int, list[Point]]], metric: str,
             stagnation_after: int = 8, z: float = 2.5) -> list[str]:
    """Notes for the next proposal (empty until there is a best to describe)."""
    finished = [e for e in history if e.status != Status.RUNNING]
    kept = [e for e in finished if e.status == Status.KEEP and e.metric is not None]
    if not kept:
        return []
    best = kept[-1]
    best_curve = _first(curves.get(best.id, {}))
    notes = [_run_summary(best, metric)]
    if best_curve:
        notes.append(f"Its training curve (share of the budget: smoothed training loss): {_shape(best_curve)}.")
        spread = _end_spread(curves)
        notes += _parting(best, best_curve, finished[-RECENT:], curves, (metric, z * spread * math.sqrt(2)))
    since = _since_last_keep(finished)
    if since >= stagnation_after:
        notes.append(f"No keep in the last {since} experiments: nearby values of the same settings are not "
                     "helping. Propose a structural change (the architecture, the optimizer, the schedule, what "
                     "limits the throughput above) rather than another small step of a value.")
    return notes


def _run_summary(best: Experiment, metric: str) -> str:
    m = best.metrics
    parts = [f"{m['num_steps']:.0f} steps" if is_number(m.get("num_steps")) else "",
             f"{m['tokens_per_sec']:,.0f} tokens/s" if is_number(m.get("tokens_per_sec")) else "",
             f"MFU {m['mfu_percent']:.1f} %" if is_number(m.get("mfu_percent")) else "",
             f"peak memory {m['peak_vram_mb']:,.0f} MB" if is_number(m.get("peak_vram_mb")) else ""]
    device = m.get("device")
    if device:
        peak = f", peak {m['peak_tflops']:g} TFLOP/s" if is_number(m.get("peak_tflops")) else ""
        parts.append(f"on {device}{peak}")
    figures = ", ".join(p for p in parts if p)
    return f"The best so far (#{best.id}, {metric} {best.metric:.6f}): {figures or 'no run figures printed'}."


def _parting(best: Experiment, best_curve: list[Point], recent: list[Experiment],
             curves: dict[int, dict[int, list[Point]]], label: tuple[str, float]) -> list[str]:
    """Where each recent experiment's curve differs from the best's, and training loss against the
    metric where they disagree by more than `label`'s bound (the judge's z times the spread of the
    difference of two repeated runs' final losses; 0: the spread is not measured, nothing is said)."""
    metric, bound = label
    lines = []
    best_end = best_curve[-1].loss
    for exp in recent:
        mine = _first(curves.get(exp.id, {}))
        if exp.id == best.id or not mine:
            continue
        shown = [f"{100 * s:.0f} %: {a - b:+.3f}" for s, a, b in _gaps(mine, best_curve)]
        if not shown:
            continue
        stopped = " (stopped early)" if exp.metrics.get("stopped_at") is not None else ""
        line = f"#{exp.id} {exp.description[:60]}{stopped}: loss against the best's at {', '.join(shown)}"
        if exp.metric is not None and best.metric is not None and _ran_through(mine):
            train, score = mine[-1].loss - best_end, exp.metric - best.metric
            if bound > 0 and train < -bound and score > 0:
                line += (f"; lower training loss ({train:+.3f}) but a worse {metric} ({score:+.4f}): "
                         "it fits the training data better without generalising")
        lines.append(line)
    return ["Recent experiments' curves against it:\n" + "\n".join(lines)] if lines else []


def _end_spread(curves: dict[int, dict[int, list[Point]]]) -> float:
    """The spread of repeated runs' smoothed training loss near the end (0 when no commit ran twice),
    pooled over the last tenth before END (at one share, three runs measure it on 2 degrees of freedom)."""
    repeats = [list(runs.values()) for runs in curves.values() if len(runs) >= 2]
    spread, used = pooled_spread(repeats, END, window=0.1)
    return spread if used >= 2 else 0.0


def _shape(points: list[Point]) -> str:
    values = [(s, _loss(points, s)) for s in SHARES]
    return ", ".join(f"{100 * s:.0f} %: {v:.3f}" for s, v in values if v is not None)


def _gaps(mine: list[Point], best: list[Point]) -> list[tuple[float, float, float]]:
    pairs = [(s, _loss(mine, s), _loss(best, s)) for s in SHARES]
    return [(s, a, b) for s, a, b in pairs if a is not None and b is not None]


def _loss(points: list[Point], share: float) -> float | None:
    """The loss at a share of the budget; at 100 % the last point, if the run got near the end."""
    if share >= 1.0:
        return points[-1].loss if _ran_through(points) else None
    return loss_at(points, share)


def _ran_through(points: list[Point]) -> bool:
    return bool(points) and points[-1].fraction >= END


def _since_last_keep(finished: list[Experiment]) -> int:
    count = 0
    for exp in reversed(finished):
        if exp.status == Status.KEEP:
            break
        count += 1
    return count


def _first(runs: dict[int, list[Point]]) -> list[Point]:
    return runs[min(runs)] if runs else []


def is_number(value) -> bool:
    """A figure of a run's summary (an int or float, not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)
