"""Prompt caching and what it costs, Anthropic's temperature and thinking, and which SDK a base_url routes to.
Real OpenAI and Anthropic SDKs against the loopback server (tests/llm_server.py) counting tokens the way each API
reports its prompt cache."""

from __future__ import annotations

from contextlib import ExitStack

import anthropic
import openai
import pytest
from genai_prices import Usage, calc_price
from llm_server import Reply, ScriptedLLMServer

from autoresearch.core.settings import AgentSettings
from autoresearch.propose.agent import make_proposer, resolve
from autoresearch.propose.models import AnthropicChat, OpenAIChat, Pricing

SYSTEM = "You are an autonomous machine-learning researcher. " * 40  # ~2000 chars: 500 tokens
STABLE = "Current train.py:\n" + "x = compute(x)  # a line of the training script\n" * 120  # ~5800 chars
EPHEMERAL = {"type": "ephemeral"}


def parts(variable: str) -> list[dict]:
    """One user message: the stable prefix (marked), then what changes from one request to the next."""
    return [{"role": "user", "content": [{"type": "text", "text": STABLE, "cache": True},
                                         {"type": "text", "text": variable, "cache": False}]}]


@pytest.fixture
def anthropic_key(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")


def test_openai_reads_a_repeated_prefix_from_its_cache_at_a_discount():
    with ScriptedLLMServer(["one", "two"], count_tokens=True) as server:
        model = OpenAIChat("gpt-4.1", base_url=server.base_url, max_retries=0, timeout=10)
        first = model.complete(SYSTEM, parts("History: nothing yet."))
        second = model.complete(SYSTEM, parts("History: experiment 2 kept."))
        requests = server.requests
    # parts become one string per message (OpenAI caches identical prefixes by itself)
    assert requests[0]["json"]["messages"] == [{"role": "system", "content": SYSTEM},
                                               {"role": "user", "content": STABLE + "History: nothing yet."}]
    assert first.tokens_cached == 0 and first.text == "one"
    shared = (len(SYSTEM) + len(STABLE) + len("History: ")) // 4
    assert second.tokens_cached == shared // 128 * 128 >= 1024 and second.tokens_in > second.tokens_cached
    pricing = Pricing("openai")
    uncached = pricing.cost("gpt-4.1", second.tokens_in, second.tokens_out)
    assert second.cost_usd == pytest.approx(pricing.cost("gpt-4.1", second.tokens_in, second.tokens_out,
                                                         second.tokens_cached))
    assert second.cost_usd < uncached


def test_openai_cache_rules_of_the_loopback_server():
    """Under 1024 shared tokens nothing is cached; a Reply's own input_tokens win; streams report it too."""
    with ScriptedLLMServer(["a", "b", Reply("c", input_tokens=7), "d"], count_tokens=True) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0)
        short = [{"role": "user", "content": "short " * 100}]
        client.chat.completions.create(model="m", messages=short)
        again = client.chat.completions.create(model="m", messages=short)
        assert again.usage.prompt_tokens == 150 and again.usage.prompt_tokens_details.cached_tokens == 0
        explicit = client.chat.completions.create(model="m", messages=short)
        assert explicit.usage.prompt_tokens == 7
        long = [{"role": "user", "content": [{"type": "text", "text": "y" * 6000}]}]  # array content counts too
        stream = client.chat.completions.create(model="m", messages=long, stream=True,
                                                stream_options={"include_usage": True})
        usage = [chunk.usage for chunk in stream if chunk.usage][0]
        assert usage.prompt_tokens == 1500 and usage.prompt_tokens_details.cached_tokens == 0  # first of its kind
        client.close()


def test_anthropic_marks_the_system_and_the_stable_part_and_reads_them_back(anthropic_key):
    with ScriptedLLMServer(["one", "two"], count_tokens=True) as server:
        model = AnthropicChat("claude-sonnet-4-5", base_url=server.anthropic_base_url, max_retries=0, timeout=10)
        first = model.complete(SYSTEM, parts("History: nothing yet."))
        second = model.complete(SYSTEM, parts("History: experiment 2 kept."))
        requests = server.requests
    body = requests[0]["json"]
    assert body["system"] == [{"type": "text", "text": SYSTEM, "cache_control": EPHEMERAL}]
    assert body["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": STABLE, "cache_control": EPHEMERAL},
        {"type": "text", "text": "History: nothing yet."}]}]
    prefix = (len(SYSTEM) + len(STABLE)) // 4
    # the first request writes the prefix (the system prompt alone is under 1024 tokens: not cached), the second reads it
    assert (first.tokens_cached, first.tokens_cache_written) == (0, prefix)
    assert (second.tokens_cached, second.tokens_cache_written) == (prefix, 0)
    assert second.tokens_in == (len(SYSTEM) + len(STABLE) + len("History: experiment 2 kept.")) // 4

    def genai(tokens_in: int, tokens_out: int, read: int = 0, written: int = 0) -> float:
        usage = Usage(input_tokens=tokens_in, output_tokens=tokens_out, cache_read_tokens=read or None,
                      cache_write_tokens=written or None)
        return float(calc_price(usage, model_ref="claude-sonnet-4-5", provider_id="anthropic").total_price)

    assert second.cost_usd == pytest.approx(genai(second.tokens_in, second.tokens_out, read=prefix))
    assert second.cost_usd < genai(second.tokens_in, second.tokens_out)  # read: a tenth of the input price
    assert first.cost_usd == pytest.approx(genai(first.tokens_in, first.tokens_out, written=prefix))
    assert first.cost_usd > genai(first.tokens_in, first.tokens_out)  # written: a quarter above it
    assert Pricing("anthropic").cost("claude-sonnet-4-5", 5000, 10, 0, 4000) == pytest.approx(genai(5000, 10, 0, 4000))


