"""Evaluation: the trusted scoring of a handed-off model, in a sandbox that alone sees the validation data.

It can start early. Where the task's evaluation waits for the harness's word (`[evaluation]
early_start`, as the llm template's prepare.py does) and the training sandbox keeps the frozen
files read-only (so the code the evaluation imports is the frozen code), its process starts
before it is needed, so that its start-up runs on a core the training leaves idle:

    early_start = "run"      with the training process: Python and torch load while train.py
                             starts (single-threaded), the evaluator's own imports once the harness
                             writes `handoff` (while the model is exported), the model after `go`
    early_start = true       at the handoff: its whole start-up overlaps the export and exit

Words come on a pipe (its number in AUTORESEARCH_EVAL_GATE_FD), one a line, in this order:
`handoff` when training hands off, `go` only once the training process is gone and the run
passed its checks, so a model changed after its handoff is never read. When the run fails
instead, the pipe closes without `go` and the evaluation exits having read nothing.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from autoresearch.core.errors import one_line
from autoresearch.core.summary import metric_value, parse_summary
from autoresearch.run.process import Command, RunResult, run_command
from autoresearch.run.sandbox import Sandbox

if TYPE_CHECKING:  # a type only: the training process imports this module, and settings cost ~50 ms to import
    from autoresearch.core.task import Task

GATE = "AUTORESEARCH_EVAL_GATE_FD"
INVALID_EXIT = 3  # an evaluation's way to say "this model cannot be scored honestly"
CANCELLED_EXIT = 4  # an early evaluation told no `go`: the run failed before it


@dataclass(frozen=True)
class Evaluation:
    metric: float | None
    failure: str = ""
    invalid: bool = False
    scores: dict = field(default_factory=dict)  # its whole summary block, with the wall time it added


_gate = None  # the evaluation's side: the gate's read end, once opened
_heard: set[str] = set()  # the words read from it so far


def wait_for(word: str) -> None:
    """The evaluation's side: one started early blocks here until the harness has said `word`
    ("handoff", or "go", which comes after it); without `go` the process exits having read
    nothing. Returns at once when not started early."""
    global _gate
    if _gate is None:
        fd = os.environ.pop(GATE, None)
        if not fd:
            return
        try:
            _gate = os.fdopen(int(fd), "rb")
        except (OSError, ValueError):
            raise SystemExit(CANCELLED_EXIT) from None
    while word not in _heard and "go" not in _heard:  # `go` says everything before it too
        try:
            line = _gate.readline()
        except (OSError, ValueError):
            line = b""
        if not line:  # the harness closed the gate without `go`: the run failed
            raise SystemExit(CANCELLED_EXIT)
        _heard.add(line.strip().decode(errors="replace"))


def wait_for_go() -> None:
    """Until the run has ended and passed its checks (see wait_for)."""
    wait_for("go")


def early_start_point(task: Task, sandbox: Sandbox) -> str:
    """When this task's evaluation may start: "run", "handoff", or "" (after the run)."""
    if not sandbox.isolates:
        return ""
    setting = task.evaluation.early_start
    return "handoff" if setting is True else setting or ""


