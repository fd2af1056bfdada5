"""Command line: `autoresearch init | prepare | exp | run | status | history | report | dashboard | mcp | export`.

It parses arguments, builds what a command needs (a study, its proposers, its executor), subscribes
the views and prints; the work itself lives in the layers below.
"""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import ExitStack
from pathlib import Path

from autoresearch import __version__
from autoresearch.core.errors import UserError
from autoresearch.store.workspace import STATE_DIR, Workspace


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return args.handler(args) or 0
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except (UserError, ValueError, FileNotFoundError) as exc:  # expected failures: one line, never a traceback
        print(f"autoresearch: {exc}", file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="autoresearch", description="An autonomous research loop for ML code.")
    parser.add_argument("--version", action="version", version=f"autoresearch {__version__}")
    sub = parser.add_subparsers(title="commands")
    for add in (_init_parser, _adopt_parser, _prepare_parser, _exp_parser, _run_parser, _verify_parser, _export_parser,
                _history_parser, _report_parser, _dashboard_parser, _mcp_parser, _status_parser):
        add(sub)
    return parser


def _workspace_flag(p) -> None:
    p.add_argument("-C", "--workspace", type=Path, default=Path("."), help="the workspace (default: here)")


def _init_parser(sub) -> None:
    p = sub.add_parser("init", help="make a research workspace (a git repo) from a template")
    p.add_argument("directory", type=Path)
    p.add_argument("--template", default="llm", help="llm (default) or tiny")
    p.add_argument("--preset", help="llm size preset: h100, gpu, mps or cpu (default: picked from the hardware)")
    p.add_argument("--tag", help="research branch autoresearch/<tag> (default: today, e.g. nov26)")
    p.add_argument("--dataset", help="shakespeare, climbmix, tinystories, or a path to .txt/.jsonl/.parquet files")
    p.add_argument("--budget", type=float, help="training budget in seconds (default: the preset's)")
    p.set_defaults(handler=cmd_init)


def _adopt_parser(sub) -> None:
    p = sub.add_parser("adopt", help="make an existing training repository a workspace (writes autoresearch.toml)")
    p.add_argument("directory", type=Path, nargs="?", default=Path("."), help="the repository (default: here)")
    p.add_argument("--command", required=True, help="what trains, e.g. 'python train.py --max_iters=200'")
    p.add_argument("--metric", required=True, help="the name of the number that decides, e.g. val_loss")
    p.add_argument("--metric-pattern", default="", metavar="REGEX",
                   help="read the metric from the run's own log lines: one group around the number; the last match wins")
    p.add_argument("--direction", choices=["minimize", "maximize"], default="minimize")
    p.add_argument("--editable", action="append", default=[], metavar="GLOBS",
                   help="files the agent may change (default: the script the command runs)")
    p.add_argument("--frozen", action="append", default=[], metavar="GLOBS", help="files runs must leave as they are")
    p.add_argument("--knob", action="append", default=[], metavar="'NAME[=VALUE] SPEC'",
                   help="a command-line flag to search, e.g. 'learning_rate float 1e-4..1e-2 log' "
                        "(its start: VALUE, or the script's own default)")
    p.add_argument("--budget", type=float, help="seconds of each run, by the harness's clock (default 300)")
    p.add_argument("--timeout", type=float, help="hard limit of a run in seconds (default 2 x budget + 60)")
    p.add_argument("--tag", help="research branch autoresearch/<tag> (default: today, e.g. nov26)")
    p.add_argument("--dry-run", action="store_true", help="print the autoresearch.toml it would write; change nothing")
    p.set_defaults(handler=cmd_adopt)


def _prepare_parser(sub) -> None:
    p = sub.add_parser("prepare", help="download the data and train the tokenizer (cached, safe to rerun)")
    _workspace_flag(p)
    p.add_argument("--num-shards", type=int, default=8, help="climbmix training shards to download (default 8)")
    p.set_defaults(handler=cmd_prepare)


def _exp_parser(sub) -> None:
    p = sub.add_parser("exp", help="run the current train.py as one experiment: commit, train, judge, record")
    p.add_argument("-m", "--message", required=True, help="one line: what this experiment changes")
    _workspace_flag(p)
    p.add_argument("--allow-empty", action="store_true", help="run even if nothing changed (a rerun of the same code)")
    p.add_argument("-q", "--quiet", action="store_true", help="do not stream the training output")
    p.add_argument("--plain", action="store_true", help="plain lines instead of the live view (default when not a terminal)")
    p.set_defaults(handler=cmd_exp)


