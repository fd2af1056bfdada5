"""Robust file downloads: parallel, resumable, retried, atomic.

Only the standard library is used (urllib + threads), so fetching data needs no
extra dependency. Every failure the user can meet ends in a `DownloadError`
whose message is one line: what failed and what to do about it.

Layout on disk: a file being fetched lives in ``<dest>.part``; only when all of
its bytes are there (and match the size the server announced) is it fsynced and
renamed to ``<dest>``. So "``<dest>`` exists" means "complete", and a
``.part`` left by a crash or a dropped connection is continued with an HTTP
``Range`` request on the next try or the next run.
"""

from __future__ import annotations

import errno
import http.client
import os
import random
import re
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from autoresearch.core.errors import UserError

__all__ = ["DownloadError", "download_files", "part_path"]

CHUNK_BYTES = 1024 * 1024
USER_AGENT = "autoresearch/0.1 (+urllib)"
# Retry-After from a busy server is honoured, but never beyond this, so one
# bad header cannot park the program for an hour.
MAX_RETRY_AFTER_S = 60.0
LOCAL_DATA_HINT = "use local files instead: autoresearch init DIR --dataset PATH"

Progress = Callable[[str], None]


class DownloadError(UserError):
    """A download failed for good; str(error) is one line meant for the user."""


class _Fatal(DownloadError):
    """A failure another try cannot fix (404, 403, disk full); raised at once."""


class _Stopped(Exception):
    """Another download failed (or the user interrupted), so this one stops early."""


class _Retryable(Exception):
    """A failure worth another try (network trouble, 429, 5xx, short body)."""

    def __init__(self, reason: str, *, offline: bool = False, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.offline = offline
        self.retry_after = retry_after


def part_path(dest: Path) -> Path:
    """Where the unfinished bytes of `dest` are kept."""
    return dest.with_name(dest.name + ".part")


def download_files(
    jobs: list[tuple[str, Path]],
    *,
    workers: int = 8,
    retries: int = 5,
    timeout: float = 60.0,
    backoff: float = 1.0,
    progress: Progress | None = None,
) -> list[Path]:
    """Download each ``(url, dest)`` job and return the destination paths in job order.

    Files already present at their destination are skipped. `retries` is the
    total number of tries per file; between tries the wait is
    ``backoff * 2**(try-1)`` seconds (plus a little jitter). `timeout` applies
    to connecting and to each read. `progress`, if given, receives short
    one-line messages; calls to it are serialised, never concurrent.
    """
    if retries < 1:
        raise ValueError(f"retries must be at least 1, got {retries}")
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    destinations = [Path(dest) for _, dest in jobs]
    unique_jobs = _unique_by_destination(jobs)
    if not unique_jobs:
        return destinations

    policy = _Policy(retries, timeout, backoff, _serialised(progress), threading.Event())
    stop = policy.stop
    fetch = lambda job: _download_one(job[0], job[1], policy)  # noqa: E731 - a closure keeps the call site short
    pool = ThreadPoolExecutor(max_workers=min(workers, len(unique_jobs)), thread_name_prefix="download")
    try:
        futures = [pool.submit(fetch, job) for job in unique_jobs]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        failures = [f.exception() for f in futures if f in done and f.exception() is not None]
        if failures:
            raise next((e for e in failures if not isinstance(e, _Stopped)), failures[0])
    finally:
        # After a failure or Ctrl-C, in-flight files stop at the next chunk (their
        # .part stays resumable) and queued ones never start.
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
    return destinations


def _unique_by_destination(jobs: list[tuple[str, Path]]) -> list[tuple[str, Path]]:
    """Drop repeated destinations: two threads must never write one .part file."""
    seen: dict[Path, str] = {}
    for url, dest in jobs:
        dest = Path(dest)
        if dest in seen and seen[dest] != url:
            raise ValueError(f"two different URLs want the same file {dest}: {seen[dest]} and {url}")
        seen.setdefault(dest, url)
    return [(url, dest) for dest, url in seen.items()]


def _serialised(progress: Progress | None) -> Progress:
    if progress is None:
        return lambda message: None
    lock = threading.Lock()

    def report(message: str) -> None:
        with lock:
            progress(message)

    return report


@dataclass(frozen=True)
class _Policy:
    """How every file of one `download_files` call is fetched."""
    retries: int
    timeout: float
    backoff: float
    report: Progress
    stop: threading.Event  # set after a failure or Ctrl-C: in-flight files stop at the next chunk


def _download_one(url: str, dest: Path, policy: _Policy) -> Path:
    """Fetch one file with retries; return `dest` or raise DownloadError."""
    retries, timeout, backoff, report, stop = policy.retries, policy.timeout, policy.backoff, policy.report, policy.stop
    if urlsplit(url).scheme not in ("http", "https"):
        raise _Fatal(
            f"bad URL {url!r} for {dest.name}: it must start with http:// or https://; check the base-URL setting"
        )
    if dest.exists():
        report(f"have {dest.name} (already downloaded)")
        return dest
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _local_write_failure(dest.parent, exc) from None

    last: _Retryable | None = None
    for attempt in range(1, retries + 1):
        if stop.is_set():
            raise _Stopped()
        try:
            size = _transfer(url, dest, timeout=timeout, stop=stop)
            report(f"got {dest.name} ({_human_size(size)})")
            return dest
        except _Retryable as failure:
            last = failure
            if attempt < retries:
                delay = _retry_delay(backoff, attempt, failure.retry_after)
                report(f"retry {dest.name} in {delay:.1f}s after {failure.reason} (try {attempt + 1}/{retries})")
                stop.wait(delay)
    assert last is not None
    raise DownloadError(_gave_up_message(url, dest, retries, last)) from None


def _retry_delay(backoff: float, attempt: int, retry_after: float | None) -> float:
    delay = backoff * 2 ** (attempt - 1)
    # Jitter spreads the retries of parallel workers hitting the same server.
    delay *= 1.0 + 0.25 * random.random()
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER_S))
    return delay


