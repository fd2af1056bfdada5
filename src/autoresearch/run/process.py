"""Runner: runs one experiment's command under a hard timeout and captures its output.

The command runs in its own process group, so the timeout (or Ctrl-C) kills it together with any
children it started. Output goes to a log file, capped in size, and line by line to a callback.
"""

from __future__ import annotations

import os
import re
import resource
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

MAX_LOG_BYTES = 20 * 2**20
RUN_MARKER = "AUTORESEARCH_RUN"
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
    killed_for: str = ""  # "" or why the harness stopped it early: a memory or process limit, its `stop_check`


@dataclass(frozen=True)
class Limits:
    """Resource limits of one run; 0 means none."""
    memory_bytes: int = 0  # resident memory of all the run's processes together
    max_processes: int = 0
    address_space: bool = False  # also cap each process's address space (immediate; breaks CUDA)


def expand_command(command: list[str]) -> list[str]:
    """`{python}` is the interpreter running the harness, so the task uses the same environment."""
    return [part.replace("{python}", sys.executable) for part in command]


def clean_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not SECRET_NAME.search(k)}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


@dataclass(frozen=True)
class Command:
    """One command to run: what, where, where its output goes, and its limits."""
    argv: list[str]
    cwd: Path
    log_path: Path
    timeout: float  # wall-clock seconds after which the whole process group is killed
    env: dict[str, str] | None = None  # default: the harness's environment without secrets
    limits: Limits = Limits()
    max_log_bytes: int = MAX_LOG_BYTES
    find_strays: bool = True  # look for children that left the process group (a PID namespace kills them itself)
    pass_fds: tuple[int, ...] = ()  # file descriptors the command inherits (the harness clock's channel)
    stop_check: Callable[[], str] | None = None  # asked by the watchdog: a reason stops the run (the live budget)


def run_command(command: Command, on_line: Callable[[str], None] | None = None,
                on_start: Callable[[int], None] | None = None) -> RunResult:
    """Run `command`; `on_start` gets the process group id as soon as it exists (to clean up
    after a harness that was killed), `on_line` each line of output."""
    log_path = command.log_path
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = dict(command.env or clean_environment())
    env.setdefault(RUN_MARKER, secrets.token_hex(8))  # finds children that leave the process group
    started = time.monotonic()
    try:
        proc = subprocess.Popen(expand_command(command.argv), cwd=command.cwd, env=env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=_rlimits(command.limits), pass_fds=command.pass_fds)
    except OSError as exc:
        log_path.write_text(f"could not start {command.argv[0]}: {exc}\n")
        return RunResult(exit_code=127, wall_seconds=0.0, timed_out=False, log_path=log_path, log_truncated=False)
    if on_start is not None:
        on_start(proc.pid)
    watchdog = Watchdog(proc, command.limits, command.stop_check)
    watchdog.start()
    truncated = threading.Event()
    reader = threading.Thread(target=_copy_output, args=(proc.stdout, log_path, command.max_log_bytes, on_line,
                                                         truncated), daemon=True)
    reader.start()
    timed_out = _wait(proc, command.timeout, watchdog, reader, env[RUN_MARKER] if command.find_strays else "")
    wall = time.monotonic() - started
    if timed_out or watchdog.killed_for:
        with open(log_path, "a") as log:
            log.write(f"\n[autoresearch] killed: {watchdog.killed_for or f'the {command.timeout:g} s timeout'}\n")
    killed = timed_out or bool(watchdog.killed_for)
    return RunResult(exit_code=None if killed else proc.returncode, wall_seconds=wall, timed_out=timed_out,
                     log_path=log_path, log_truncated=truncated.is_set(), killed_for=watchdog.killed_for)


def _wait(proc: subprocess.Popen, timeout: float, watchdog: Watchdog, reader: threading.Thread, marker: str) -> bool:
    """Wait for the command to end (killing it at the timeout), then for everything it left; True if timed out."""
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
        watchdog.stop()
        _kill_group(proc, grace=0.0)  # children that outlive the leader go too
        if marker:
            kill_marked(marker)  # and those that left the group
        reader.join(timeout=10)
    return timed_out.is_set()