def _run_parser(sub) -> None:
    p = sub.add_parser("run", help="the autonomous loop: propose, run, judge, keep or revert, record, until stopped")
    _workspace_flag(p)
    p.add_argument("--provider", action="append", metavar="NAME[:MODEL]",
                   help="who proposes: openai, anthropic, local, random or tpe, optionally with a model "
                        "(openai:gpt-4.1); give it more than once for several proposers in one study "
                        "(default: [agent] in autoresearch.toml; random when no model is configured)")
    p.add_argument("--model", help="model name, e.g. gpt-4.1 or claude-sonnet-4-5 (API key from the environment)")
    p.add_argument("--base-url", help="an OpenAI-compatible server: vLLM, Ollama, llama.cpp, OpenRouter")
    p.add_argument("--max-experiments", type=int, help="stop after this many experiments (one slot: the baseline counts)")
    p.add_argument("--hours", type=float, help="stop after this many hours")
    p.add_argument("--max-cost", type=float, metavar="USD", help="stop once the models' recorded spend reaches this")
    p.add_argument("--max-fix-attempts", type=int, help="times a crash goes back to its proposer (default 2)")
    p.add_argument("--seed", type=int, help="seed of the random proposer, the bandit and top-k choices")
    p.add_argument("--no-pipeline", action="store_true", help="do not write the next proposal while runs train")
    p.add_argument("--top-k", type=int, default=1,
                   help="sometimes propose from one of the k best kept commits, not only the best (default 1: greedy)")
    p.add_argument("--early-abort", choices=["on", "off"],
                   help="stop candidates whose training curve cannot catch the best's (default: [early_abort] "
                        "in autoresearch.toml, on unless it says enabled = false)")
    p.add_argument("-v", "--verbose", action="store_true", help="stream the training output (plain mode)")
    p.add_argument("--plain", action="store_true", help="plain lines instead of the live view (default when not a terminal)")
    p.add_argument("--mlflow", nargs="?", const="", metavar="TRACKING_URI",
                   help=f"log each experiment to MLflow (default store: {STATE_DIR}/mlruns; needs the mlflow extra)")
    p.add_argument("--executor", choices=["local", "ray"], default="local",
                   help="where runs happen: local slots (default) or a Ray cluster (needs the ray extra)")
    p.add_argument("--slots", type=int, default=1,
                   help="experiments at once: local = one GPU each (or a share of the CPU cores); ray = at most this many")
    p.add_argument("--gpus", help="GPUs for local slots, e.g. 0,1,2,3 (default: every visible GPU)")
    p.add_argument("--address", default="auto", help="Ray cluster address (default: auto, a running `ray start` cluster)")
    p.set_defaults(handler=cmd_run)


def _verify_parser(sub) -> None:
    p = sub.add_parser("verify", help="re-measure the study's claims: records checked, baseline vs best rerun "
                                      "interleaved on validation and the held-out test split")
    _workspace_flag(p)
    p.add_argument("--runs", type=int, default=3, help="runs of each side (default 3)")
    p.add_argument("--baseline", default="", help="a commit or ref to measure against (default: the baseline)")
    p.add_argument("--best", default="", help="a commit or ref to measure (default: the best kept commit)")
    p.add_argument("--ablate", action="store_true", help="also the best with each kept change taken out in turn")
    p.add_argument("--records-only", action="store_true", help="check the record only, run nothing")
    p.add_argument("--json", action="store_true", help="the whole result as JSON, for programs")
    p.add_argument("--plain", action="store_true", help="plain lines instead of the live view")
    p.set_defaults(handler=cmd_verify)


def _export_parser(sub) -> None:
    p = sub.add_parser("export", help="export the ledger: MLflow runs")
    _workspace_flag(p)
    p.add_argument("--mlflow", nargs="?", const="", metavar="TRACKING_URI", required=True,
                   help=f"MLflow tracking URI (default: a local store in {STATE_DIR}/mlruns)")
    p.set_defaults(handler=cmd_export)


