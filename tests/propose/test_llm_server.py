"""The scripted LLM server, driven by the real openai and anthropic SDKs over loopback HTTP."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import anthropic
import openai
import pytest
from llm_server import Reply, ScriptedLLMServer

USER = [{"role": "user", "content": "hi"}]
_clients: list[openai.OpenAI | anthropic.Anthropic] = []


@pytest.fixture
def server() -> Iterator[ScriptedLLMServer]:
    with ScriptedLLMServer() as srv:
        yield srv


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    """Close the SDK clients' connection pools, so no socket is left to the garbage collector."""
    yield
    while _clients:
        _clients.pop().close()


def oai(server: ScriptedLLMServer, **kwargs) -> openai.OpenAI:
    """An OpenAI client on the server; no retries unless asked (the SDK default is 2)."""
    _clients.append(openai.OpenAI(base_url=server.base_url, api_key="x", **{"max_retries": 0, **kwargs}))
    return _clients[-1]


def ant(server: ScriptedLLMServer, **kwargs) -> anthropic.Anthropic:
    _clients.append(anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="x",
                                        **{"max_retries": 0, **kwargs}))
    return _clients[-1]


def test_openai_chat_completion_returns_scripted_text_and_usage(server):
    server.add(Reply("hello there", input_tokens=12, output_tokens=3))
    resp = oai(server).chat.completions.create(model="gpt-test", messages=USER)
    assert resp.choices[0].message.content == "hello there"
    assert resp.choices[0].message.role == "assistant" and resp.choices[0].finish_reason == "stop"
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens, resp.usage.total_tokens) == (12, 3, 15)
    assert resp.model == "gpt-test"  # echoed, as the real API does


def test_anthropic_message_returns_scripted_text_and_usage(server):
    server.add(Reply("bonjour", input_tokens=7, output_tokens=2))
    msg = ant(server).messages.create(model="claude-test", max_tokens=64, messages=USER)
    assert [block.text for block in msg.content] == ["bonjour"]
    assert msg.stop_reason == "end_turn" and msg.role == "assistant"
    assert (msg.usage.input_tokens, msg.usage.output_tokens) == (7, 2)


def test_requests_are_recorded_with_their_json(server):
    server.add("one", "two")
    oai(server).chat.completions.create(model="gpt-test", messages=USER, temperature=0.5)
    ant(server).messages.create(model="claude-test", max_tokens=64, system="be brief", messages=USER)
    first, second = server.requests
    assert first["path"] == "/v1/chat/completions"
    assert first["json"] == {"model": "gpt-test", "messages": USER, "temperature": 0.5}
    assert first["headers"]["authorization"] == "Bearer x"
    assert second["path"] == "/v1/messages"
    assert second["json"]["system"] == "be brief" and second["json"]["messages"] == USER
    assert "anthropic-version" in second["headers"]


def test_rate_limit_then_success_is_retried_by_the_sdk(server):
    server.add(Reply(status=429, retry_after=0), "finally")
    resp = oai(server, max_retries=2).chat.completions.create(model="m", messages=USER)
    assert resp.choices[0].message.content == "finally"
    assert len(server.requests) == 2
    assert [r["headers"]["x-stainless-retry-count"] for r in server.requests] == ["0", "1"]


@pytest.mark.parametrize("status, openai_error, anthropic_error", [
    (400, openai.BadRequestError, anthropic.BadRequestError),
    (429, openai.RateLimitError, anthropic.RateLimitError),
    (500, openai.InternalServerError, anthropic.InternalServerError),
    (529, openai.InternalServerError, anthropic.OverloadedError),
])
def test_error_statuses_raise_the_sdk_exception_classes(server, status, openai_error, anthropic_error):
    server.add(Reply("nope", status=status), Reply("nope", status=status))
    with pytest.raises(openai_error) as oerr:
        oai(server).chat.completions.create(model="m", messages=USER)
    assert oerr.value.status_code == status and oerr.value.body["message"] == "nope"
    with pytest.raises(anthropic_error) as aerr:
        ant(server).messages.create(model="m", max_tokens=8, messages=USER)
    assert aerr.value.status_code == status and aerr.value.body["error"]["message"] == "nope"


