"""The MCP server end to end: the SDK's own client spawns `python -m autoresearch.interfaces.mcp_server` and
drives the tiny task over stdio, the way Claude Code or Codex would. No mocks."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

pytest.importorskip("mcp")  # an optional extra: `pip install autoresearch[mcp]`

from conftest import git, set_line  # noqa: E402
from mcp import ClientSession, StdioServerParameters  # noqa: E402
from mcp.client.stdio import stdio_client  # noqa: E402
from mcp.types import CallToolResult  # noqa: E402

TOOLS = {"run_experiment", "history", "best", "diff", "log_tail", "task", "curves", "briefing"}


def test_agent_drives_the_loop_over_stdio(tiny_workspace, tmp_path):
    server_log = tmp_path / "server.stderr"
    try:
        anyio.run(_drive, tiny_workspace, server_log)
    finally:  # pytest shows this only when the test fails
        print(server_log.read_text() if server_log.exists() else "(no server output)")


async def _drive(ws: Path, server_log: Path) -> None:
    params = StdioServerParameters(command=sys.executable, args=["-m", "autoresearch.interfaces.mcp_server", "-C", str(ws)],
                                   env=dict(os.environ))
    with anyio.fail_after(120), open(server_log, "w") as errlog:
        async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            await _check_the_loop(session, ws)


async def _check_the_loop(session: ClientSession, ws: Path) -> None:
    assert {tool.name for tool in (await session.list_tools()).tools} == TOOLS

    settings = await call(session, "task")
    assert settings["metric"] == "val_bpb" and settings["direction"] == "minimize"
    assert settings["editable"] == ["train.py"] and "prepare.py" in settings["frozen"]
    assert "Research program" in settings["program"]
    assert "message" in await call(session, "best")  # nothing kept yet

    base = await call(session, "run_experiment", description="baseline")
    assert base["status"] == "keep" and base["reason"].startswith("baseline") and base["incumbent"] is None
    assert base["log_tail"].splitlines()[-1].startswith("causality:") and len(base["log_tail"].splitlines()) == 5

    set_line(ws / "train.py", "ORDER = ", "ORDER = 3")
    progress = []  # the run's progress lines reach the client as MCP progress notifications
    set_line(ws / "train.py", "    main()", "    print('step 00001 ( 50.0%) | loss 2.5000 | tok/s 100', flush=True); main()")

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, total, message))

    better = await call(session, "run_experiment", progress_callback=on_progress, description="order 3")
    assert progress == [(0.5, 1.0, "step 1, loss 2.5000")]
    assert better["status"] == "keep" and better["metric"] < base["metric"]
    assert better["incumbent"] == base["metric"]

    set_line(ws / "train.py", "ORDER = ", "ORDER = 0")
    worse = await call(session, "run_experiment", description="order 0")
    assert worse["status"] == "discard" and worse["metric"] > better["metric"]
    assert git(ws, "rev-parse", "HEAD") == better["commit"]  # the branch moved back
    assert "ORDER = 3" in (ws / "train.py").read_text()

    history = await call(session, "history")
    assert history["branch"] == "autoresearch/test" and history["total"] == 3
    rows = history["experiments"]
    assert [(r["id"], r["status"], r["description"]) for r in rows] == [
        (1, "keep", "baseline"), (2, "keep", "order 3"), (3, "discard", "order 0")]
    assert [r["commit"] for r in rows] == [e["commit"][:7] for e in (base, better, worse)]
    assert [r["id"] for r in (await call(session, "history", limit=2))["experiments"]] == [2, 3]
    await _check_curves_and_briefing(session)

    change = (await call(session, "diff", experiment_id=2))["result"]
    assert "-ORDER = 2" in change and "+ORDER = 3" in change
    tail = (await call(session, "log_tail", experiment_id=2, lines=3))["result"]
    assert tail.splitlines()[-1].startswith("causality:") and len(tail.splitlines()) == 3

    refused = await session.call_tool("run_experiment", {"description": "same again"})
    assert refused.is_error and "nothing changed" in _text(refused)
    missing = await session.call_tool("diff", {"experiment_id": 99})
    assert missing.is_error and "no experiment 99" in _text(missing)

    (ws / "train.py").write_text((ws / "train.py").read_text() + "\ndef broken(:\n")
    crash = await call(session, "run_experiment", description="broken edit")
    assert crash["status"] == "crash" and "SyntaxError" in crash["log_tail"]
    assert "def broken(" not in (ws / "train.py").read_text()

    best = await call(session, "best")
    assert best == {"id": 2, "commit": better["commit"][:7], "metric": better["metric"], "description": "order 3"}


async def _check_curves_and_briefing(session: ClientSession) -> None:
    """The curves the runs printed (the baseline printed no progress line) and the proposer's briefing."""
    point = {"step": 1, "fraction": 0.5, "loss": 2.5, "tokens_per_second": 100.0, "seconds": 0.0}
    assert await call(session, "curves", experiment_id=2) == {"1": [point]}
    assert await call(session, "curves", experiment_id=3) == {"1": [point]}
    assert await call(session, "curves", experiment_id=1) == {}
    missing = await session.call_tool("curves", {"experiment_id": 99})
    assert missing.is_error and "no experiment 99" in _text(missing)

    notes = await call(session, "briefing")
    assert notes["branch"] == "autoresearch/test"
    assert notes["lines"][0].startswith("The best so far (#2, val_bpb ")
    assert notes["lines"][1] == "Its training curve (share of the budget: smoothed training loss): 50 %: 2.500."
    assert "#3 order 0: loss against the best's at 50 %: +0.000" in notes["lines"][2]


async def call(session: ClientSession, tool: str, progress_callback=None, **arguments: Any) -> dict[str, Any]:
    """A tool's structured result; fails the test with the tool's message if it returned an error."""
    result = await session.call_tool(tool, arguments, progress_callback=progress_callback)
    assert not result.is_error, f"{tool} failed: {_text(result)}"
    assert result.structured_content is not None
    return result.structured_content


def _text(result: CallToolResult) -> str:
    return " ".join(block.text for block in result.content if block.type == "text")
