"""Judge: keep or discard a finished experiment against the incumbent (the branch's current best).

For now the rule is the original's: the first experiment of a branch (the baseline) is kept, and
later ones are kept only when strictly better. A run without a valid metric is a crash.
"""

from __future__ import annotations

from dataclasses import dataclass

from autoresearch.task import Task


@dataclass(frozen=True)
class Decision:
    status: str  # keep | discard | crash
    reason: str


def judge(task: Task, metric: float | None, incumbent: float | None, failure: str = "") -> Decision:
    if failure or metric is None:
        return Decision("crash", failure or f"no valid {task.metric} in the summary block")
    if incumbent is None:
        return Decision("keep", "baseline")
    delta = metric - incumbent
    if task.is_better(metric, incumbent):
        return Decision("keep", f"{task.metric} {incumbent:.6f} -> {metric:.6f} ({delta:+.6f})")
    return Decision("discard", f"not better than {incumbent:.6f} ({delta:+.6f})")
