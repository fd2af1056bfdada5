"""When a study stops: one place for every rule.

A number of experiments started, hours passed, model spend reached, the stop file touched (and
removed once seen), or too many proposals in a row that could not run. A proposer whose error can
never go away by asking again stops the study at once elsewhere (study.py), with its message.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class StopRules:
    stop_file: Path
    max_experiments: int | None = None  # started by this invocation (reruns not counted, replays and fixes are)
    hours: float | None = None
    max_cost_usd: float | None = None  # model spend of this invocation
    max_idle_proposals: int = 30  # proposals in a row that could not run (failed, stale, duplicate)
    started_at: float = field(default_factory=time.monotonic)

    def limit(self, started: int, spent_usd: float, verb: str = "started") -> str:
        """Why no new experiment may start now, or ""."""
        if self.max_experiments is not None and started >= self.max_experiments:
            return f"{verb} {started} experiments (--max-experiments)"
        if self.hours is not None and time.monotonic() - self.started_at >= self.hours * 3600:
            return f"{self.hours:g} hours passed (--hours)"
        if self.max_cost_usd is not None and spent_usd >= self.max_cost_usd:
            return f"model spend ${spent_usd:.4f} reached --max-cost ${self.max_cost_usd:g}"
        if self.stop_file.exists():
            self.stop_file.unlink()
            return f"stop file {self.stop_file} found (removed)"
        return ""

    def exhausted(self, idle: int) -> str:
        """No new ideas: too many proposals in a row that could not run."""
        if idle >= self.max_idle_proposals:
            return (f"{idle} proposals in a row could not run (failed, stale or duplicate); "
                    "see `autoresearch history`")
        return ""
