"""Events: what a study says while it works, as typed values that views subscribe to.

The terminal view, the plain printer, exports and tests subscribe to a study's `EventBus`; nothing
a study prints is parsed back into data. Training output arrives as `RunOutput` lines, and the
progress lines among them (step, share of the budget, loss, tokens/s) once more as `Progress`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from autoresearch.core.results import ExperimentResult, StudySummary


@dataclass(frozen=True)
class Note:
    """A message for people: a recovery, a failed proposal and the wait after it, an exploration."""
    text: str


@dataclass(frozen=True)
class RunStarted:
    exp_id: int
    run: int  # 1, then 2.. for the judge's reruns of the same commit
    description: str
    parent: str


@dataclass(frozen=True)
class RunOutput:
    exp_id: int
    line: str


@dataclass(frozen=True)
class Progress:
    exp_id: int
    step: int
    fraction: float  # of the budget
    loss: float
    tokens_per_second: float | None


@dataclass(frozen=True)
class ExperimentFinished:
    result: ExperimentResult


@dataclass(frozen=True)
class StudyStopped:
    summary: StudySummary


Event = Note | RunStarted | RunOutput | Progress | ExperimentFinished | StudyStopped
Subscriber = Callable[[Event], None]


class EventBus:
    """Delivers each event to every subscriber, one event at a time (runs publish from their slots' threads)."""

    def __init__(self, *subscribers: Subscriber):
        self._subscribers = list(subscribers)
        self._lock = threading.Lock()

    def subscribe(self, subscriber: Subscriber) -> Subscriber:
        self._subscribers.append(subscriber)
        return subscriber

    def publish(self, event: Event) -> None:
        with self._lock:
            for subscriber in list(self._subscribers):
                subscriber(event)
