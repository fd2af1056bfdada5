"""Real downloads from a real HTTP server on 127.0.0.1 (no mocks, no internet).

`FakeHub` serves files from a folder, understands ``Range: bytes=N-`` and can be
told to misbehave for the next requests of a file: answer 503/429/404, or send
half the body and hang up.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from autoresearch.data.download import DownloadError, download_files, part_path
from autoresearch.data.readers import iter_documents
from autoresearch.data.remote import (
    CLIMBMIX_BASE_URL,
    CLIMBMIX_URL_ENV,
    TINYSTORIES_BASE_URL,
    TINYSTORIES_URL_ENV,
    climbmix_base_url,
    climbmix_shard_name,
    fetch_climbmix,
    fetch_remote_dataset,
    fetch_tinystories,
    tinystories_base_url,
)

FAST = {"backoff": 0.001, "timeout": 5.0}


# --- the local server -------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    path: str
    range: str | None


class FakeHub:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = ""  # set once the server is listening
        self.honor_range = True
        self.delay_s = 0.0
        self.seen: list[Seen] = []
        self.bytes_sent_before_drop: list[int] = []
        self.max_in_flight = 0
        self._in_flight = 0
        self._plans: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    def misbehave(self, path: str, *actions: str) -> None:
        """Script the next requests for `path`: "503", "429", "404", "drop"."""
        self._plans.setdefault(path, []).extend(actions)

    def requests_for(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path == path]

    def _start(self, path: str, range_header: str | None) -> str | None:
        with self._lock:
            self.seen.append(Seen(path, range_header))
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            plan = self._plans.get(path)
            return plan.pop(0) if plan else None

    def _finish(self) -> None:
        with self._lock:
            self._in_flight -= 1


class HubHandler(BaseHTTPRequestHandler):
    server: ThreadingHTTPServer  # with a .hub attribute

    def do_GET(self) -> None:  # noqa: N802 - name fixed by http.server
        hub: FakeHub = self.server.hub  # type: ignore[attr-defined]
        path = unquote(urlsplit(self.path).path).lstrip("/")
        action = hub._start(path, self.headers.get("Range"))
        try:
            time.sleep(hub.delay_s)
            self._answer(hub, path, action)
        finally:
            hub._finish()

    def _answer(self, hub: FakeHub, path: str, action: str | None) -> None:
        if action in ("503", "429", "404"):
            return self._status_only(int(action))
        file = hub.root / path
        if not file.is_file():
            return self._status_only(404)
        data = file.read_bytes()
        start = self._range_start() if hub.honor_range else None
        if start is not None and start >= len(data):
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(data)}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        body = data if start is None else data[start:]
        self.send_response(200 if start is None else 206)
        if start is not None:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if action == "drop":
            half = len(body) // 2
            self.wfile.write(body[:half])
            self.wfile.flush()
            hub.bytes_sent_before_drop.append(half)
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return None
        self.wfile.write(body)
        return None

    def _range_start(self) -> int | None:
        value = self.headers.get("Range")
        if not value or not value.startswith("bytes=") or not value.endswith("-"):
            return None
        return int(value[len("bytes=") : -1])

    def _status_only(self, code: int) -> None:
        body = f"status {code}\n".encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # keep pytest output clean
        pass


@pytest.fixture(autouse=True)
def no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    # A proxy from the environment must never see requests meant for 127.0.0.1.
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("NO_PROXY", "*")


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[FakeHub]:
    root = tmp_path / "served"
    root.mkdir()
    fake = FakeHub(root)
    server = ThreadingHTTPServer(("127.0.0.1", 0), HubHandler)
    server.daemon_threads = True
    server.hub = fake  # type: ignore[attr-defined]
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def write_shard(path: Path, seed: int, rows: int = 400) -> bytes:
    """A small parquet file with a "text" column, several row groups; returns its bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    texts = [f"document {seed}-{i}: " + "lorem ipsum " * (i % 7 + 1) for i in range(rows)]
    pq.write_table(pa.table({"text": texts}), path, row_group_size=100)
    return path.read_bytes()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def assert_one_line_error(error: BaseException) -> str:
    message = str(error)
    assert message and "\n" not in message
    # No chained traceback to show the user.
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)
    return message


