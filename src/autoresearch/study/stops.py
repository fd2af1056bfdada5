"""When a study stops, and how fast it asks: one place for every rule.

A number of experiments started, hours passed, model spend reached, the stop file touched (and
removed once seen), or too many proposals in a row that could not run. After a proposal that
failed the next ask waits longer each time, so a stuck model costs little. A proposer whose error
can never go away by asking again stops the study at once elsewhere (study.py), with its message.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

MAX_BACKOFF_S = 60.0


@dataclass
class StopRules:
    stop_file: Path
    max_experiments: int | None = None  # started by this invocation (reruns not counted, replays and fixes are)
    hours: float | None = None
    max_cost_usd: float | None = None  # model spend of this invocation
    max_idle_proposals: int = 30  # proposals in a row that could not run (failed, stale, duplicate)
    failure_backoff_s: float = 5.0  # first wait after a failed proposal; doubles, capped at MAX_BACKOFF_S
    verb: str = "started"  # with several slots the last experiments still run at the stop
    started_at: float = field(default_factory=time.monotonic)
    started: int = 0  # experiments started by this invocation
    idle: int = 0  # proposals in a row that could not run
    next_ask_at: float = 0.0  # monotonic time before which no proposal is asked for

    def limit(self, spent_usd: float) -> str:
        """Why no new experiment may start now, or ""."""
        if self.max_experiments is not None and self.started >= self.max_experiments:
            return f"{self.verb} {self.started} experiments (--max-experiments)"
        if self.hours is not None and time.monotonic() - self.started_at >= self.hours * 3600:
            return f"{self.hours:g} hours passed (--hours)"
        if self.max_cost_usd is not None and spent_usd >= self.max_cost_usd:
            return f"model spend ${spent_usd:.4f} reached --max-cost ${self.max_cost_usd:g}"
        if self.stop_file.exists():
            self.stop_file.unlink()
            return f"stop file {self.stop_file} found (removed)"
        return ""

    def exhausted(self) -> str:
        """No new ideas: too many proposals in a row that could not run."""
        if self.idle >= self.max_idle_proposals:
            return (f"{self.idle} proposals in a row could not run (failed, stale or duplicate); "
                    "see `autoresearch history`")
        return ""

    def could_not_run(self, failed: bool) -> float:
        """Count a proposal that could not run; after a failure, the pause before the next ask (s). A
        duplicate or a proposal that no longer applies is asked again at once."""
        self.idle += 1
        if not failed:
            return 0.0
        pause = min(self.failure_backoff_s * 2 ** (self.idle - 1), MAX_BACKOFF_S)
        self.next_ask_at = time.monotonic() + pause
        return pause

    def ready(self) -> bool:
        return time.monotonic() >= self.next_ask_at

    def wait_s(self) -> float:
        return max(self.next_ask_at - time.monotonic(), 0.0)