def test_anthropic_keeps_to_four_breakpoints_and_sends_plain_strings_as_they_are(anthropic_key):
    marked = [{"role": "user", "content": [{"type": "text", "text": f"part {i}\n", "cache": True} for i in range(6)]},
              {"role": "assistant", "content": "an answer"},
              {"role": "user", "content": [{"type": "text", "text": "", "cache": True},  # empty: dropped
                                           {"type": "text", "text": "last", "cache": True}]}]
    with ScriptedLLMServer(["a"]) as server:
        AnthropicChat("claude-sonnet-4-5", base_url=server.anthropic_base_url, max_retries=0).complete("sys", marked)
        body = server.requests[0]["json"]
    blocks = [block for message in body["messages"] if isinstance(message["content"], list)
              for block in message["content"]]
    assert [b["text"] for b in blocks if "cache_control" in b] == ["part 0\n", "part 5\n", "last"]  # + the system
    assert "cache_control" in body["system"][0] and all(b["text"] for b in blocks)
    assert body["messages"][1] == {"role": "assistant", "content": "an answer"}


def test_anthropic_temperature_is_sent(anthropic_key):
    with ScriptedLLMServer(["a", "b"]) as server:
        AnthropicChat("claude-sonnet-4-5", base_url=server.anthropic_base_url, temperature=0.3).complete("s", parts("v"))
        AnthropicChat("claude-sonnet-4-5", base_url=server.anthropic_base_url, temperature=1.5).complete("s", parts("v"))
        bodies = [r["json"] for r in server.requests]
    assert bodies[0]["temperature"] == 0.3 and "thinking" not in bodies[0] and bodies[0]["max_tokens"] == 4096
    assert bodies[1]["temperature"] == 1.0  # Anthropic's range ends at 1


def test_anthropic_thinking_budget_raises_max_tokens_and_drops_temperature(anthropic_key):
    reply = Reply("DESCRIPTION: the answer", thinking="Let me weigh the options first.")
    with ScriptedLLMServer([reply]) as server:
        model = AnthropicChat("claude-sonnet-4-5", base_url=server.anthropic_base_url, temperature=0.3,
                              max_tokens=4096, thinking_tokens=2048)
        completion = model.complete("s", parts("v"))
        body = server.requests[0]["json"]
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2048} and body["max_tokens"] == 4096 + 2048
    assert "temperature" not in body
    assert completion.text == "DESCRIPTION: the answer"  # the thinking block is not the answer


def test_loopback_anthropic_stream_carries_thinking_and_cache_usage():
    with ScriptedLLMServer([Reply("text", thinking="hmm")], count_tokens=True) as server:
        client = anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="x", max_retries=0)
        system = [{"type": "text", "text": "z" * 8000, "cache_control": EPHEMERAL}]
        with client.messages.stream(model="c", max_tokens=64, system=system,
                                    messages=[{"role": "user", "content": "hi"}]) as stream:
            final = stream.get_final_message()
        client.close()
    assert [block.type for block in final.content] == ["thinking", "text"] and final.content[1].text == "text"
    assert (final.usage.cache_creation_input_tokens, final.usage.input_tokens) == (2000, 0)


def test_a_base_url_means_an_openai_compatible_server_unless_anthropic_is_named():
    assert resolve(AgentSettings(model="claude-x", base_url="http://127.0.0.1:8000/v1")).provider == "openai"
    named = resolve(AgentSettings(model="claude-x", base_url="http://127.0.0.1:8000", provider="anthropic"))
    assert named.provider == "anthropic"
    assert resolve(AgentSettings(model="claude-x")).provider == "anthropic"
    assert resolve(AgentSettings(), base_url="http://127.0.0.1:8000/v1", model="claude-3").provider == "openai"


def test_make_proposer_threads_temperature_and_thinking_to_anthropic(anthropic_key):
    settings = AgentSettings(provider="anthropic", model="claude-sonnet-4-5", temperature=0.2, thinking_tokens=1024)
    with ExitStack() as stack:
        model = make_proposer(settings, stack).model
    assert (model.temperature, model.thinking_tokens) == (0.2, 1024)


def test_a_model_that_refuses_a_temperature_is_asked_again_without_one(anthropic_key):
    refused = Reply(status=400, text="`temperature` is deprecated for this model.")
    with ScriptedLLMServer([refused, "a", "b"]) as server:
        model = AnthropicChat("claude-opus-4-7", base_url=server.anthropic_base_url, max_retries=0, temperature=0.5)
        assert model.complete("s", parts("v")).text == "a" and model.complete("s", parts("v")).text == "b"
        bodies = [r["json"] for r in server.requests]
    assert bodies[0]["temperature"] == 0.5 and ["temperature" in b for b in bodies[1:]] == [False, False]