def _rlimits(limits: Limits):
    """Limits set in the child before it starts (inherited by everything it starts). The process
    count is the watchdog's job: RLIMIT_NPROC counts all of the user's processes, not the run's."""
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if limits.memory_bytes and limits.address_space:
            resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    return apply


class Watchdog(threading.Thread):
    """Polls the run's processes (the leader and its descendants) and kills them all when their
    resident memory or their number passes the limits, or when `stop_check` gives a reason."""
    interval = 0.2

    def __init__(self, proc: subprocess.Popen, limits: Limits, stop_check: Callable[[], str] | None = None):
        super().__init__(daemon=True)
        self.proc, self.limits, self.stop_check = proc, limits, stop_check
        self.killed_for = ""
        self._stop_event = threading.Event()

    def run(self) -> None:
        watch_processes = bool(self.limits.memory_bytes or self.limits.max_processes) and Path("/proc").is_dir()
        if not (watch_processes or self.stop_check):
            return
        while not self._stop_event.wait(self.interval):
            pids = run_processes(self.proc.pid) if watch_processes else {self.proc.pid}
            self.killed_for = self._stop_check() or (self._over_limits(pids) if watch_processes else "")
            if self.killed_for:
                _kill_group(self.proc, grace=0.0)
                for pid in pids:
                    _kill_pid(pid)
                return

    def _stop_check(self) -> str:
        try:
            return self.stop_check() if self.stop_check else ""
        except Exception:  # noqa: BLE001 - a check that fails stops nothing; the limits still hold
            return ""

    def _over_limits(self, pids: set[int]) -> str:
        if self.limits.max_processes and len(pids) > self.limits.max_processes:
            return f"more than {self.limits.max_processes} processes"
        if self.limits.memory_bytes and _resident_bytes(pids) > self.limits.memory_bytes:
            return f"out of memory: over the {self.limits.memory_bytes / 2**30:.1f} GB limit"
        return ""

    def stop(self) -> None:
        self._stop_event.set()


def run_processes(leader: int) -> set[int]:
    """Pids of the leader and all its descendants (cheap: one read of /proc/*/stat each)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    found, frontier = {leader}, [leader]
    while frontier:
        for child in children.get(frontier.pop(), []):
            if child not in found:
                found.add(child)
                frontier.append(child)
    return found


def marked_processes(marker: str) -> set[int]:
    """Pids whose environment carries this run's marker ("" = any run's)."""
    needle = f"{RUN_MARKER}={marker}".encode()
    pids = set()
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if needle in environ.read_bytes():
                pids.add(int(environ.parent.name))
        except (OSError, ValueError):
            continue
    pids.discard(os.getpid())
    return pids


def record_processes(path: Path, marker: str) -> Callable[[int], None]:
    """An `on_start` that notes the run's process group and marker in `path`, so that a harness
    started after this one was killed can find and kill what it left (`kill_recorded`)."""
    return lambda pgid: path.write_text(f"{pgid} {marker}")


def kill_recorded(path: Path) -> None:
    """Kill the processes `record_processes` noted in `path`, then forget them."""
    pgid, _, marker = path.read_text().strip().partition(" ")
    if pgid.isdigit() and int(pgid) > 1:
        kill_group(int(pgid))
    if marker:
        kill_marked(marker)
    path.unlink(missing_ok=True)


def kill_marked(marker: str) -> None:
    """SIGKILL every process that still carries this run's marker (daemonised children)."""
    if Path("/proc").is_dir():
        for pid in marked_processes(marker):
            _kill_pid(pid)


def _resident_bytes(pids: set[int]) -> int:
    page = os.sysconf("SC_PAGE_SIZE")
    total = 0
    for pid in pids:
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page
        except (OSError, IndexError, ValueError):
            continue
    return total


def _kill_pid(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


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
