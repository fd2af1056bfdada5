"""The live terminal view of a study (rich); plain lines are in plain.py.

It subscribes to a study's events (core/events.py): `RunStarted`, `Progress` (parsed once from
the run's output), `ExperimentFinished`, `Note`. Tasks that print no progress lines still get a
bar from the elapsed time against the budget.
"""

from __future__ import annotations

import time
from collections import deque

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from autoresearch.core.events import Event, ExperimentFinished, Note, Progress, RunStarted
from autoresearch.core.results import ExperimentResult
from autoresearch.core.status import Status


class LiveView:
    """Use as a context manager and subscribe it to a study's events."""

    def __init__(self, budget_seconds: float, console: Console | None = None, history: int = 8,
                 metric: str = "val_bpb"):
        self.console = console or Console()
        self.budget = budget_seconds
        self.metric = metric  # the task's metric names the column: val_loss for an adopted repository
        self.results: deque[ExperimentResult] = deque(maxlen=history)
        self.best: ExperimentResult | None = None
        self.current = "starting"
        self.started = time.monotonic()
        self.progress: Progress | None = None
        self.last_event = ""
        self.sigma: float | None = None
        self._live = Live(self.render(), console=self.console, refresh_per_second=4, transient=False)

    def __enter__(self) -> LiveView:
        self._live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._live.update(self.render(), refresh=True)
        self._live.__exit__(*exc)

    def __call__(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            run = f" (run {event.run})" if event.run > 1 else ""
            self.current = f"#{event.exp_id} {event.description}{run}"
            self.started, self.progress = time.monotonic(), None
        elif isinstance(event, Progress):
            self.progress = event
        elif isinstance(event, ExperimentFinished):
            self._finished(event.result)
        elif isinstance(event, Note):
            self.last_event = event.text
        else:
            return
        self._live.update(self.render(), refresh=True)

    def _finished(self, result: ExperimentResult) -> None:
        self.results.append(result)
        if result.status == Status.KEEP:
            self.best = result
        sigma = result.metrics.get("sigma")
        if isinstance(sigma, (int, float)):
            self.sigma = sigma

    def render(self):
        elapsed = time.monotonic() - self.started
        progress = self.progress
        share = progress.fraction if progress else min(elapsed / self.budget, 1.0) if self.budget else 0.0
        share = min(share, 1.0)
        stats = [f"{100 * share:5.1f}% of the budget", f"{elapsed:5.0f} s"]
        if progress:
            stats += [f"step {progress.step}", f"loss {progress.loss:.4f}"]
            if progress.tokens_per_second:
                stats.append(f"{progress.tokens_per_second:,.0f} tok/s")
        bar = Table.grid(padding=(0, 2))
        bar.add_row(ProgressBar(total=1.0, completed=share, width=40), Text(" | ".join(stats), style="dim"))
        current = Group(Text(self.current, style="bold"), bar)
        table = Table(box=None, expand=True, show_edge=False)
        for column in ("#", "status", self.metric, "description", "decision"):
            table.add_column(column, overflow="fold")
        colors = {Status.KEEP: "green", Status.DISCARD: "bright_black", Status.CRASH: "red"}
        for r in self.results:
            value = f"{r.metric:.6f}" if r.metric is not None else "-"
            table.add_row(str(r.id), Text(str(r.status), style=colors.get(r.status, "")), value, r.description[:50],
                          r.reason[:70])
        best = (f"best: #{self.best.id} {self.best.metric:.6f}  {self.best.description}" if self.best
                else "best: none yet")
        noise = f"   noise sd {self.sigma:.6f}" if self.sigma is not None else ""
        footer = Text(best + noise + (f"\n{self.last_event}" if self.last_event else ""), style="cyan")
        return Panel(Group(current, Text(""), table, Text(""), footer), title="autoresearch", border_style="blue")