# --- download_files ---------------------------------------------------------


def test_parallel_fetch_of_several_shards(hub: FakeHub, tmp_path: Path) -> None:
    originals = {f"shard_{i}.parquet": write_shard(hub.root / f"shard_{i}.parquet", seed=i) for i in range(5)}
    hub.delay_s = 0.2  # long enough that parallel requests overlap
    out = tmp_path / "out"
    messages: list[str] = []

    paths = download_files(
        [(f"{hub.url}/{name}", out / name) for name in originals], workers=4, progress=messages.append, **FAST
    )

    assert paths == [out / name for name in originals]
    for name, data in originals.items():
        assert (out / name).read_bytes() == data
        assert not part_path(out / name).exists()
        assert len(hub.requests_for(name)) == 1
    assert hub.max_in_flight >= 2
    assert len(messages) == 5 and all(m.startswith("got ") for m in messages)


def test_retry_after_503s_succeeds(hub: FakeHub, tmp_path: Path) -> None:
    data = write_shard(hub.root / "a.parquet", seed=1)
    hub.misbehave("a.parquet", "503", "503")

    [path] = download_files([(f"{hub.url}/a.parquet", tmp_path / "a.parquet")], retries=5, **FAST)

    assert path.read_bytes() == data
    assert len(hub.requests_for("a.parquet")) == 3


def test_retry_after_429_succeeds(hub: FakeHub, tmp_path: Path) -> None:
    data = write_shard(hub.root / "a.parquet", seed=1)
    hub.misbehave("a.parquet", "429")

    [path] = download_files([(f"{hub.url}/a.parquet", tmp_path / "a.parquet")], **FAST)

    assert path.read_bytes() == data
    assert len(hub.requests_for("a.parquet")) == 2


def test_persistent_503_gives_up_with_one_line_error(hub: FakeHub, tmp_path: Path) -> None:
    write_shard(hub.root / "a.parquet", seed=1)
    hub.misbehave("a.parquet", "503", "503", "503")

    with pytest.raises(DownloadError) as caught:
        download_files([(f"{hub.url}/a.parquet", tmp_path / "a.parquet")], retries=3, **FAST)

    message = assert_one_line_error(caught.value)
    assert "HTTP 503" in message and "a.parquet" in message and "after 3 tries" in message
    assert len(hub.requests_for("a.parquet")) == 3
    assert not (tmp_path / "a.parquet").exists()


def test_interrupted_transfer_resumes_with_range_request(hub: FakeHub, tmp_path: Path) -> None:
    data = write_shard(hub.root / "a.parquet", seed=1)
    hub.misbehave("a.parquet", "drop")

    [path] = download_files([(f"{hub.url}/a.parquet", tmp_path / "a.parquet")], **FAST)

    first, second = hub.requests_for("a.parquet")
    [sent] = hub.bytes_sent_before_drop
    assert 0 < sent < len(data)
    assert first.range is None
    assert second.range == f"bytes={sent}-"
    assert path.read_bytes() == data
    assert not part_path(path).exists()


def test_part_left_by_an_earlier_run_is_continued(hub: FakeHub, tmp_path: Path) -> None:
    data = write_shard(hub.root / "a.parquet", seed=1)
    dest = tmp_path / "a.parquet"
    part_path(dest).write_bytes(data[:1000])

    download_files([(f"{hub.url}/a.parquet", dest)], **FAST)

    assert hub.requests_for("a.parquet") == [Seen("a.parquet", "bytes=1000-")]
    assert dest.read_bytes() == data


def test_server_that_ignores_range_makes_the_download_restart_from_zero(hub: FakeHub, tmp_path: Path) -> None:
    data = write_shard(hub.root / "a.parquet", seed=1)
    hub.honor_range = False
    dest = tmp_path / "a.parquet"
    part_path(dest).write_bytes(b"stale bytes that must not survive")

    download_files([(f"{hub.url}/a.parquet", dest)], **FAST)

    assert hub.requests_for("a.parquet")[0].range is not None  # it did ask to resume...
    assert dest.read_bytes() == data  # ...but the 200 answer replaced everything