def test_client_timeout_and_prompt_shutdown():
    srv = ScriptedLLMServer([Reply("too late", delay=2)]).start()
    try:
        with pytest.raises(openai.APITimeoutError):
            oai(srv, timeout=0.5).chat.completions.create(model="m", messages=USER)
    finally:
        started = time.monotonic()
        srv.stop()  # the handler is still sleeping in its delay
    assert time.monotonic() - started < 1.0


def test_malformed_body_raises(server):
    server.add(Reply(raw_body='{"id": "chatcmpl-1", "choices": ['), Reply(raw_body="<html>bad gateway", status=502))
    # A 200 with broken JSON escapes the SDK as a plain json.JSONDecodeError, not an openai.APIError.
    with pytest.raises(ValueError):
        oai(server).chat.completions.create(model="m", messages=USER)
    # A non-JSON error body still gets the status's class; the text lands in .body, not in the message.
    with pytest.raises(openai.InternalServerError) as err:
        oai(server).chat.completions.create(model="m", messages=USER)
    assert err.value.status_code == 502 and err.value.body == "<html>bad gateway"


def test_exhausted_script_fails_loudly_without_retries(server):
    server.add("only one")
    client = oai(server, max_retries=2)
    client.chat.completions.create(model="m", messages=USER)
    with pytest.raises(openai.InternalServerError, match="script exhausted"):
        client.chat.completions.create(model="m", messages=USER)
    assert len(server.requests) == 2  # x-should-retry: false stopped the SDK's retries


def test_responder_answers_once_the_script_is_empty():
    def echo(request: dict) -> str:
        return "echo: " + request["messages"][-1]["content"]

    with ScriptedLLMServer(["scripted first"], responder=echo) as srv:
        client = oai(srv)
        texts = [client.chat.completions.create(model="m", messages=[{"role": "user", "content": c}])
                 .choices[0].message.content for c in ("a", "b")]
    assert texts == ["scripted first", "echo: b"]


def test_openai_streaming(server):
    server.add(Reply("a fairly long streamed answer, in several chunks", input_tokens=5, output_tokens=9))
    stream = oai(server).chat.completions.create(model="m", messages=USER, stream=True,
                                                 stream_options={"include_usage": True})
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == \
        "a fairly long streamed answer, in several chunks"
    assert chunks[-1].usage.total_tokens == 14


def test_anthropic_streaming(server):
    server.add(Reply("streamed from the messages API", input_tokens=4, output_tokens=6), "after the stream")
    client = ant(server)
    with client.messages.stream(model="m", max_tokens=64, messages=USER) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "streamed from the messages API"
    assert final.stop_reason == "end_turn" and (final.usage.input_tokens, final.usage.output_tokens) == (4, 6)
    # The chunked stream leaves the kept-alive connection usable for the next call.
    assert client.messages.create(model="m", max_tokens=8, messages=USER).content[0].text == "after the stream"


def test_models_are_listed(server):
    assert [m.id for m in oai(server).models.list()] == ["scripted-model"]
    assert [m.id for m in ant(server).models.list()] == ["scripted-model"]


def test_latency_applies_per_request_and_requests_run_concurrently():
    with ScriptedLLMServer(["x"] * 4, latency=0.5) as srv:
        client = oai(srv)
        threads = [threading.Thread(target=client.chat.completions.create, kwargs={"model": "m", "messages": USER})
                   for _ in range(4)]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started
    assert len(srv.requests) == 4
    assert 0.5 <= elapsed < 1.5  # four 0.5 s answers overlapped rather than queued (2 s)
