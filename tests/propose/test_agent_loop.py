"""The loop driven by a model through the real OpenAI and Anthropic SDKs, against a scripted
server on loopback speaking their wire formats (tests/llm_server.py)."""

from __future__ import annotations

import json

import pytest
from conftest import ledger_for, run_cli
from llm_server import Reply, ScriptedLLMServer

from autoresearch.core.records import ProposalRecord
from autoresearch.propose.llm import LLMProposer
from autoresearch.propose.models import AnthropicChat, ModelError, OpenAIChat
from autoresearch.study.study import StudyOptions, run_study


def line_of(ws, prefix: str) -> str:
    return next(line for line in (ws / "train.py").read_text().splitlines() if line.startswith(prefix))


def answer(description: str, search: str, replace: str, path: str = "train.py") -> str:
    return (f"DESCRIPTION: {description}\nREASONING: because it should help.\n"
            f"<<<<<<< SEARCH {path}\n{search}\n=======\n{replace}\n>>>>>>> REPLACE\n")


def options(**kw) -> StudyOptions:
    return StudyOptions(pipeline=False, failure_backoff_s=0.01, **kw)


def proposals(ws) -> list[ProposalRecord]:
    ledger = ledger_for(ws)
    rows = ledger.proposals()
    ledger.close()
    return rows


def test_openai_bad_answers_go_back_to_the_model_then_crash_and_fix(tiny_workspace):
    ws = tiny_workspace
    order = line_of(ws, "ORDER = ")
    main_call = "    main()"
    script = [
        Reply(status=429, retry_after=0, text="slow down"),  # the SDK retries this itself
        "DESCRIPTION: more context\nREASONING: none\nI would change ORDER to 3.",  # no block: back to the model
        answer("edit the evaluation", "VAL_FRACTION = 0.1", "VAL_FRACTION = 0.5", path="prepare.py"),  # frozen
        answer("order 3", order, order.replace("ORDER = 2", "ORDER = 3")),  # good: experiment 2
        answer("raise on purpose", main_call, "    raise RuntimeError('boom')\n    main()"),  # crashes: experiment 3
        answer("remove the raise", "    raise RuntimeError('boom')", "    pass"),  # the fix: experiment 4
    ]
    with ScriptedLLMServer(script) as server:
        model = OpenAIChat("gpt-4.1-mini", base_url=server.base_url, max_retries=2, timeout=10)
        summary = run_study(ws, [LLMProposer(model, max_edit_retries=2)], options(max_experiments=4))
        requests = server.requests
    assert [r.status for r in summary.experiments] == ["keep", "keep", "crash", "discard"]
    assert summary.experiments[2].reason.startswith("exit code 1: RuntimeError: boom")
    assert summary.experiments[3].description == "raise on purpose (fix 1: remove the raise)"
    # each bad answer went back with its exact error
    follow_ups = [r["json"]["messages"][-1]["content"] for r in requests[2:4]]
    assert "no SEARCH/REPLACE block" in follow_ups[0]
    assert "prepare.py is not editable" in follow_ups[1]
    assert requests[0]["json"]["messages"][0]["role"] == "system"
    assert "boom" in requests[-1]["json"]["messages"][-1]["content"]  # the fix prompt carries the log tail
    rows = proposals(ws)
    assert [(p.kind, p.status) for p in rows] == [("propose", "used"), ("propose", "used"), ("fix", "used")]
    assert rows[0].attempts == 3 and rows[0].tokens_in == 300 and rows[0].tokens_out == 150
    assert rows[0].cost_usd == pytest.approx((300 * 0.4 + 150 * 1.6) / 1e6)
    assert "order 3" in rows[0].response and "Current train.py" in rows[0].prompt
    history = json.loads(run_cli("history", "--json", cwd=ws).stdout)
    assert history["experiments"][1]["proposal"]["attempts"] == 3


def test_a_model_that_keeps_failing_is_recorded_not_fatal(tiny_workspace):
    ws = tiny_workspace
    order = line_of(ws, "ORDER = ")
    script = [Reply(delay=3, text="too late")]  # times out (no retries): the proposal fails
    script += [Reply(raw_body="{this is not json")]  # a broken body: the proposal fails
    script += ["DESCRIPTION: nothing useful\nno edits"] * 3  # three bad answers: the proposal fails
    script += [answer("order 3", order, order.replace("ORDER = 2", "ORDER = 3"))]
    with ScriptedLLMServer(script) as server:
        model = OpenAIChat("local-model", base_url=server.base_url, max_retries=0, timeout=1)
        summary = run_study(ws, [LLMProposer(model, max_edit_retries=2)], options(max_experiments=2))
    assert [r.status for r in summary.experiments] == ["keep", "keep"] and summary.proposals_failed == 3
    rows = proposals(ws)
    assert [p.status for p in rows] == ["failed", "failed", "failed", "used"]
    assert "timed out" in rows[0].error and rows[1].error.startswith("bad answer from the model server")
    assert "no SEARCH/REPLACE block" in rows[2].error


def test_anthropic_wire_format_drives_the_loop(tiny_workspace, monkeypatch):
    ws = tiny_workspace
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    alpha = line_of(ws, "ALPHA = ")
    script = [Reply(status=529, text="overloaded"), answer("alpha 0.5", alpha, alpha.replace("ALPHA = 1.0", "ALPHA = 0.5"))]
    with ScriptedLLMServer(script) as server:
        model = AnthropicChat("claude-haiku-4-5", base_url=server.anthropic_base_url, max_retries=2, timeout=10)
        summary = run_study(ws, [LLMProposer(model)], options(max_experiments=2))
        requests = server.requests
    assert [r.description for r in summary.experiments] == ["baseline", "alpha 0.5"]
    assert [r["path"] for r in requests] == ["/v1/messages", "/v1/messages"]
    body = requests[-1]["json"]
    assert "autonomous machine-learning researcher" in body["system"][0]["text"] and body["messages"][0]["role"] == "user"
    headers = requests[-1]["headers"]
    assert "test-key" in headers.get("x-api-key", "") + headers.get("authorization", "")
    assert proposals(ws)[0].cost_usd == pytest.approx((100 * 1 + 50 * 5) / 1e6)


def test_unreachable_server_and_missing_key_are_one_line_errors(monkeypatch):
    model = OpenAIChat("m", base_url="http://127.0.0.1:9/v1", max_retries=0, timeout=2)
    with pytest.raises(ModelError, match=r"^the model server at http://127.0.0.1:9/v1 is unreachable"):
        model.complete("system", [{"role": "user", "content": "hi"}])
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ModelError, match="no API key: set OPENAI_API_KEY"):
        OpenAIChat("gpt-4.1")


def test_cli_run_with_a_base_url(tiny_workspace):
    ws = tiny_workspace
    order = line_of(ws, "ORDER = ")
    with ScriptedLLMServer([answer("order 3", order, order.replace("ORDER = 2", "ORDER = 3"))]) as server:
        out = run_cli("run", "--base-url", server.base_url, "--model", "served", "--max-experiments", "2",
                      "--no-pipeline", cwd=ws)
    assert out.returncode == 0, out.stderr
    assert "experiment 2: KEEP" in out.stdout and "with openai served" in out.stdout
