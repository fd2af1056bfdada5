"""`autoresearch request`: the next request shown as the model would get it, byte for byte, and priced."""

from __future__ import annotations

import json

from conftest import run_cli
from helpers import curve_task
from llm_server import ScriptedLLMServer

from autoresearch.core.settings import AgentSettings
from autoresearch.core.task import load_task
from autoresearch.propose.models import OpenAIChat
from autoresearch.propose.preview import preview_request
from autoresearch.store.workspace import Workspace
from autoresearch.study.manual import run_experiment
from autoresearch.study.snapshot import Snapshots
from autoresearch.study.study import StudyOptions, run_study


def request_json(ws, *flags: str) -> dict:
    out = run_cli("request", "--json", *flags, cwd=ws)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_the_shown_request_is_the_one_the_study_sends_next(tiny_workspace):
    from autoresearch.propose.llm import LLMProposer

    ws = tiny_workspace
    curve_task(ws)
    run_experiment(ws, "baseline")
    shown = request_json(ws, "--model", "gpt-4.1")
    with ScriptedLLMServer(responder=lambda request: "DESCRIPTION: nothing applies\n") as server:
        model = OpenAIChat("gpt-4.1", base_url=server.base_url, max_retries=0, timeout=30)
        run_study(ws, [LLMProposer(model, max_edit_retries=0)], StudyOptions(max_experiments=1, pipeline=False,
                                                                                max_idle_proposals=1))
        sent = server.requests[0]["json"]["messages"]
    assert sent[0] == {"role": "system", "content": shown["system"]}
    assert sent[-1] == {"role": "user", "content": shown["stable"] + shown["changing"]}
    assert "Propose the next experiment." in shown["changing"] and "baseline" in shown["changing"]
    assert shown["tokens"] == sum(len(shown[part]) // 4 for part in ("system", "stable", "changing"))
    assert 0.5 < shown["tokens_cacheable"] / shown["tokens"] < 1  # the files and the program: most of it
    assert 0 < shown["usd_cached"] < shown["usd_uncached"]  # genai-prices' price of gpt-4.1, cache discounted


def test_prices_from_the_agent_a_model_of_unknown_price_and_an_agent_that_asks_no_model(tiny_workspace):
    ws = tiny_workspace
    snapshot = Snapshots(Workspace(ws), load_task(ws)).take("HEAD", [])  # before any experiment: the code as it is
    own = preview_request(snapshot, AgentSettings(provider="openai", model="mine", input_usd_per_mtok=2.0,
                                                  output_usd_per_mtok=8.0))
    assert own.usd_uncached == own.tokens * 2.0 / 1e6 and "No run-to-run noise measured yet" in own.changing
    unknown = preview_request(snapshot, AgentSettings(provider="openai", model="no-such-model"))
    assert unknown.usd_uncached is None and "'no-such-model' unknown to genai-prices" in unknown.summary()
    random_agent = preview_request(snapshot, AgentSettings(provider="random"))
    assert not random_agent.sends_requests and "random asks no model" in random_agent.summary()
    out = run_cli("request", "--summary", "--agent", "2", cwd=ws)
    assert out.returncode == 1 and out.stderr.strip() == "autoresearch: --agent 2: autoresearch.toml has 1 agent(s)"
    out = run_cli("request", "--summary", "--model", "claude-sonnet-4-6", cwd=ws)
    assert out.returncode == 0 and "the next request of anthropic:claude-sonnet-4-6" in out.stdout
    assert "input cost with claude-sonnet-4-6: $" in out.stdout
