"""Plain lines of a study's events, for logs, pipes and CI (no terminal library needed)."""

from __future__ import annotations

import sys
from collections.abc import Callable

from autoresearch.core.events import Event, ExperimentFinished, Note, RunOutput, RunStarted
from autoresearch.core.results import ExperimentResult


def result_line(result: ExperimentResult) -> str:
    value = f"{result.metric:.6f}" if result.metric is not None else "-"
    return f"experiment {result.id}: {result.status.upper()} {value} | {result.reason} | {result.wall_seconds:.1f} s"


class PlainPrinter:
    """One line per event worth a line; training output too when `verbose`."""

    def __init__(self, write: Callable[[str], None] | None = None, verbose: bool = False, prefix: str = "  "):
        self.write = write or (lambda text: print(text, flush=True))
        self.verbose, self.prefix = verbose, prefix

    def __call__(self, event: Event) -> None:
        if isinstance(event, Note):
            self.write(event.text)
        elif isinstance(event, RunStarted) and event.run == 1:
            self.write(f"experiment {event.exp_id}: {event.description}")
        elif isinstance(event, ExperimentFinished):
            self.write(result_line(event.result))
        elif isinstance(event, RunOutput) and self.verbose:
            self.write(self.prefix + event.line)


def live_view_wanted(plain: bool, verbose: bool = False) -> bool:
    return sys.stdout.isatty() and not plain and not verbose
