"""Live terminal view of `autoresearch run` and `exp` (rich), and the plain mode for logs and CI.

The view reads what the loop already says: training output lines (progress lines of the form
`step 00012 ( 20.1%) | loss 4.1234 | ... | tok/s 6,651 | ...`) and loop events. Tasks that print no
such lines still get a bar from the elapsed time against the budget.
"""

from __future__ import annotations

import re
import time
from collections import deque
from dataclasses import dataclass

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

PROGRESS_LINE = re.compile(r"step (?P<step>\d+) \(\s*(?P<pct>[\d.]+)%\)\s*\|\s*loss (?P<loss>[\d.]+)"
                           r"(?:.*?tok/s (?P<tps>[\d,]+))?")
RESULT_EVENT = re.compile(r"^experiment (?P<id>\d+): (?P<status>[A-Z]+) (?P<value>\S+) \| (?P<reason>.*) \| (?P<wall>[\d.]+) s$")


@dataclass
class Result:
    id: int
    status: str
    value: str
    reason: str
    description: str


class LiveView:
    """Feed it with `on_line` (training output) and `on_event` (loop messages); use as a context manager."""

    def __init__(self, budget_seconds: float, console: Console | None = None, history: int = 8):
        self.console = console or Console()
        self.budget = budget_seconds
        self.results: deque[Result] = deque(maxlen=history)
        self.best: Result | None = None
        self.current = "starting"
        self.started = time.monotonic()
        self.progress = 0.0
        self.step = self.loss = self.tokens_per_second = None
        self.last_event = ""
        self.sigma = ""
        self._live = Live(self.render(), console=self.console, refresh_per_second=4, transient=False)

    def __enter__(self) -> LiveView:
        self._live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._live.update(self.render(), refresh=True)
        self._live.__exit__(*exc)

    def on_line(self, line: str) -> None:
        if match := PROGRESS_LINE.search(line):
            self.progress = float(match["pct"]) / 100
            self.step, self.loss = int(match["step"]), float(match["loss"])
            self.tokens_per_second = match["tps"]
        self._live.update(self.render(), refresh=True)

    def on_event(self, message: str) -> None:
        if message.startswith("experiment: ") or message.startswith("running the baseline"):
            self.current = message.removeprefix("experiment: ")
            self.started, self.progress, self.step, self.loss, self.tokens_per_second = time.monotonic(), 0.0, None, None, None
        elif match := RESULT_EVENT.match(message):
            result = Result(int(match["id"]), match["status"].lower(), match["value"], match["reason"], self.current)
            self.results.append(result)
            if result.status == "keep":
                self.best = result
            if sigma := re.search(r"sigma ([\d.]+)", result.reason):
                self.sigma = sigma.group(1)
        else:
            self.last_event = message
        self._live.update(self.render(), refresh=True)

    def render(self):
        elapsed = time.monotonic() - self.started
        share = self.progress if self.step is not None else min(elapsed / self.budget, 1.0) if self.budget else 0.0
        stats = [f"{100 * share:5.1f}% of the budget", f"{elapsed:5.0f} s"]
        if self.step is not None:
            stats += [f"step {self.step}", f"loss {self.loss:.4f}"]
        if self.tokens_per_second:
            stats.append(f"{self.tokens_per_second} tok/s")
        bar = Table.grid(padding=(0, 2))
        bar.add_row(ProgressBar(total=1.0, completed=share, width=40), Text(" | ".join(stats), style="dim"))
        current = Group(Text(self.current, style="bold"), bar)
        table = Table(box=None, expand=True, show_edge=False)
        for column in ("#", "status", "val_bpb", "description", "decision"):
            table.add_column(column, overflow="fold")
        colors = {"keep": "green", "discard": "bright_black", "crash": "red"}
        for r in self.results:
            table.add_row(str(r.id), Text(r.status, style=colors.get(r.status, "")), r.value, r.description[:50], r.reason[:70])
        best = f"best: #{self.best.id} {self.best.value}  {self.best.description}" if self.best else "best: none yet"
        noise = f"   noise sd {self.sigma}" if self.sigma else ""
        footer = Text(best + noise + (f"\n{self.last_event}" if self.last_event else ""), style="cyan")
        return Panel(Group(current, Text(""), table, Text(""), footer), title="autoresearch", border_style="blue")