def _transfer(url: str, dest: Path, *, timeout: float, stop: threading.Event) -> int:
    """One try: continue or start `dest`.part, then move it into place. Returns the file size."""
    part = part_path(dest)
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)

    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            start, expected_total = _where_body_starts(response, offset, part)
            _write_body(response, part, start, stop)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            return _finish_after_416(exc, dest, part, offset)
        raise _http_failure(url, exc) from None
    except _Retryable:
        raise
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise _network_failure(exc) from None

    size = part.stat().st_size
    if expected_total is not None and size != expected_total:
        # The connection ended early; keep the .part so the next try resumes.
        raise _Retryable(f"transfer cut off at {size} of {expected_total} bytes")
    _finalise(part, dest)
    return size


def _where_body_starts(response: http.client.HTTPResponse, offset: int, part: Path) -> tuple[int, int | None]:
    """From the status and headers: the file offset the body starts at and the full file size, if known."""
    if response.status == 206:
        match = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+|\*)", (response.headers.get("Content-Range") or "").strip())
        if match is None or int(match.group(1)) != offset:
            # A range we did not ask for: safest is to throw the partial data away and start over.
            _remove_quietly(part)
            raise _Retryable("server answered with an unexpected byte range")
        total = match.group(3)
        return offset, (None if total == "*" else int(total))
    # 200: the server ignored Range (or there was none), so the body is the whole file.
    length = response.headers.get("Content-Length")
    return 0, (int(length) if length and length.isdigit() else None)