class Evaluator:
    """One run's evaluation process: started early (with the training process, or from the
    harness clock's thread at the handoff) or when its result is asked for, and cancelled if the
    run fails first."""

    def __init__(self, make_command: Callable[[], Command], wait_bound: float = 0.0, start_at: str = ""):
        self._make_command = make_command
        self._wait_bound = wait_bound  # the longest it may wait at its gate (the training's timeout)
        self._start_at = start_at  # "run", "handoff" or "" (see early_start_point)
        self._gate: _Gate | None = None
        self._lock = threading.Lock()  # handed_off runs on the clock's thread
        self._settled = False  # run() or cancel() came first: too late to start early

    def run_started(self) -> None:
        """The training process is about to start."""
        if self._start_at == "run":
            self._start_early()

    def handed_off(self) -> None:
        """Training handed its model off (called from the clock's thread)."""
        if self._start_at == "handoff":
            self._start_early()
        with self._lock:
            if self._gate is not None and not self._settled:
                self._gate.tell("handoff")

    def _start_early(self) -> None:
        with self._lock:
            if self._gate is not None or self._settled:
                return
            try:  # its timeout counts its work after the gate, not the wait for the training to end
                command = self._make_command()
                self._gate = _Gate(replace(command, timeout=command.timeout + self._wait_bound))
            except Exception:  # noqa: BLE001 - possibly on the clock's thread: it must go on; it starts when asked for
                self._gate = None

    def run(self) -> tuple[RunResult, float]:
        """The evaluation's result, and the wall time it added after the training process: all of
        it, less what an early start had already spent waiting at its gate."""
        with self._lock:
            self._settled, gate = True, self._gate
        if gate is None:
            result = run_command(self._make_command())
            return result, result.wall_seconds
        return gate.open()

    def cancel(self) -> None:
        with self._lock:
            self._settled, gate = True, self._gate
        if gate is not None:
            gate.close()


class _Gate:
    """An evaluation process waiting for `go` on a pipe, run by a thread of its own."""

    def __init__(self, command: Command):
        self._read, self._write = os.pipe()
        self._command = replace(command, env={**(command.env or {}), GATE: str(self._read)},
                                pass_fds=(*command.pass_fds, self._read))
        self._result = RunResult(127, 0.0, False, command.log_path, False)  # until it has run
        self._group = 0  # the process group, once it exists
        self._opened = False  # `go` was sent: from then on it reads the model
        self._thread = threading.Thread(target=self._run, daemon=True, name="evaluation")
        try:
            self._thread.start()
        except RuntimeError:
            self._close_read()
            self._close_write()
            raise

    def _run(self) -> None:
        try:
            self._result = run_command(self._command, on_start=self._started)
        except Exception as exc:  # noqa: BLE001 - whatever it was, the run gets a failed evaluation that says so
            with open(self._command.log_path, "a") as log:
                log.write(f"[autoresearch] the evaluation could not run: {type(exc).__name__}: {exc}\n")
        finally:
            self._close_read()

    def _started(self, pid: int) -> None:
        self._group = pid
        self._close_read()  # the child has its own copy of the read end

    def _close_read(self) -> None:
        fd, self._read = self._read, -1
        if fd >= 0:
            os.close(fd)

    def tell(self, word: str) -> None:
        """One word through the gate (an evaluation that already ended cannot hear it: its log says why)."""
        if self._write >= 0:
            with contextlib.suppress(OSError):
                os.write(self._write, word.encode() + b"\n")

    def open(self) -> tuple[RunResult, float]:
        opened, self._opened = time.monotonic(), True
        self.tell("go")
        self._close_write()
        self._thread.join()
        return self._result, time.monotonic() - opened

    def close(self) -> None:
        """No `go`: an evaluation still at its gate exits by itself; one past it (Ctrl-C while it
        scored) is killed with its group."""
        if self._opened and self._group and self._thread.is_alive():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._group, signal.SIGKILL)
        self._close_write()
        self._thread.join(timeout=30)

    def _close_write(self) -> None:
        fd, self._write = self._write, -1
        if fd >= 0:
            os.close(fd)


def interpret(run: RunResult, text: str, task: Task, added_seconds: float) -> Evaluation:
    """What the evaluation's process and output (`text`) say of the model."""
    scores = {**parse_summary(text), "wall_evaluation_seconds": round(added_seconds, 2)}
    invalid_lines = [line for line in text.splitlines() if line.startswith("invalid: ")]
    if run.exit_code == INVALID_EXIT and invalid_lines:
        return Evaluation(None, invalid_lines[-1], True)
    if run.timed_out or run.exit_code != 0:
        why = run.killed_for or ("timed out" if run.timed_out else f"exit code {run.exit_code}")
        return Evaluation(None, f"the evaluation failed ({why}): {one_line(text, default='no output')}")
    metric = metric_value(scores, task.metric)
    if metric is None:
        return Evaluation(None, f"the evaluation printed no valid {task.metric}")
    return Evaluation(metric, scores=scores)