def _history_parser(sub) -> None:
    p = sub.add_parser("history", help="every experiment with its proposal and proposer: tokens, cost, latency")
    _workspace_flag(p)
    p.add_argument("--json", action="store_true", help="machine-readable, for programs and agents")
    p.add_argument("--all-branches", action="store_true")
    p.set_defaults(handler=cmd_history)


def _report_parser(sub) -> None:
    p = sub.add_parser("report", help="progress plot (PNG, SVG) and a static HTML report")
    p.add_argument("source", nargs="?", type=Path, default=Path("."),
                   help="a workspace (default: here) or any results.tsv in the original format")
    p.add_argument("--out", type=Path, help=f"output directory (default: <workspace>/{STATE_DIR}/report)")
    p.set_defaults(handler=cmd_report)


def _dashboard_parser(sub) -> None:
    p = sub.add_parser("dashboard", help="a live, read-only web page of the study (127.0.0.1 by default)")
    _workspace_flag(p)
    p.add_argument("--host", default="127.0.0.1", help="any other address than loopback requires a token")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--token", help="the access token (default: none on loopback, a random one elsewhere)")
    p.set_defaults(handler=cmd_dashboard)


def _mcp_parser(sub) -> None:
    p = sub.add_parser("mcp", help="serve this workspace to outside agents over the Model Context Protocol (stdio)")
    _workspace_flag(p)
    p.set_defaults(handler=cmd_mcp)


def _status_parser(sub) -> None:
    p = sub.add_parser("status", help="the experiments of this branch and the best so far")
    _workspace_flag(p)
    p.set_defaults(handler=cmd_status)


# -- commands -------------------------------------------------------------------------------------
def cmd_init(args) -> int:
    from autoresearch.store.templates import init_workspace

    ws = Workspace(init_workspace(args.directory, template=args.template, preset=args.preset, tag=args.tag,
                                  dataset=args.dataset, budget_seconds=args.budget))
    task = ws.task()
    preset = f", preset {task.preset}" if task.preset else ""
    print(f"made {ws.root} ({task.name} template{preset}) on branch {ws.branch()}")
    steps = ["autoresearch prepare"] if task.data.dataset else []
    steps.append('autoresearch exp -m "baseline"')
    print(f"next: cd {ws.root} && " + " && ".join(steps))
    return 0


def cmd_adopt(args) -> int:
    from autoresearch.store.adopt import AdoptError, AdoptOptions, plan, write

    root = args.directory.resolve()
    if not (root / ".git").exists():
        raise AdoptError(f"{root} is not a git repository: `git init && git add -A && git commit` it first")
    options = AdoptOptions(args.command, args.metric, args.metric_pattern, args.direction, args.editable, args.frozen,
                           args.budget, args.timeout, args.tag, args.knob)
    adopted = plan(root, options)
    if args.dry_run:
        print(adopted.toml, end="")
        return 0
    written = write(root, adopted)
    print(f"adopted {root} on branch {adopted.branch}: wrote {', '.join(written)}")
    for line in adopted.assumed:
        print(f"  assumed: {line}")
    print(f"next: cd {root} && autoresearch exp -m baseline && autoresearch run")
    return 0


def cmd_prepare(args) -> int:
    from autoresearch.data.build import prepare_data

    ws = Workspace.find(args.workspace)
    task = ws.task()
    if not task.data.dataset:
        print(f"nothing to prepare: the {task.name} task's data ships with the workspace")
        return 0
    data_dir = prepare_data(task.data.dataset, task.data.vocab_size, num_shards=args.num_shards,
                            log=lambda msg: print(msg, flush=True))
    ws.link_data(data_dir)
    print(f"data ready: {data_dir}")
    return 0


def cmd_exp(args) -> int:
    from autoresearch.core.events import EventBus
    from autoresearch.interfaces.plain import result_line
    from autoresearch.run.trial import log_tail
    from autoresearch.study.manual import run_experiment

    ws = Workspace.find(args.workspace)
    task = ws.task()
    _say_what_the_sandbox_does_not_enforce(task)
    bus = EventBus()
    with ExitStack() as stack:
        if not args.quiet and _live_view_wanted(args):
            bus.subscribe(stack.enter_context(_live_view(task)))
        elif not args.quiet:
            bus.subscribe(_print_output_and_notes)
        result = run_experiment(ws, args.message, allow_empty=args.allow_empty, task=task, bus=bus)
    print(f"{result_line(result)} | commit {result.commit[:7]}")
    if result.status == "crash" and args.quiet:
        print(log_tail(result.log_path, 15))
    return 0


