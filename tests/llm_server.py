"""A scripted LLM server on loopback for end-to-end tests with the real OpenAI and Anthropic SDKs.

It speaks just enough of both wire formats for an agent loop:

* ``POST /v1/chat/completions`` (OpenAI Chat Completions), JSON or SSE stream (``"stream": true``);
* ``POST /v1/messages`` (Anthropic Messages), JSON or SSE stream;
* ``GET /v1/models`` lists the one model.

Each POST takes the next scripted ``Reply``; when the script is empty the ``responder`` (if any) makes one,
otherwise the server answers 500 "script exhausted" with ``x-should-retry: false`` so that a test making one
call too many fails at once instead of after the SDK's retries.

    with ScriptedLLMServer(["hello", Reply(status=429, retry_after=0), "again"]) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="x")
        ...
        assert server.requests[0]["json"]["messages"][0]["content"] == "hi"

Prompt caching, as each API reports it, with ``ScriptedLLMServer(count_tokens=True)``: a request's tokens are
its texts' characters // 4, and the server keeps the texts of earlier requests. OpenAI: ``prompt_tokens_details.
cached_tokens`` is the longest prefix (of the system and messages' texts, concatenated) shared with an earlier
request to the same model, rounded down to a multiple of 128 tokens, and 0 under 1024. Anthropic: the prefix up to
the last ``cache_control`` breakpoint cached before is read (``cache_read_input_tokens``); the prefix up to each
later breakpoint, when it has 1024 tokens or more, is written (``cache_creation_input_tokens``, then cached);
``input_tokens`` is the rest. A Reply's own ``input_tokens`` wins (reported as is, no caching); without
``count_tokens`` a Reply's input tokens are 100 unless it gives them.

Standard library only; the server runs ``ThreadingHTTPServer`` in a background thread.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable
from urllib.parse import urlsplit

OPENAI_CHAT = "/v1/chat/completions"
ANTHROPIC_MESSAGES = "/v1/messages"
MODELS = "/v1/models"


@dataclass
class Reply:
    """One scripted answer."""

    text: str = ""                    # assistant text (the error message when status >= 400)
    status: int = 200                 # e.g. 429 or 500 to fail this request
    retry_after: float | None = None  # sent as a Retry-After header (meant for 429/503)
    delay: float = 0.0                # seconds to wait before answering (to trigger client timeouts)
    raw_body: str | None = None       # sent verbatim with `status` (malformed responses)
    input_tokens: int | None = None   # None: counted from the request with count_tokens, else 100
    output_tokens: int = 50
    thinking: str = ""                # Anthropic: a thinking block before the text (extended thinking)


Responder = Callable[[dict], "Reply | str"]

# Error "type" per status in each provider's error JSON; both SDKs pick their exception class from the status.
DEFAULT_INPUT_TOKENS = 100  # a Reply's input tokens when it gives none and the server does not count them
CACHE_MIN_TOKENS = 1024  # both APIs cache no prefix shorter than this
OPENAI_CACHE_STEP = 128  # OpenAI reads its cache in steps of this many tokens
_OPENAI_ERRORS = {401: ("invalid_request_error", "invalid_api_key"), 404: ("invalid_request_error", "not_found"),
                  429: ("requests", "rate_limit_exceeded")}
_ANTHROPIC_ERRORS = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
                     403: "permission_error", 404: "not_found_error", 413: "request_too_large",
                     429: "rate_limit_error", 500: "api_error", 503: "api_error", 529: "overloaded_error"}


def _as_reply(reply: Reply | str) -> Reply:
    return Reply(text=reply) if isinstance(reply, str) else reply


def _tokens(chars: int) -> int:
    return chars // 4


def _texts(content: Any) -> list[str]:
    """The texts of a message's content: a string, or a list of blocks/parts with "text"."""
    if isinstance(content, str):
        return [content]
    return [block.get("text", "") for block in content or [] if isinstance(block, dict)]


def _pieces(text: str, size: int = 16) -> list[str]:
    """Split text into stream deltas (at least one, so an empty answer still streams a delta)."""
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


