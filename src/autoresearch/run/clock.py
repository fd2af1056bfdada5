"""Clock: the harness's own measure of a run's training, over a channel the run cannot stamp.

The frozen files of a task (the llm template's prepare.py) tell the harness what happens, one
line per message, over a pipe whose write end the run inherits (its number in
AUTORESEARCH_CLOCK_FD):

    batch <tokens>   the frozen data loader served a batch
    step             train.py asked how much of the budget is spent (the template: before its first
                     step and after each; where it last went on is what the budget rule judges)
    handoff          training is over: the model is being handed to the trusted evaluation
    handed-off       the handoff is written

The harness stamps each line with its own monotonic clock as it arrives; the content says only
what happened, never when. `core/budget.py` turns the stamped timeline into training seconds.
A run can write to the channel too, but a message can only make its own training look longer
(an earlier start, more batches), be caught (a model that changes after its handoff), or move
its budget checks, which gains it at most half a median step (core/budget.py caps the step it
judges the last check by at two median steps, and the final step's tokens by the step before).
"""

from __future__ import annotations

import os
import selectors
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

ENV = "AUTORESEARCH_CLOCK_FD"
MAX_EVENTS = 1_000_000  # per kind: a run that floods the channel is not followed further
_channel = None  # the run's side: the open write end, once


def tell(kind: str, value: int | None = None) -> None:
    """The run's side: one message to the harness (nothing when not run by the harness)."""
    global _channel
    if _channel is None:
        fd = os.environ.get(ENV)
        if not fd:
            return
        try:
            _channel = os.fdopen(int(fd), "w", buffering=1)
        except (OSError, ValueError):
            os.environ.pop(ENV, None)  # not ours to write: stay quiet
            return
    try:
        _channel.write(kind if value is None else f"{kind} {value}")
        _channel.write("\n")
    except (OSError, ValueError):
        pass  # the harness stopped listening: training goes on


@dataclass
class Timeline:
    """What the harness saw, on its own clock (time.monotonic seconds)."""
    started: float = 0.0  # the process was started
    ended: float | None = None  # it and its children were gone
    batches: list[tuple[float, int]] = field(default_factory=list)  # (arrival, tokens)
    steps: list[float] = field(default_factory=list)
    handoff: float | None = None  # the first handoff message
    handed_off: float | None = None
    handoff_digest: str = ""  # of the handoff directory when it was handed off
    unreadable: int = 0  # lines that were not messages


class ClockChannel:
    """The harness's side: a pipe, a reader thread that stamps what arrives, the timeline."""

    def __init__(self, on_handed_off: Callable[[], str] | None = None, on_handoff: Callable[[], None] | None = None):
        self._read, self.child_fd = os.pipe()
        os.set_blocking(self._read, False)
        self.timeline = Timeline(started=time.monotonic())
        self._on_handed_off = on_handed_off
        self._on_handoff = on_handoff  # told once, when training hands off (an early evaluation starts)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, daemon=True, name="clock")
        self._thread.start()

    def env(self) -> dict[str, str]:
        return {ENV: str(self.child_fd)}

    def started(self) -> None:
        """The run's process exists; the parent's copy of the write end goes (EOF when the run's goes)."""
        self.timeline.started = time.monotonic()
        os.close(self.child_fd)
        self.child_fd = -1

    def finish(self) -> Timeline:
        """After the run and its children are gone: what was still in the pipe, then the timeline."""
        if self.child_fd >= 0:  # the run never started
            os.close(self.child_fd)
            self.child_fd = -1
        self.timeline.ended = time.monotonic()
        self._stop.set()
        self._thread.join(timeout=10)
        os.close(self._read)
        return self.timeline

    def _follow(self) -> None:
        pending = b""
        with selectors.DefaultSelector() as selector:
            selector.register(self._read, selectors.EVENT_READ)
            while True:
                ready = selector.select(timeout=0.2)
                stopping = self._stop.is_set()  # read before the last drain: nothing sent before it is lost
                data = self._drain() if ready or stopping else b""
                now = time.monotonic()  # one stamp for what arrived together: it arrived together
                *lines, pending = (pending + (data or b"")).split(b"\n")
                for line in lines:
                    self._stamp(line.decode(errors="replace").strip(), now)
                if data is None or stopping:  # the end of the stream, or the run is over
                    return

    def _drain(self) -> bytes | None:
        """What can be read now; None at the end of the stream (every write end closed)."""
        data = b""
        while True:
            try:
                part = os.read(self._read, 65536)
            except BlockingIOError:
                return data
            except OSError:
                return None
            if not part:
                return data or None
            data += part

    def _stamp(self, line: str, now: float) -> None:
        kind, _, value = line.partition(" ")
        timeline = self.timeline
        if kind == "batch" and len(timeline.batches) < MAX_EVENTS:
            timeline.batches.append((now, int(value) if value.isdigit() else 0))
        elif kind == "step" and len(timeline.steps) < MAX_EVENTS:
            timeline.steps.append(now)
        elif kind == "handoff" and timeline.handoff is None:
            timeline.handoff = now
            if self._on_handoff:
                self._on_handoff()
        elif kind == "handed-off" and timeline.handed_off is None:
            timeline.handed_off = now
            timeline.handoff_digest = self._on_handed_off() if self._on_handed_off else ""
        elif line:
            timeline.unreadable += 1
