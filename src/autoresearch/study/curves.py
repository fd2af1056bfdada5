"""Curves: the training curves of a study's runs, recorded as they arrive and watched.

Slot threads hand each progress line of a run to `heard` (stamped with the harness's clock, its
share of the budget never less than the time that clock has seen pass); the study's own thread
writes them to the ledger (`flush`) and asks for early-abort verdicts, so a dashboard in another
process draws a live curve and one slot or many are watched alike. A run whose output was not
followed live (a Ray worker's) gets its curve from its log when it ends.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from autoresearch.core.abort import AbortRule, Reference, Verdict, check
from autoresearch.core.curve import Point, at_least_elapsed, points_from_log
from autoresearch.core.status import Status
from autoresearch.core.task import Task
from autoresearch.store.ledger import Ledger


class CurveWatch:
    def __init__(self, task: Task, ledger: Ledger, branch: str, rule: AbortRule | None):
        self.rule, self.ledger, self.branch = rule, ledger, branch
        self.budget_seconds = task.budget.value if task.budget.kind == "seconds" else None
        self._lock = threading.Lock()
        self._buffer: list[tuple[int, int, Point]] = []
        self._live: dict[int, tuple[int, list[Point]]] = {}  # exp_id -> (run, its points so far)
        self._first_heard: dict[tuple[int, int], float] = {}
        self._reference: Reference | None = None
        self._stale = True

    def started(self, exp_id: int, run: int) -> None:
        with self._lock:
            self._live[exp_id] = (run, [])

    def heard(self, exp_id: int, point: Point) -> Point | None:
        """A progress point of a run in flight (any thread); returns it as stamped, None if unknown."""
        with self._lock:
            live = self._live.get(exp_id)
            if live is None:
                return None
            run, points = live
            first = self._first_heard.setdefault((exp_id, run), time.monotonic())
            stamped = at_least_elapsed(Point(point.step, point.fraction, point.loss, point.tokens_per_second,
                                             round(time.monotonic() - first, 3)), self.budget_seconds)
            points.append(stamped)
            self._buffer.append((exp_id, run, stamped))
            return stamped

    def flush(self) -> None:
        """What arrived since the last flush, into the ledger (the study's thread owns the connection)."""
        with self._lock:
            buffer, self._buffer = self._buffer, []
        runs: dict[tuple[int, int], list[Point]] = {}
        for exp_id, run, point in buffer:
            runs.setdefault((exp_id, run), []).append(point)
        for (exp_id, run), points in runs.items():
            self.ledger.add_curve(exp_id, run, points)

    def finished(self, exp_id: int, run: int, log_path: Path) -> None:
        """A run ended: its curve complete in the ledger (read from its log if it was not followed)."""
        self.flush()
        with self._lock:
            self._live.pop(exp_id, None)
            followed = self._first_heard.pop((exp_id, run), None) is not None
        if not followed and log_path.is_file():
            points = points_from_log(log_path.read_text(errors="replace"))
            if points:
                self.ledger.add_curve(exp_id, run, points)
        self._stale = True

    def verdicts(self, watched: set[int]) -> dict[int, Verdict]:
        """Early-abort verdicts for the runs in flight among `watched` (first runs of candidates)."""
        if self.rule is None or not watched:
            return {}
        with self._lock:
            live = {exp_id: list(points) for exp_id, (_, points) in self._live.items() if exp_id in watched and points}
        reference = self.reference() if live else None
        if reference is None:
            return {}
        found = {exp_id: check(points, reference, self.rule) for exp_id, points in live.items()}
        return {exp_id: verdict for exp_id, verdict in found.items() if verdict is not None}

    def reference(self) -> Reference | None:
        """The incumbent's curves and those of every commit run more than once, read again after a run ends."""
        if self._stale:
            self._stale = False
            self._reference = reference_from(self.ledger, self.branch)
        return self._reference


def reference_from(ledger: Ledger, branch: str, upto: int | None = None) -> Reference | None:
    """What a candidate started after experiment `upto` (default: now) is held against."""
    experiments = [e for e in ledger.experiments(branch) if upto is None or e.id <= upto]
    kept = [e for e in experiments if e.status == Status.KEEP and e.metric is not None]
    if not kept:
        return None
    incumbent = ledger.incumbent(branch) if upto is None else kept[-1]
    repeated = [e.id for e in experiments if (e.metrics.get("runs") or 1) >= 2 and e.status != Status.CRASH]
    curves = ledger.curves(sorted({incumbent.id, *repeated}))
    mine = list(curves.get(incumbent.id, {}).values())
    if not mine:
        return None
    return Reference(incumbent.id, mine, [list(curves[i].values()) for i in repeated if len(curves.get(i, {})) >= 2])
