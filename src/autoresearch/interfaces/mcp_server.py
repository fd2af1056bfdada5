"""MCP server: lets an outside coding agent (Claude Code, Codex, ...) drive the research loop.

The agent edits the editable files with its own file tools and calls `run_experiment`; the harness
commits, trains, judges and records exactly as `autoresearch exp` does, so the books stay honest
whoever runs the loop. The other tools only read the ledger, the task and the run logs.

Served over stdio, where stdout is the protocol channel: training output goes only to each run's
log (the runner pipes the child's output, and the SDK points fd 1 at stderr while it serves).

    python -m autoresearch.interfaces.mcp_server [-C DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import anyio
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field
from typing_extensions import TypedDict  # pydantic needs this one below Python 3.12 (nested results)

from autoresearch import __version__
from autoresearch.core.errors import UserError
from autoresearch.core.events import EventBus, Progress
from autoresearch.core.records import Experiment
from autoresearch.core.status import Status
from autoresearch.core.task import load_task
from autoresearch.interfaces.history import branch_briefing, curves_json
from autoresearch.run.trial import log_tail as read_log_tail
from autoresearch.store import gitops
from autoresearch.store.ledger import Ledger
from autoresearch.store.workspace import Workspace
from autoresearch.study.manual import run_experiment as run_one

# The harness raises these on purpose with a one-line message meant for whoever drives it.
HARNESS_ERRORS = (UserError,)
CRASH_TAIL_LINES = 30
OK_TAIL_LINES = 5
MAX_TAIL_LINES = 2000

INSTRUCTIONS = """\
autoresearch runs an ML research loop in one git workspace and keeps its books.
1. Call task() once: the metric and its direction, the budget, which files you may edit, and
   program.md (the researcher's text about the research; how to drive the harness is this text).
2. Edit only the editable files, with your own file tools: one idea per experiment.
3. Call run_experiment(description): it commits the edit, trains, and keeps it only if it beats
   the best so far; otherwise the branch moves back (the attempt stays recorded).
4. Use briefing() (the notes the built-in proposer reads: the best run's figures and curve, where
   recent curves part from it), history(), best(), curves(id), diff(id) and log_tail(id) to decide
   what to try next. Repeat.
Never edit frozen files: the harness refuses to run, or marks the run a crash."""

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
RUNS = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False)


class RunOutcome(TypedDict):
    id: int
    status: str  # keep | discard | crash
    metric: float | None
    incumbent: float | None  # the best metric before this run; None for the first one
    reason: str
    commit: str
    wall_seconds: float
    log_tail: str


class HistoryEntry(TypedDict):
    id: int
    commit: str
    status: str  # running | keep | discard | crash
    metric: float | None
    description: str
    reason: str


class History(TypedDict):
    branch: str
    total: int  # all experiments on the branch; `experiments` holds the last `limit` of them
    experiments: list[HistoryEntry]


class Best(TypedDict, total=False):
    # Either id, commit, metric and description, or only message when nothing was kept yet.
    id: int
    commit: str
    metric: float | None
    description: str
    message: str


class CurvePoint(TypedDict):
    step: int
    fraction: float  # of the budget, 0..1
    loss: float | None  # the smoothed training loss; None where it was not finite (the run diverged)
    tokens_per_second: float | None
    seconds: float | None  # since the run's first progress line, on the harness's clock


class Briefing(TypedDict):
    branch: str
    lines: list[str]  # empty until an experiment was kept


class BudgetInfo(TypedDict):
    kind: str
    value: float
    timeout: float


class TaskInfo(TypedDict):
    name: str
    metric: str
    direction: str
    budget: BudgetInfo
    command: list[str]
    editable: list[str]
    frozen: list[str]
    program: str


def build_server(workspace: Path) -> MCPServer:
    workspace = Workspace.of(workspace).root
    server = MCPServer("autoresearch", instructions=INSTRUCTIONS, version=__version__)
    _add_experiment_tool(server, workspace)
    _add_reading_tools(server, workspace)
    _add_curve_tools(server, workspace)
    _add_task_tool(server, workspace)
    return server


def _add_experiment_tool(server: MCPServer, workspace: Path) -> None:
    @server.tool(annotations=RUNS)
    async def run_experiment(description: Annotated[str, Field(description="one line: what this experiment changes")],
                             ctx: Context, allow_empty: bool = False) -> RunOutcome:
        """Run the current editable files (e.g. train.py) as one experiment and judge it.

        Edit the files first with your own tools. The harness commits them, runs the task's
        training command under its budget, reads the metric, and compares it with the best so
        far: `keep` leaves the commit on the branch, `discard` or `crash` moves the branch back
        (and restores the files), and every attempt is recorded. Takes as long as one training
        run. Refused when nothing changed since the last experiment, unless allow_empty is true
        (a rerun of the same code, e.g. to measure noise).

        Returns id, status (keep | discard | crash), metric, incumbent (the best before this
        run), reason, commit, wall_seconds and log_tail (the last 30 lines of the run's output
        if it crashed, else the last 5). While it trains, the share of the budget spent, the step
        and the loss come as progress notifications to a client that asks for them.
        """
        bus = EventBus(_progress_notifier(ctx, asyncio.get_running_loop()))  # never print: stdout is the wire
        with _harness_errors():
            result = await anyio.to_thread.run_sync(
                lambda: run_one(workspace, description, allow_empty=allow_empty, bus=bus))
        tail = CRASH_TAIL_LINES if result.status == Status.CRASH else OK_TAIL_LINES
        return RunOutcome(id=result.id, status=result.status, metric=result.metric, incumbent=result.incumbent,
                          reason=result.reason, commit=result.commit, wall_seconds=round(result.wall_seconds, 2),
                          log_tail=read_log_tail(result.log_path, tail))


def _progress_notifier(ctx: Context, loop: asyncio.AbstractEventLoop):
    """Training progress (from the run's own progress lines) as MCP progress notifications."""
    def on_event(event) -> None:
        if isinstance(event, Progress):  # published from the run's slot thread: hand it to the server's loop
            message = f"step {event.step}, loss {event.loss:.4f}"
            asyncio.run_coroutine_threadsafe(ctx.report_progress(min(event.fraction, 1.0), 1.0, message), loop)
    return on_event


def _add_reading_tools(server: MCPServer, workspace: Path) -> None:
    @server.tool(annotations=READ_ONLY)
    def history(limit: Annotated[int, Field(ge=1, description="how many of the latest experiments")] = 50) -> History:
        """The experiments on the current research branch, oldest first and newest last.

        Each has id, commit (7 characters), status (keep | discard | crash, or running while one
        is in progress), metric, description and reason (why it was kept or not).
        """
        with _harness_errors(), _open_ledger(workspace) as ledger:
            branch = gitops.current_branch(workspace)
            experiments = ledger.experiments(branch)
        return History(branch=branch, total=len(experiments),
                       experiments=[_history_entry(exp) for exp in experiments[-limit:]])

    @server.tool(annotations=READ_ONLY)
    def best() -> Best:
        """The best experiment so far on the current branch (the one the branch head stands on).

        Returns id, commit (7 characters), metric and description, or a message when no
        experiment has been kept yet (run the baseline first).
        """
        with _harness_errors(), _open_ledger(workspace) as ledger:
            branch = gitops.current_branch(workspace)
            incumbent = ledger.incumbent(branch)
        if incumbent is None:
            return Best(message=f"no experiment kept on {branch} yet: run_experiment('baseline') first")
        return Best(id=incumbent.id, commit=_short(incumbent), metric=incumbent.metric,
                    description=incumbent.description)

    @server.tool(annotations=READ_ONLY)
    def diff(experiment_id: int) -> str:
        """The git diff one experiment made to the editable files, as recorded when it ran
        (also for discarded and crashed attempts, which are no longer on the branch)."""
        with _harness_errors():
            exp = _experiment(workspace, experiment_id)
        if not exp.diff:
            return f"experiment {exp.id} changed nothing: it ran the code of its parent {exp.parent[:7]}"
        return exp.diff

    @server.tool(annotations=READ_ONLY)
    def log_tail(experiment_id: int,
                 lines: Annotated[int, Field(ge=1, le=MAX_TAIL_LINES, description="how many lines from the end")] = 50
                 ) -> str:
        """The last lines of one experiment's training output (stdout and stderr together):
        the place to read a crash's traceback or the full summary block."""
        with _harness_errors():
            exp = _experiment(workspace, experiment_id)
        if not exp.log_path:
            raise ToolError(f"experiment {exp.id} has no log: it stopped before training started")
        return read_log_tail(workspace / exp.log_path, lines) or f"experiment {exp.id}'s log is empty or missing"


def _add_curve_tools(server: MCPServer, workspace: Path) -> None:
    @server.tool(annotations=READ_ONLY)
    def curves(experiment_id: int) -> dict[str, list[CurvePoint]]:
        """One experiment's training curves: run number ("1", and "2"... for reruns) -> its
        progress points in order, each with step, fraction (the share of the budget spent, 0..1),
        loss (the smoothed training loss; null if it diverged), tokens_per_second and seconds.
        Empty when the training printed no progress lines. Compare an attempt's curve with the
        best's to see where it fell behind, or whether it was still improving when time ran out."""
        with _harness_errors():
            exp = _experiment(workspace, experiment_id)
            with _open_ledger(workspace) as ledger:
                runs = ledger.curves([exp.id]).get(exp.id, {})
        return curves_json(runs)

    @server.tool(annotations=READ_ONLY)
    def briefing() -> Briefing:
        """The notes autoresearch's own proposer reads before each proposal, for the current branch:
        the best run's figures (steps, tokens/s, MFU, peak memory, device), its training curve at a
        few shares of the budget, where recent experiments' curves part from it, training loss
        against the metric where they disagree, and, after many experiments without a keep, a call
        for a structural change. Empty until an experiment was kept."""
        with _harness_errors():
            settings = load_task(workspace)
            branch = gitops.current_branch(workspace)
            with _open_ledger(workspace) as ledger:
                lines = branch_briefing(ledger, branch, settings)
        return Briefing(branch=branch, lines=lines)


def _add_task_tool(server: MCPServer, workspace: Path) -> None:
    @server.tool(annotations=READ_ONLY)
    def task() -> TaskInfo:
        """The task's settings and instructions: the metric and its direction (minimize or
        maximize), the budget (kind, value, hard timeout in seconds), the training command, the
        files you may edit and those you must not touch, and the text of program.md."""
        with _harness_errors():
            settings = load_task(workspace)
        program = workspace / settings.program
        return TaskInfo(name=settings.name, metric=settings.metric, direction=settings.direction,
                        budget=BudgetInfo(kind=settings.budget.kind, value=settings.budget.value,
                                          timeout=settings.budget.timeout),
                        command=settings.command, editable=settings.editable, frozen=settings.frozen,
                        program=program.read_text(errors="replace") if program.is_file() else "")


@contextmanager
def _harness_errors() -> Iterator[None]:
    """The harness's deliberate errors reach the model as tool errors with their message; anything
    else stays a crash (the SDK reports it without details and logs the traceback to stderr)."""
    try:
        yield
    except HARNESS_ERRORS as exc:
        raise ToolError(str(exc)) from exc


@contextmanager
def _open_ledger(workspace: Path) -> Iterator[Ledger]:
    ledger = Workspace(workspace).open_ledger(readonly=True)  # one read-only connection per call: tools run in worker threads
    try:
        yield ledger
    finally:
        ledger.close()


def _experiment(workspace: Path, experiment_id: int) -> Experiment:
    with _open_ledger(workspace) as ledger:
        exp = ledger.get(experiment_id)
    if exp is None:
        raise ToolError(f"no experiment {experiment_id} in this workspace: history() lists them")
    return exp


def _short(exp: Experiment) -> str:
    return (exp.commit or exp.parent)[:7]


def _history_entry(exp: Experiment) -> HistoryEntry:
    return HistoryEntry(id=exp.id, commit=_short(exp), status=exp.status, metric=exp.metric,
                        description=exp.description, reason=exp.reason)


def serve(workspace: Path) -> None:
    """Serve the workspace's tools over stdio until the client closes the connection."""
    build_server(workspace).run("stdio")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autoresearch.interfaces.mcp_server",
                                     description="Serve an autoresearch workspace to coding agents over MCP (stdio).")
    parser.add_argument("-C", "--workspace", type=Path, default=Path("."),
                        help="the workspace, or a directory inside it (default: the current directory)")
    args = parser.parse_args(argv)
    try:
        workspace = Workspace.find(args.workspace).root
        load_task(workspace)  # a broken config fails here, in one line, not at the first tool call
    except UserError as exc:
        print(f"autoresearch: {exc}", file=sys.stderr)
        return 1
    try:
        serve(workspace)
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