def _print_output_and_notes(event) -> None:
    """`exp` in plain mode: the training output as it comes, and the harness's notes."""
    from autoresearch.core.events import Note, RunOutput

    if isinstance(event, RunOutput):
        print(event.line, flush=True)
    elif isinstance(event, Note):
        print(event.text, flush=True)


def cmd_run(args) -> int:
    from autoresearch.core.events import EventBus
    from autoresearch.interfaces.plain import PlainPrinter
    from autoresearch.propose.agent import NO_MODEL_HINT, make_proposers
    from autoresearch.study.study import Study

    ws = Workspace.find(args.workspace)
    task = ws.task()
    _say_what_the_sandbox_does_not_enforce(task)
    settings = _agent_settings(args, task)
    if [s.provider for s in settings] == ["random"]:
        print(NO_MODEL_HINT, flush=True)
    bus = EventBus()
    if args.mlflow is not None:
        bus.subscribe(_mlflow_subscriber(ws, args.mlflow))
    with ExitStack() as stack:
        proposers = make_proposers(settings, stack)
        executor = _executor(args, ws, task)
        where = "" if executor.capacity == 1 and args.executor == "local" else \
            f" on {executor.capacity} {args.executor} slot(s)"
        who = ", ".join(f"{s.provider} {s.model}".strip() for s in settings)
        print(f"autoresearch run in {ws.root} with {who}{where}; "
              f"stop with Ctrl-C or `touch {ws.relative(ws.stop_file)}`", flush=True)
        if not task.evaluation.command:
            print(f"{task.metric} is what each run reports of itself (no [evaluation] command): not verified",
                  flush=True)
        if _live_view_wanted(args):
            bus.subscribe(stack.enter_context(_live_view(task)))
        else:
            bus.subscribe(PlainPrinter(verbose=args.verbose))
        summary = Study(ws, proposers, executor, _study_options(args, settings), bus).run()
    print(f"stopped: {summary.stop_reason}. {len(summary.experiments)} experiments this run, {summary.kept} kept, "
          f"{summary.proposals_failed} failed proposals, {summary.duplicates} duplicates skipped"
          + (f", ${summary.spent_usd:.4f} spent on models" if summary.spent_usd else ""))
    if summary.gave_up:
        print(f"autoresearch: {summary.stop_reason}", file=sys.stderr)
        return 1
    return 0


def _agent_settings(args, task) -> list:
    from autoresearch.propose.agent import from_provider_flags, resolve

    overrides = dict(model=args.model, base_url=args.base_url, seed=args.seed, max_fix_attempts=args.max_fix_attempts)
    if args.provider:
        return from_provider_flags(args.provider, task.agent, **overrides)
    return [resolve(one, **overrides) for one in task.agents]


def _study_options(args, settings):
    from autoresearch.study.study import StudyOptions

    return StudyOptions(max_experiments=args.max_experiments, hours=args.hours, max_cost_usd=args.max_cost,
                        pipeline=not args.no_pipeline, top_k=args.top_k, seed=args.seed,
                        early_abort=None if args.early_abort is None else args.early_abort == "on",
                        max_fix_attempts=settings[0].max_fix_attempts)


def _executor(args, ws: Workspace, task):
    from autoresearch.execute.local import LocalExecutor, plan_slots, visible_gpus

    if args.executor == "ray":
        from autoresearch.execute.ray_cluster import RayExecutor
        return RayExecutor(ws, task, address=args.address, slots=args.slots if args.slots > 1 else None)
    gpus = args.gpus.split(",") if args.gpus else (visible_gpus() if args.slots > 1 else None)
    return LocalExecutor(ws, task, plan_slots(args.slots, gpus))


def _mlflow_subscriber(ws: Workspace, uri: str):
    try:  # fail now, not after the first experiment
        from autoresearch.interfaces.mlflow_export import MlflowExporter
    except ImportError:
        raise UserError("--mlflow needs mlflow: pip install 'autoresearch[mlflow]'") from None
    return MlflowExporter(ws, uri or None)