class ScriptedLLMServer:
    """Context manager: a loopback HTTP server answering with scripted replies."""

    def __init__(self, replies: list[Reply | str] | None = None, *, responder: Responder | None = None,
                 latency: float = 0.0, model: str = "scripted-model", count_tokens: bool = False) -> None:
        self.model = model
        self.latency = latency
        self.responder = responder
        self.count_tokens = count_tokens  # count input tokens from the requests and report prompt caching
        self._openai_seen: list[tuple[str, str]] = []  # (model, text) of each earlier OpenAI request
        self._anthropic_cache: set[tuple] = set()  # (model, blocks up to a breakpoint) written to the cache
        self._script: deque[Reply] = deque(_as_reply(r) for r in replies or [])
        self._requests: list[dict] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()          # wakes handlers sleeping in delay/latency
        self._connections: set[socket.socket] = set()
        self._handler_threads: set[threading.Thread] = set()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------------------------------

    def start(self) -> ScriptedLLMServer:
        self._httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        # A short poll interval keeps shutdown() fast (it waits for the serve loop to notice).
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="scripted-llm-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._stopping.set()
        self._httpd.shutdown()
        # Handler threads block reading the next request on kept-alive connections; closing the sockets ends them.
        with self._lock:
            connections, threads = list(self._connections), list(self._handler_threads)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._httpd.server_close()
        for thread in threads:
            thread.join(timeout=1.0)
        if self._thread is not None:
            self._thread.join(timeout=1.0)
        self._httpd = None

    def __enter__(self) -> ScriptedLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- public API ------------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("server not started; use it as a context manager")
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        """For openai.OpenAI(base_url=...): the SDK appends "/chat/completions" to it."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def anthropic_base_url(self) -> str:
        """For anthropic.Anthropic(base_url=...): the SDK appends "/v1/messages" to it."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def requests(self) -> list[dict]:
        """Every request received, in order: {"method", "path", "headers" (lower-cased keys), "json"}."""
        with self._lock:
            return list(self._requests)

    def add(self, *replies: Reply | str) -> None:
        """Append replies to the script."""
        with self._lock:
            self._script.extend(_as_reply(r) for r in replies)

    # --- used by the handler ---------------------------------------------------------------------------------

    def _record(self, method: str, path: str, headers: dict[str, str], body: Any) -> None:
        with self._lock:
            self._requests.append({"method": method, "path": path, "headers": headers, "json": body})

    def _next_reply(self, request: dict) -> tuple[Reply, bool]:
        """The reply for this request, and whether it is a harness error the client must not retry."""
        with self._lock:
            if self._script:
                return self._script.popleft(), False
        if self.responder is None:
            return Reply(status=500, text="script exhausted: the test made more LLM calls than it scripted"), True
        try:  # outside the lock: a responder may be slow, and concurrent requests should overlap
            return _as_reply(self.responder(request)), False
        except Exception as exc:  # noqa: BLE001 - report the responder's bug to the client, loudly
            return Reply(status=500, text=f"responder raised {exc!r}"), True

    def _usage(self, provider: str, body: dict, reply: Reply) -> dict:
        """The usage block of the answer to `body`, in `provider`'s shape; records the request's prefixes."""
        model = str(body.get("model"))
        with self._lock:
            if provider == "openai":
                total, cached = self._openai_cache(model, body)
            else:
                total, cached, written = self._anthropic_cache_use(model, body)
        if reply.input_tokens is not None or not self.count_tokens:  # the Reply's tokens, no caching
            total = DEFAULT_INPUT_TOKENS if reply.input_tokens is None else reply.input_tokens
            if provider == "openai":
                return {"prompt_tokens": total, "completion_tokens": reply.output_tokens,
                        "total_tokens": total + reply.output_tokens}
            return {"input_tokens": total, "output_tokens": reply.output_tokens}
        if provider == "openai":
            return {"prompt_tokens": total, "completion_tokens": reply.output_tokens,
                    "total_tokens": total + reply.output_tokens,
                    "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0}}
        return {"input_tokens": total - cached - written, "output_tokens": reply.output_tokens,
                "cache_read_input_tokens": cached, "cache_creation_input_tokens": written}

    def _openai_cache(self, model: str, body: dict) -> tuple[int, int]:
        """(tokens, cached tokens) of an OpenAI request: its longest prefix shared with an earlier one."""
        text = "".join(t for message in body.get("messages") or [] for t in _texts(message.get("content")))
        shared = max((len(os.path.commonprefix([text, seen])) for m, seen in self._openai_seen if m == model),
                     default=0)
        self._openai_seen.append((model, text))
        cached = _tokens(shared) // OPENAI_CACHE_STEP * OPENAI_CACHE_STEP
        return _tokens(len(text)), cached if cached >= CACHE_MIN_TOKENS else 0

    def _anthropic_cache_use(self, model: str, body: dict) -> tuple[int, int, int]:
        """(tokens, read from the cache, written to it) of an Anthropic request, by its cache_control breakpoints."""
        system = body.get("system") or []
        blocks = [("system", b) for b in ([{"type": "text", "text": system}] if isinstance(system, str) else system)]
        for message in body.get("messages") or []:
            content = message.get("content")
            content = [{"type": "text", "text": content}] if isinstance(content, str) else content or []
            blocks += [(message.get("role"), b) for b in content if isinstance(b, dict)]
        keys, sizes, marks, chars = [], [], [], 0
        for role, block in blocks:
            chars += len(block.get("text", ""))
            keys.append((model, *(keys[-1][1:] if keys else ()), (role, block.get("text", ""))))
            sizes.append(_tokens(chars))
            if block.get("cache_control"):
                marks.append(len(keys) - 1)
        read_at = next((i for i in reversed(marks) if keys[i] in self._anthropic_cache), None)
        read = sizes[read_at] if read_at is not None else 0
        written_to = read
        for i in marks:
            if (read_at is None or i > read_at) and sizes[i] >= CACHE_MIN_TOKENS:
                self._anthropic_cache.add(keys[i])
                written_to = sizes[i]
        return _tokens(chars), read, written_to - read

    def _sleep(self, seconds: float) -> bool:
        """Sleep unless the server is stopping; False when interrupted."""
        return seconds <= 0 or not self._stopping.wait(seconds)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    owner: ScriptedLLMServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out and hung up is expected here, not worth a traceback.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDKs' connection pools expect of the real APIs
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass

    def setup(self) -> None:
        super().setup()
        with self.server.owner._lock:
            self.server.owner._connections.add(self.connection)
            self.server.owner._handler_threads.add(threading.current_thread())

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.server.owner._lock:
                self.server.owner._connections.discard(self.connection)
                self.server.owner._handler_threads.discard(threading.current_thread())

    # --- routing ---------------------------------------------------------------------------------------------

    def do_GET(self) -> None:
        owner, path = self.server.owner, urlsplit(self.path).path
        owner._record("GET", path, self._headers(), None)
        if not owner._sleep(owner.latency):
            return self._hang_up()
        if path.rstrip("/") == MODELS:
            model = {"id": owner.model, "object": "model", "type": "model", "created": int(time.time()),
                     "owned_by": "scripted", "display_name": owner.model, "created_at": "2024-01-01T00:00:00Z"}
            # One body for both SDKs: OpenAI reads "object"/"data", Anthropic reads "data"/"has_more".
            self._send_json(200, {"object": "list", "data": [model], "has_more": False,
                                  "first_id": owner.model, "last_id": owner.model})
        else:
            self._send_error("openai", 404, f"unknown path {path}")

    def do_POST(self) -> None:
        owner, path = self.server.owner, urlsplit(self.path).path
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        owner._record("POST", path, self._headers(), body)

        provider = {OPENAI_CHAT: "openai", ANTHROPIC_MESSAGES: "anthropic"}.get(path.rstrip("/"))
        if provider is None:
            return self._send_error("openai", 404, f"unknown path {path}")
        if not isinstance(body, dict):
            return self._send_error(provider, 400, "request body is not a JSON object")

        reply, fatal = owner._next_reply(body)
        if not owner._sleep(owner.latency + reply.delay):
            return self._hang_up()
        if reply.raw_body is not None:
            return self._send(reply.status, reply.raw_body.encode(), "application/json", self._retry_header(reply))
        if reply.status >= 400:
            return self._send_error(provider, reply.status, reply.text or f"scripted error {reply.status}",
                                    retry_after=reply.retry_after, fatal=fatal)
        model = body.get("model") or owner.model  # echo the requested model, as the real APIs do
        usage = owner._usage(provider, body, reply)
        if provider == "openai":
            if body.get("stream"):
                return self._send_events(self._openai_events(reply, model, body, usage),
                                         extra=self._retry_header(reply))
            return self._send_json(200, self._openai_completion(reply, model, usage), extra=self._retry_header(reply))
        if body.get("stream"):
            return self._send_events(self._anthropic_events(reply, model, usage), extra=self._retry_header(reply))
        return self._send_json(200, self._anthropic_message(reply, model, usage), extra=self._retry_header(reply))

    # --- bodies ----------------------------------------------------------------------------------------------

    @staticmethod
    def _openai_completion(reply: Reply, model: str, usage: dict) -> dict:
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": model, "system_fingerprint": None,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.text, "refusal": None},
                         "logprobs": None, "finish_reason": "stop"}],
            "usage": usage,
        }

    @staticmethod
    def _openai_events(reply: Reply, model: str, request: dict, usage: dict) -> Iterable[tuple[str | None, str]]:
        base = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion.chunk",
                "created": int(time.time()), "model": model, "system_fingerprint": None}
        include_usage = bool((request.get("stream_options") or {}).get("include_usage"))

        def chunk(delta: dict, finish: str | None = None) -> tuple[None, str]:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return None, json.dumps({**base, "choices": [choice]})

        yield chunk({"role": "assistant", "content": ""})
        for piece in _pieces(reply.text):
            yield chunk({"content": piece})
        yield chunk({}, "stop")
        if include_usage:  # the real API sends usage only when asked, in a last chunk with no choices
            yield None, json.dumps({**base, "choices": [], "usage": usage})
        yield None, "[DONE]"

    @staticmethod
    def _anthropic_message(reply: Reply, model: str, usage: dict) -> dict:
        thinking = [{"type": "thinking", "thinking": reply.thinking, "signature": "scripted"}] if reply.thinking else []
        return {
            "id": f"msg_{uuid.uuid4().hex}", "type": "message", "role": "assistant", "model": model,
            "content": [*thinking, {"type": "text", "text": reply.text}],
            "stop_reason": "end_turn", "stop_sequence": None,
            "usage": usage,
        }

    @staticmethod
    def _anthropic_events(reply: Reply, model: str, usage: dict) -> Iterable[tuple[str | None, str]]:
        def event(kind: str, data: dict) -> tuple[str, str]:
            return kind, json.dumps({"type": kind, **data})

        start = {"id": f"msg_{uuid.uuid4().hex}", "type": "message", "role": "assistant", "model": model,
                 "content": [], "stop_reason": None, "stop_sequence": None,
                 "usage": {**usage, "output_tokens": 1}}
        yield event("message_start", {"message": start})
        index = 0
        if reply.thinking:
            yield event("content_block_start", {"index": 0, "content_block": {"type": "thinking", "thinking": "",
                                                                              "signature": ""}})
            for piece in _pieces(reply.thinking):
                yield event("content_block_delta", {"index": 0, "delta": {"type": "thinking_delta", "thinking": piece}})
            yield event("content_block_delta", {"index": 0, "delta": {"type": "signature_delta",
                                                                      "signature": "scripted"}})
            yield event("content_block_stop", {"index": 0})
            index = 1
        yield event("content_block_start", {"index": index, "content_block": {"type": "text", "text": ""}})
        for piece in _pieces(reply.text):
            yield event("content_block_delta", {"index": index, "delta": {"type": "text_delta", "text": piece}})
        yield event("content_block_stop", {"index": index})
        yield event("message_delta", {"delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                      "usage": {"output_tokens": reply.output_tokens}})
        yield event("message_stop", {})

    # --- low-level writing -----------------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return {k.lower(): v for k, v in self.headers.items()}

    @staticmethod
    def _retry_header(reply: Reply) -> dict[str, str]:
        if reply.retry_after is None:
            return {}
        seconds = reply.retry_after
        return {"retry-after": str(int(seconds)) if float(seconds).is_integer() else str(seconds)}

    def _send_error(self, provider: str, status: int, message: str, *, retry_after: float | None = None,
                    fatal: bool = False) -> None:
        if provider == "anthropic":
            kind = _ANTHROPIC_ERRORS.get(status, "api_error" if status >= 500 else "invalid_request_error")
            body: dict = {"type": "error", "error": {"type": kind, "message": message}}
        else:
            kind, code = _OPENAI_ERRORS.get(status, ("server_error" if status >= 500 else "invalid_request_error",
                                                     None))
            body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
        extra = self._retry_header(Reply(retry_after=retry_after))
        if fatal:  # both SDKs obey this header over their status-based retry rules
            extra["x-should-retry"] = "false"
        self._send_json(status, body, extra=extra)

    def _send_json(self, status: int, body: dict, extra: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(body).encode(), "application/json", extra)

    def _send(self, status: int, payload: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self._common_headers(content_type, extra)
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _send_events(self, events: Iterable[tuple[str | None, str]], extra: dict[str, str] | None = None) -> None:
        """Server-sent events in chunked transfer encoding, so the connection stays usable afterwards."""
        self.send_response(200)
        self._common_headers("text/event-stream", extra)
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        for kind, data in events:
            frame = (f"event: {kind}\n" if kind else "") + f"data: {data}\n\n"
            encoded = frame.encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(encoded), encoded))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def _common_headers(self, content_type: str, extra: dict[str, str] | None) -> None:
        request_id = f"req_{uuid.uuid4().hex[:24]}"
        self.send_header("content-type", content_type)
        self.send_header("x-request-id", request_id)  # read by openai's response._request_id
        self.send_header("request-id", request_id)    # read by anthropic's response._request_id
        for key, value in (extra or {}).items():
            self.send_header(key, value)

    def _hang_up(self) -> None:
        # The server is stopping while we slept: answer nothing and drop the connection.
        self.close_connection = True