def test_part_holding_the_whole_file_is_just_finished(hub: FakeHub, tmp_path: Path) -> None:
    data = write_shard(hub.root / "a.parquet", seed=1)
    dest = tmp_path / "a.parquet"
    part_path(dest).write_bytes(data)  # crashed between the last byte and the rename

    download_files([(f"{hub.url}/a.parquet", dest)], **FAST)

    assert hub.requests_for("a.parquet") == [Seen("a.parquet", f"bytes={len(data)}-")]  # answered 416
    assert dest.read_bytes() == data


def test_connection_dropping_every_time_keeps_the_part_for_later(hub: FakeHub, tmp_path: Path) -> None:
    data = write_shard(hub.root / "a.parquet", seed=1)
    hub.misbehave("a.parquet", "drop", "drop")
    dest = tmp_path / "a.parquet"

    with pytest.raises(DownloadError) as caught:
        download_files([(f"{hub.url}/a.parquet", dest)], retries=2, **FAST)

    message = assert_one_line_error(caught.value)
    assert "cut off" in message and "partial data is kept" in message
    assert not dest.exists()
    kept = part_path(dest).read_bytes()
    assert 0 < len(kept) < len(data) and data.startswith(kept)

    download_files([(f"{hub.url}/a.parquet", dest)], **FAST)  # the next run picks up where it stopped
    assert dest.read_bytes() == data
    assert hub.seen[-1].range == f"bytes={len(kept)}-"


