"""Runner: runs one experiment's command under a hard timeout and captures its output.

The command runs in its own process group, so the timeout (or Ctrl-C) kills it together with any
children it started. Output goes to a log file, capped in size, and line by line to a callback.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

MAX_LOG_BYTES = 20 * 2**20
KILL_GRACE_SECONDS = 5.0
# Secrets stay out of code an agent wrote: the training process never needs them.
SECRET_NAME = re.compile(r"(API_KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL|ACCESS_KEY)", re.IGNORECASE)


@dataclass
class RunResult:
    exit_code: int | None  # None when it had to be killed
    wall_seconds: float
    timed_out: bool
    log_path: Path
    log_truncated: bool


def expand_command(command: list[str]) -> list[str]:
    """`{python}` is the interpreter running the harness, so the task uses the same environment."""
    return [part.replace("{python}", sys.executable) for part in command]


def clean_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not SECRET_NAME.search(k)}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def run_command(command: list[str], cwd: Path, log_path: Path, timeout: float, *,
                env: dict[str, str] | None = None, on_line: Callable[[str], None] | None = None,
                max_log_bytes: int = MAX_LOG_BYTES, on_start: Callable[[int], None] | None = None) -> RunResult:
    """Run `command`; `on_start` gets the process group id as soon as it exists (to clean up
    after a harness that was killed)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        proc = subprocess.Popen(expand_command(command), cwd=cwd, env=env or clean_environment(),
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True)
    except OSError as exc:
        log_path.write_text(f"could not start {command[0]}: {exc}\n")
        return RunResult(exit_code=127, wall_seconds=0.0, timed_out=False, log_path=log_path, log_truncated=False)
    if on_start is not None:
        on_start(proc.pid)
    truncated = threading.Event()
    reader = threading.Thread(target=_copy_output, args=(proc.stdout, log_path, max_log_bytes, on_line, truncated), daemon=True)
    reader.start()
    timed_out = threading.Event()

    def on_timeout() -> None:
        timed_out.set()
        _kill_group(proc)

    # A blocking wait returns the moment the child exits (wait with a timeout polls in 50 ms sleeps).
    timer = threading.Timer(timeout, on_timeout)
    timer.daemon = True
    timer.start()
    try:
        proc.wait()
    except BaseException:  # Ctrl-C or a kill of the harness: take the experiment down with us
        _kill_group(proc)
        raise
    finally:
        timer.cancel()
        _kill_group(proc, grace=0.0)  # children that outlive the leader go too
        reader.join(timeout=10)
    timed_out = timed_out.is_set()
    wall = time.monotonic() - started
    if timed_out:
        with open(log_path, "a") as log:
            log.write(f"\n[autoresearch] killed after the {timeout:g} s timeout\n")
    return RunResult(exit_code=None if timed_out else proc.returncode, wall_seconds=wall,
                     timed_out=timed_out, log_path=log_path, log_truncated=truncated.is_set())


def _copy_output(stream, log_path: Path, max_bytes: int, on_line, truncated: threading.Event) -> None:
    written = 0
    with open(log_path, "wb") as log:
        for raw in iter(stream.readline, b""):
            if written < max_bytes:
                chunk = raw[: max_bytes - written]
                log.write(chunk)
                written += len(chunk)
                if written >= max_bytes:
                    log.write(b"\n[autoresearch] log truncated: output exceeded the size cap\n")
                    truncated.set()
                log.flush()
                if on_line is not None:
                    on_line(raw.decode("utf-8", "replace").rstrip("\r\n"))
            # past the cap the output is still drained, so the child never blocks on a full pipe
    stream.close()


def _kill_group(proc: subprocess.Popen, grace: float = KILL_GRACE_SECONDS) -> None:
    """SIGTERM the process group, then SIGKILL whatever is left after `grace` seconds."""
    try:
        pgid = os.getpgid(proc.pid)
    except ProcessLookupError:
        pgid = proc.pid  # leader gone; its group id was its pid
    if grace > 0:
        _signal_group(pgid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    _signal_group(pgid, signal.SIGKILL)
    try:
        proc.wait(timeout=grace or 1.0)
    except subprocess.TimeoutExpired:
        pass


def kill_group(pgid: int) -> None:
    """SIGKILL a process group left behind by an earlier harness (no-op if it is gone)."""
    _signal_group(pgid, signal.SIGKILL)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