def _say_what_the_sandbox_does_not_enforce(task) -> None:
    """Once per command, on stderr: runs without bubblewrap are less isolated (README: Safety)."""
    from autoresearch.run.sandbox import find_sandbox
    missing = find_sandbox(task.sandbox.kind).not_enforced()
    if missing:
        print(f"autoresearch: no bubblewrap sandbox here (Linux: apt install bubblewrap); not enforced: "
              f"{'; '.join(missing)}", file=sys.stderr)


def cmd_verify(args) -> int:
    from autoresearch.core.events import EventBus
    from autoresearch.execute.local import LocalExecutor, plan_slots
    from autoresearch.interfaces.plain import PlainPrinter
    from autoresearch.interfaces.verification import render
    from autoresearch.study.verify import Verifier, VerifyOptions

    if args.runs < 1:
        raise UserError(f"--runs must be at least 1, not {args.runs}")
    ws = Workspace.find(args.workspace)
    task = ws.task()
    bus = EventBus()
    options = VerifyOptions(runs=args.runs, baseline=args.baseline, best=args.best, ablate=args.ablate,
                            records_only=args.records_only)
    with ExitStack() as stack:
        if not args.json:
            live = _live_view_wanted(args)
            bus.subscribe(stack.enter_context(_live_view(task)) if live else PlainPrinter(write=_stderr))
        result = Verifier(ws, LocalExecutor(ws, task, plan_slots(1)), options, bus).run()
    print(json.dumps(result, indent=2) if args.json else "\n".join(render(result)))
    return 1 if result["problems"] else 0


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def cmd_export(args) -> int:
    ws = Workspace.find(args.workspace)
    try:
        from autoresearch.interfaces.mlflow_export import MlflowExporter
    except ImportError:
        raise UserError("MLflow export needs mlflow: pip install 'autoresearch[mlflow]'") from None
    exporter = MlflowExporter(ws, args.mlflow or None)
    count = exporter.export_all()
    print(f"logged {count} experiment(s) to {exporter.uri}")
    return 0


def cmd_history(args) -> int:
    from autoresearch.interfaces.history import history, render

    ws = Workspace.find(args.workspace)
    branch = None if args.all_branches else ws.branch()
    with ws.open_ledger(readonly=True) as ledger:
        data = history(ledger, branch)
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print("\n".join(render(data)))
    return 0


def cmd_report(args) -> int:
    from autoresearch.store.workspace import WorkspaceError

    source = args.source
    if source.is_dir():
        try:
            source = Workspace.find(source).root
        except WorkspaceError:
            pass  # a plain directory holding a results.tsv
    out = args.out or (Workspace(source).report_dir if source.is_dir() else source.parent / "report")
    try:
        from autoresearch.interfaces.report import make_report
    except ImportError:
        raise UserError("the report needs matplotlib: pip install 'autoresearch[report]'") from None
    for path in make_report(source, out):
        print(path)
    return 0


def cmd_dashboard(args) -> int:
    from autoresearch.interfaces.dashboard import DashboardServer

    server = DashboardServer(Workspace.find(args.workspace), host=args.host, port=args.port, token=args.token)
    print(f"dashboard: {server.url}  (read-only; Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


def cmd_mcp(args) -> int:
    ws = Workspace.find(args.workspace)  # before importing mcp: a bad directory is one line either way
    try:
        from autoresearch.interfaces.mcp_server import serve
    except ImportError:
        raise UserError("the MCP server needs the mcp package: pip install 'autoresearch[mcp]'") from None
    serve(ws.root)  # stdout is the protocol channel from here on
    return 0


def cmd_status(args) -> int:
    from autoresearch.store.ledger import results_tsv_rows

    ws = Workspace.find(args.workspace)
    branch = ws.branch()
    with ws.open_ledger(readonly=True) as ledger:
        experiments, best = ledger.experiments(branch), ledger.incumbent(branch)
    print(f"branch {branch}: {len(experiments)} experiments")
    for line in results_tsv_rows(experiments):
        print(line)
    if best is not None:
        print(f"best: {best.metric:.6f} at {best.commit[:7]} ({best.description})")
    return 0


def _live_view_wanted(args) -> bool:
    from autoresearch.interfaces.plain import live_view_wanted

    return live_view_wanted(args.plain, getattr(args, "verbose", False))


def _live_view(task):
    from autoresearch.interfaces.view import LiveView

    return LiveView(task.budget.value if task.budget.kind == "seconds" else 0.0)


if __name__ == "__main__":
    sys.exit(main())
