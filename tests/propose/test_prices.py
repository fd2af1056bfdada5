"""Model prices: genai-prices' bundled table, [agent] prices that win over it, and a --max-cost that
refuses to start when a model's price is unknown (it could never trigger). Real SDKs against the
loopback server in tests/llm_server.py."""

from __future__ import annotations

import itertools
import re
from contextlib import ExitStack

import pytest
from conftest import git, ledger_for
from genai_prices import Usage, calc_price
from llm_server import Reply, ScriptedLLMServer

from autoresearch.core.settings import AgentSettings
from autoresearch.core.task import ConfigError, parse_task
from autoresearch.interfaces.cli import main
from autoresearch.propose.agent import UnknownPriceError, check_prices, make_proposer, usd_per_mtok
from autoresearch.propose.models import AnthropicChat, OpenAIChat, Pricing

HI = [{"role": "user", "content": "hi"}]


def genai_price(model: str, provider: str, tokens_in: int, tokens_out: int, cached: int = 0) -> float:
    usage = Usage(input_tokens=tokens_in, output_tokens=tokens_out, cache_read_tokens=cached or None)
    return float(calc_price(usage, model_ref=model, provider_id=provider).total_price)


def test_known_models_are_priced_by_genai_prices(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    with ScriptedLLMServer([Reply("a", input_tokens=1234, output_tokens=567)] * 2) as server:
        gpt = OpenAIChat("gpt-4.1", base_url=server.base_url, max_retries=0, timeout=10).complete("s", HI)
        claude = AnthropicChat("claude-sonnet-4-5", base_url=server.anthropic_base_url, max_retries=0,
                               timeout=10).complete("s", HI)
    assert gpt.cost_usd == pytest.approx(genai_price("gpt-4.1", "openai", 1234, 567)) and gpt.cost_usd > 0
    assert claude.cost_usd == pytest.approx(genai_price("claude-sonnet-4-5", "anthropic", 1234, 567))
    assert claude.cost_usd > 0 and (claude.tokens_in, claude.tokens_out) == (1234, 567)
    # cached input tokens are priced as such; an unknown model has no price
    openai = Pricing("openai")
    assert openai.cost("gpt-4.1", 1000, 10, 800) == pytest.approx(genai_price("gpt-4.1", "openai", 1000, 10, cached=800))
    assert openai.cost("gpt-4.1", 1000, 10, 800) < openai.cost("gpt-4.1", 1000, 10)
    assert Pricing("openai", "http://127.0.0.1:9/v1").cost("my-finetune", 1000, 10) is None


def test_agent_prices_win_over_genai_prices(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    with ScriptedLLMServer([Reply("a", input_tokens=100, output_tokens=50)] * 4) as server, ExitStack() as stack:
        def cost(provider: str, model: str, **prices) -> float | None:
            url = server.anthropic_base_url if provider == "anthropic" else server.base_url
            settings = AgentSettings(provider=provider, model=model, base_url=url, **prices)
            return make_proposer(settings, stack).model.complete("s", HI).cost_usd

        assert cost("openai", "gpt-4.1", input_usd_per_mtok=1.0, output_usd_per_mtok=2.0) == pytest.approx(200 / 1e6)
        assert cost("anthropic", "claude-sonnet-4-5", input_usd_per_mtok=0, output_usd_per_mtok=0) == 0.0  # self-hosted
        assert cost("openai", "my-finetune", input_usd_per_mtok=3, output_usd_per_mtok=4) == pytest.approx(500 / 1e6)
        assert cost("openai", "my-finetune") is None
    assert usd_per_mtok(AgentSettings(provider="local")) == (0.0, 0.0)  # a local llama.cpp model costs nothing
    with pytest.raises(ConfigError, match=r"^autoresearch.toml: \[agent\]: input_usd_per_mtok and output_usd_per_mtok go "
                                          r"together: give both"):
        parse_task({"task": {"command": ["x"]}, "budget": {"value": 60}, "agent": {"input_usd_per_mtok": 1.0}})


def test_check_prices_refuses_a_cap_it_cannot_count():
    unknown = AgentSettings(provider="openai", model="my-finetune", base_url="http://127.0.0.1:9/v1")
    with pytest.raises(UnknownPriceError) as caught:
        check_prices([AgentSettings(provider="tpe"), unknown], 5.0)
    message = str(caught.value)
    assert "\n" not in message and "'my-finetune'" in message
    assert "input_usd_per_mtok" in message and "output_usd_per_mtok" in message and "[agent]" in message
    check_prices([unknown], None)  # no cap: nothing to check
    free = [AgentSettings(provider=p) for p in ("random", "tpe", "local")]
    priced = AgentSettings(provider="openai", model="my-finetune", input_usd_per_mtok=0, output_usd_per_mtok=0)
    known = [AgentSettings(provider="openai", model="gpt-4.1"), AgentSettings(provider="anthropic"),  # its default
             AgentSettings(provider="anthropic", model="claude-sonnet-4-5", base_url="http://127.0.0.1:9")]
    check_prices([*free, priced, *known], 0.01)


def test_max_cost_with_an_unknown_price_stops_before_anything_runs(tiny_workspace, capsys):
    ws = tiny_workspace
    code = main(["run", "-C", str(ws), "--base-url", "http://127.0.0.1:9/v1", "--model", "my-finetune",
                 "--max-cost", "5", "--plain", "--max-experiments", "2"])
    out = capsys.readouterr()
    assert code == 1 and out.err.count("\n") == 1, out.err
    assert out.err.startswith("autoresearch: --max-cost needs the price of model 'my-finetune'")
    assert "input_usd_per_mtok" in out.err and out.out == ""
    ledger = ledger_for(ws)
    assert ledger.experiments() == [] and ledger.proposals() == []
    ledger.close()


def test_agent_prices_make_max_cost_stop_the_study(tiny_workspace, capsys):
    ws = tiny_workspace
    with (ws / "autoresearch.toml").open("a") as toml:  # a self-hosted model at made-up prices
        toml.write("\n[agent]\nprovider = \"openai\"\ninput_usd_per_mtok = 1000.0\noutput_usd_per_mtok = 2000.0\n")
    git(ws, "commit", "-qam", "prices of the served model")
    alphas = itertools.count(2)

    def respond(request: dict) -> str:  # 100 tokens in, 50 out: $0.10 + $0.10 an answer
        line = re.search(r"^ALPHA = .*$", request["messages"][-1]["content"], re.MULTILINE).group(0)
        value = 1.0 + next(alphas) / 10
        new = re.sub(r"= \S+", f"= {value:g}", line, count=1)
        return (f"DESCRIPTION: alpha {value:g}\nREASONING: it should help.\n"
                f"<<<<<<< SEARCH train.py\n{line}\n=======\n{new}\n>>>>>>> REPLACE\n")

    with ScriptedLLMServer(responder=respond) as server:
        code = main(["run", "-C", str(ws), "--base-url", server.base_url, "--model", "my-finetune",
                     "--max-cost", "0.3", "--no-pipeline", "--max-experiments", "20", "--plain"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "reached --max-cost $0.3" in out.out and "$0.4000 spent on models" in out.out
    ledger = ledger_for(ws)
    proposals, experiments = ledger.proposals(), ledger.experiments()
    ledger.close()
    assert len(proposals) == 2 and len(experiments) == 3  # the baseline and the two it paid for
    assert [p.cost_usd for p in proposals] == pytest.approx([0.2, 0.2])