def _write_body(response: http.client.HTTPResponse, part: Path, start: int, stop: threading.Event) -> None:
    """Append the body to `part` (truncating it to `start` first) and fsync it."""
    try:
        out = open(part, "r+b" if start and part.exists() else "wb")
    except OSError as exc:
        raise _local_write_failure(part, exc) from None
    with out:
        try:
            out.truncate(start)
            out.seek(start)
        except OSError as exc:
            raise _local_write_failure(part, exc) from None
        while not stop.is_set():
            chunk = response.read(CHUNK_BYTES)  # network errors propagate to the caller's retry logic
            if not chunk:
                break
            try:
                out.write(chunk)
            except OSError as exc:
                raise _local_write_failure(part, exc) from None
        try:
            out.flush()
            os.fsync(out.fileno())
        except OSError as exc:
            raise _local_write_failure(part, exc) from None
    if stop.is_set():
        raise _Stopped()


def _finish_after_416(exc: urllib.error.HTTPError, dest: Path, part: Path, offset: int) -> int:
    """416 on a resume: either the .part already holds the whole file, or it is bogus."""
    match = re.fullmatch(r"bytes \*/(\d+)", (exc.headers.get("Content-Range") or "").strip())
    if match is not None and int(match.group(1)) == offset:
        _finalise(part, dest)
        return offset
    _remove_quietly(part)
    raise _Retryable("server refused to resume the partial file (HTTP 416); starting over")


def _finalise(part: Path, dest: Path) -> None:
    """Atomically publish the finished file."""
    try:
        os.replace(part, dest)
    except OSError as exc:
        raise _local_write_failure(dest, exc) from None
    _fsync_directory(dest.parent)


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable; not possible on every platform, hence best effort.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove_quietly(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


# --- turning exceptions into retry decisions and one-line messages ---------


def _http_failure(url: str, exc: urllib.error.HTTPError) -> Exception:
    code = exc.code
    if code in (408, 429) or code >= 500:
        return _Retryable(f"HTTP {code} {exc.reason}".strip(), retry_after=_retry_after_seconds(exc))
    host = _host(url)
    name = _name(url)
    return _Fatal(
        f"could not download {name}: {host} answered HTTP {code} {_one_line(str(exc.reason))} for {url}; "
        f"check the URL (or its base-URL setting) or {LOCAL_DATA_HINT}"
    )


def _retry_after_seconds(exc: urllib.error.HTTPError) -> float | None:
    value = (exc.headers.get("Retry-After") or "").strip() if exc.headers else ""
    return float(value) if value.isdigit() else None


# errno values meaning "the network or the host is not there at all".
_OFFLINE_ERRNOS = {errno.ECONNREFUSED, errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL}


def _network_failure(exc: BaseException) -> _Retryable:
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, socket.gaierror):
        return _Retryable("host name lookup failed", offline=True)
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return _Retryable("timed out")
    if isinstance(reason, OSError) and reason.errno in _OFFLINE_ERRNOS:
        return _Retryable(_one_line(reason.strerror or "connection failed"), offline=True)
    if isinstance(reason, (ConnectionError, http.client.HTTPException)):
        return _Retryable(f"connection dropped ({type(reason).__name__})")
    return _Retryable(_one_line(str(reason)) or type(reason).__name__)


def _local_write_failure(path: Path, exc: OSError) -> _Fatal:
    why = _one_line(exc.strerror or str(exc))
    return _Fatal(f"cannot write {path}: {why}; free some disk space or check permissions of {path.parent}")


def _gave_up_message(url: str, dest: Path, tries: int, last: _Retryable) -> str:
    host = _host(url)
    tail = f"could not download {dest.name} after {tries} tries"
    if last.offline:
        return f"cannot reach {host} (offline?): {tail}; check the network or {LOCAL_DATA_HINT}"
    return (
        f"{host} kept failing ({last.reason}): {tail}; run again later (partial data is kept and resumes) "
        f"or {LOCAL_DATA_HINT}"
    )


def _host(url: str) -> str:
    return urlsplit(url).hostname or url


def _name(url: str) -> str:
    return urlsplit(url).path.rsplit("/", 1)[-1] or url


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"