def test_404_fails_fast_with_one_line_error(hub: FakeHub, tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(DownloadError) as caught:
        download_files([(f"{hub.url}/missing.parquet", tmp_path / "missing.parquet")], retries=5, backoff=10.0)

    message = assert_one_line_error(caught.value)
    assert "HTTP 404" in message and "missing.parquet" in message and "--dataset PATH" in message
    assert len(hub.requests_for("missing.parquet")) == 1  # no retries...
    assert time.monotonic() - started < 5  # ...and no backoff sleeping


def test_one_failing_file_fails_the_batch(hub: FakeHub, tmp_path: Path) -> None:
    write_shard(hub.root / "a.parquet", seed=1)
    jobs = [(f"{hub.url}/a.parquet", tmp_path / "a.parquet"), (f"{hub.url}/nope.parquet", tmp_path / "nope.parquet")]

    with pytest.raises(DownloadError, match="nope.parquet"):
        download_files(jobs, workers=2, **FAST)


def test_closed_port_gives_one_line_offline_error(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}/shard_00003.parquet"

    with pytest.raises(DownloadError) as caught:
        download_files([(url, tmp_path / "shard_00003.parquet")], retries=3, **FAST)

    message = assert_one_line_error(caught.value)
    assert message == (
        "cannot reach 127.0.0.1 (offline?): could not download shard_00003.parquet after 3 tries; "
        "check the network or use local files instead: autoresearch init DIR --dataset PATH"
    )


def test_complete_files_are_not_fetched_again(hub: FakeHub, tmp_path: Path) -> None:
    for i in range(3):
        write_shard(hub.root / f"s{i}.parquet", seed=i)
    jobs = [(f"{hub.url}/s{i}.parquet", tmp_path / f"s{i}.parquet") for i in range(3)]

    download_files(jobs, **FAST)
    assert len(hub.seen) == 3
    messages: list[str] = []
    download_files(jobs, progress=messages.append, **FAST)

    assert len(hub.seen) == 3
    assert all("already downloaded" in m for m in messages)


def test_bad_url_scheme_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(DownloadError) as caught:
        download_files([("huggingface.co/x.parquet", tmp_path / "x.parquet")], **FAST)
    assert "http://" in assert_one_line_error(caught.value)


# --- the two web datasets, pointed at the local server ----------------------


def serve_climbmix(hub: FakeHub, indices: list[int]) -> dict[str, bytes]:
    return {
        climbmix_shard_name(i): write_shard(hub.root / "climbmix" / climbmix_shard_name(i), seed=i) for i in indices
    }


def test_fetch_climbmix_uses_the_env_url_and_pins_the_last_shard_for_validation(
    hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    served = serve_climbmix(hub, [0, 1, 2, 6542])
    monkeypatch.setenv(CLIMBMIX_URL_ENV, f"{hub.url}/climbmix/")

    train, val = fetch_climbmix(tmp_path / "data", num_train_shards=3, **FAST)

    assert [p.name for p in train] == ["shard_00000.parquet", "shard_00001.parquet", "shard_00002.parquet"]
    assert [p.name for p in val] == ["shard_06542.parquet"]
    for path in train + val:
        assert path.read_bytes() == served[path.name]
    assert sorted(s.path for s in hub.seen) == sorted(f"climbmix/{name}" for name in served)


def test_fetch_climbmix_base_url_argument_beats_env(
    hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve_climbmix(hub, [0, 6542])
    monkeypatch.setenv(CLIMBMIX_URL_ENV, f"http://127.0.0.1:{closed_port()}")

    train, val = fetch_climbmix(tmp_path, num_train_shards=1, base_url=f"{hub.url}/climbmix", **FAST)

    assert len(train) == 1 and len(val) == 1 and all(p.exists() for p in train + val)


def test_fetch_climbmix_offline_error_names_the_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CLIMBMIX_URL_ENV, f"http://127.0.0.1:{closed_port()}/datasets")
    with pytest.raises(DownloadError, match=r"^cannot reach 127\.0\.0\.1 \(offline\?\)"):
        fetch_climbmix(tmp_path, num_train_shards=1, retries=1, **FAST)


def test_fetch_climbmix_rejects_impossible_shard_counts(tmp_path: Path) -> None:
    for bad in (0, 6543):
        with pytest.raises(ValueError, match="num_train_shards"):
            fetch_climbmix(tmp_path, num_train_shards=bad)


def test_default_urls_mirror_the_original_project(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CLIMBMIX_URL_ENV, raising=False)
    monkeypatch.delenv(TINYSTORIES_URL_ENV, raising=False)
    assert climbmix_base_url() == CLIMBMIX_BASE_URL
    assert CLIMBMIX_BASE_URL == "https://huggingface.co/datasets/karpathy/climbmix-400b-shuffle/resolve/main"
    assert climbmix_shard_name(6542) == "shard_06542.parquet"
    assert tinystories_base_url() == TINYSTORIES_BASE_URL
    assert TINYSTORIES_BASE_URL == "https://huggingface.co/datasets/roneneldan/TinyStories/resolve/main"


def test_fetch_tinystories_then_read_the_stories(
    hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = hub.root / "tinystories"
    folder.mkdir()
    train_text = "Once upon a time there was a cat.\n<|endoftext|>\nTom had a red ball.\nHe liked it.\n<|endoftext|>\n"
    (folder / "TinyStoriesV2-GPT4-train.txt").write_text(train_text, encoding="utf-8")
    (folder / "TinyStoriesV2-GPT4-valid.txt").write_text("Lily saw a bird.\n<|endoftext|>\n", encoding="utf-8")
    monkeypatch.setenv(TINYSTORIES_URL_ENV, f"http://127.0.0.1:{closed_port()}")  # the argument wins

    train, val = fetch_remote_dataset("tinystories", tmp_path / "ts", base_url=f"{hub.url}/tinystories", **FAST)

    assert [p.name for p in train] == ["TinyStoriesV2-GPT4-train.txt"]
    assert [p.name for p in val] == ["TinyStoriesV2-GPT4-valid.txt"]
    assert list(iter_documents(train[0])) == ["Once upon a time there was a cat.", "Tom had a red ball.\nHe liked it."]
    assert list(iter_documents(val[0])) == ["Lily saw a bird."]


def test_fetch_tinystories_from_env_url(hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TinyStoriesV2-GPT4-train.txt", "TinyStoriesV2-GPT4-valid.txt"):
        (hub.root / name).write_text(f"{name}\n", encoding="utf-8")
    monkeypatch.setenv(TINYSTORIES_URL_ENV, hub.url)

    train, val = fetch_tinystories(tmp_path, **FAST)

    assert train[0].read_text() == "TinyStoriesV2-GPT4-train.txt\n"
    assert val[0].read_text() == "TinyStoriesV2-GPT4-valid.txt\n"


def test_unknown_web_dataset_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown web dataset 'fineweb'; choose one of: climbmix, tinystories"):
        fetch_remote_dataset("fineweb", tmp_path)
