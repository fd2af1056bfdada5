"""Command line: `autoresearch init | prepare | exp | run | status | history | report | dashboard | mcp`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from autoresearch import __version__


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
    except Exception as exc:  # every expected failure is one line for the user, never a traceback
        if not _is_user_error(exc):
            raise
        print(f"autoresearch: {exc}", file=sys.stderr)
        return 1


def _is_user_error(exc: Exception) -> bool:
    from autoresearch.interfaces.dashboard import DashboardError
    from autoresearch.data.download import DownloadError
    from autoresearch.data.shakespeare import DatasetError
    from autoresearch.study.experiment import ExperimentError
    from autoresearch.store.gitops import GitError
    from autoresearch.run.sandbox import SandboxError
    from autoresearch.execute.local import ExecutorError
    from autoresearch.core.task import ConfigError
    from autoresearch.store.workspace import WorkspaceError

    from autoresearch.propose.local_model import LocalModelError
    from autoresearch.propose.models import ModelError

    return isinstance(exc, (ConfigError, WorkspaceError, ExperimentError, GitError, DatasetError, DownloadError,
                            ModelError, LocalModelError, DashboardError, SandboxError, ExecutorError,
                            FileNotFoundError, ValueError))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="autoresearch", description="An autonomous research loop for ML code.")
    parser.add_argument("--version", action="version", version=f"autoresearch {__version__}")
    sub = parser.add_subparsers(title="commands")

    p = sub.add_parser("init", help="make a research workspace (a git repo) from a template")
    p.add_argument("directory", type=Path)
    p.add_argument("--template", default="llm", help="llm (default) or tiny")
    p.add_argument("--preset", help="llm size preset: h100, gpu, mps or cpu (default: picked from the hardware)")
    p.add_argument("--tag", help="research branch autoresearch/<tag> (default: today, e.g. nov26)")
    p.add_argument("--dataset", help="shakespeare, climbmix, tinystories, or a path to .txt/.jsonl/.parquet files")
    p.add_argument("--budget", type=float, help="training budget in seconds (default: the preset's)")
    p.set_defaults(handler=cmd_init)

    p = sub.add_parser("prepare", help="download the data and train the tokenizer (cached, safe to rerun)")
    p.add_argument("-C", "--workspace", type=Path, default=Path("."))
    p.add_argument("--num-shards", type=int, default=8, help="climbmix training shards to download (default 8)")
    p.set_defaults(handler=cmd_prepare)

    p = sub.add_parser("exp", help="run the current train.py as one experiment: commit, train, judge, record")
    p.add_argument("-m", "--message", required=True, help="one line: what this experiment changes")
    p.add_argument("-C", "--workspace", type=Path, default=Path("."))
    p.add_argument("--allow-empty", action="store_true", help="run even if nothing changed (a rerun of the same code)")
    p.add_argument("-q", "--quiet", action="store_true", help="do not stream the training output")
    p.add_argument("--plain", action="store_true", help="plain lines instead of the live view (default when not a terminal)")
    p.set_defaults(handler=cmd_exp)

    p = sub.add_parser("run", help="the autonomous loop: propose, run, judge, keep or revert, record, until stopped")
    p.add_argument("-C", "--workspace", type=Path, default=Path("."))
    p.add_argument("--provider", choices=["openai", "anthropic", "local", "random", "tpe"],
                   help="who proposes (default: [agent] in autoresearch.toml; random when no model is configured)")
    p.add_argument("--model", help="model name, e.g. gpt-4.1 or claude-sonnet-4-5 (API key from the environment)")
    p.add_argument("--base-url", help="an OpenAI-compatible server: vLLM, Ollama, llama.cpp, OpenRouter")
    p.add_argument("--max-experiments", type=int, help="stop after this many experiments")
    p.add_argument("--hours", type=float, help="stop after this many hours")
    p.add_argument("--max-fix-attempts", type=int, help="times a crash goes back to the model (default 2)")
    p.add_argument("--seed", type=int, help="seed of the random proposer")
    p.add_argument("--no-pipeline", action="store_true", help="do not write the next proposal while one trains")
    p.add_argument("--top-k", type=int, default=1,
                   help="sometimes propose from one of the k best kept commits, not only the best (default 1: greedy)")
    p.add_argument("-v", "--verbose", action="store_true", help="stream the training output (plain mode)")
    p.add_argument("--plain", action="store_true", help="plain lines instead of the live view (default when not a terminal)")
    p.add_argument("--mlflow", nargs="?", const="", metavar="TRACKING_URI",
                   help="log each experiment to MLflow (default store: .autoresearch/mlruns; needs the mlflow extra)")
    p.add_argument("--executor", choices=["local", "ray"], default="local",
                   help="where runs happen: local slots (default) or a Ray cluster (needs the ray extra)")
    p.add_argument("--slots", type=int, default=1,
                   help="experiments at once: local = one GPU each (or a share of the CPU cores); ray = at most this many")
    p.add_argument("--gpus", help="GPUs for local slots, e.g. 0,1,2,3 (default: every visible GPU)")
    p.add_argument("--address", default="auto", help="Ray cluster address (default: auto, a running `ray start` cluster)")
    p.set_defaults(handler=cmd_run)

    p = sub.add_parser("export", help="export the ledger: MLflow runs")
    p.add_argument("-C", "--workspace", type=Path, default=Path("."))
    p.add_argument("--mlflow", nargs="?", const="", metavar="TRACKING_URI", required=True,
                   help="MLflow tracking URI (default: a local store in .autoresearch/mlruns)")
    p.set_defaults(handler=cmd_export)

    p = sub.add_parser("history", help="every experiment with its proposal: tokens, cost, latency")
    p.add_argument("-C", "--workspace", type=Path, default=Path("."))
    p.add_argument("--json", action="store_true", help="machine-readable, for programs and agents")
    p.add_argument("--all-branches", action="store_true")
    p.set_defaults(handler=cmd_history)

    p = sub.add_parser("report", help="progress plot (PNG, SVG) and a static HTML report")
    p.add_argument("source", nargs="?", type=Path, default=Path("."),
                   help="a workspace (default: here) or any results.tsv in the original format")
    p.add_argument("--out", type=Path, help="output directory (default: <workspace>/.autoresearch/report)")
    p.set_defaults(handler=cmd_report)

    p = sub.add_parser("dashboard", help="a live, read-only web page of the study (127.0.0.1 by default)")
    p.add_argument("-C", "--workspace", type=Path, default=Path("."))
    p.add_argument("--host", default="127.0.0.1", help="any other address than loopback requires a token")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--token", help="the access token (default: none on loopback, a random one elsewhere)")
    p.set_defaults(handler=cmd_dashboard)

    p = sub.add_parser("mcp", help="serve this workspace to outside agents over the Model Context Protocol (stdio)")
    p.add_argument("-C", "--workspace", type=Path, default=Path("."))
    p.set_defaults(handler=cmd_mcp)

    p = sub.add_parser("status", help="the experiments of this branch and the best so far")
    p.add_argument("-C", "--workspace", type=Path, default=Path("."))
    p.set_defaults(handler=cmd_status)
    return parser


def cmd_init(args) -> int:
    from autoresearch.store.workspace import init_workspace

    path = init_workspace(args.directory, template=args.template, preset=args.preset, tag=args.tag,
                          dataset=args.dataset, budget_seconds=args.budget)
    from autoresearch.core.task import load_task

    task = load_task(path)
    branch = _git(path, "rev-parse", "--abbrev-ref", "HEAD")
    preset = f", preset {task.preset}" if task.preset else ""
    print(f"made {path} ({task.name} template{preset}) on branch {branch}")
    steps = ["autoresearch prepare"] if task.data.dataset else []
    steps.append('autoresearch exp -m "baseline"')
    print(f"next: cd {path} && " + " && ".join(steps))
    return 0


def cmd_prepare(args) -> int:
    from autoresearch.data.build import prepare_data
    from autoresearch.core.task import load_task
    from autoresearch.store.workspace import find_workspace, link_data

    workspace = find_workspace(args.workspace)
    task = load_task(workspace)
    if not task.data.dataset:
        print(f"nothing to prepare: the {task.name} task's data ships with the workspace")
        return 0
    data_dir = prepare_data(task.data.dataset, task.data.vocab_size, num_shards=args.num_shards,
                            log=lambda msg: print(msg, flush=True))
    link_data(workspace, data_dir)
    print(f"data ready: {data_dir}")
    return 0


def cmd_exp(args) -> int:
    from autoresearch.study.experiment import log_tail, run_experiment
    from autoresearch.store.workspace import find_workspace

    from autoresearch.study.loop import result_line
    from autoresearch.core.task import load_task

    workspace = find_workspace(args.workspace)
    task = load_task(workspace)
    _say_what_the_sandbox_does_not_enforce(task)
    on_line = None if args.quiet else (lambda line: print(line, flush=True))
    if not args.quiet and _live_view_wanted(args):
        with _live_view(task) as view:
            view.on_event(f"experiment: {args.message}")
            result = run_experiment(workspace, args.message, allow_empty=args.allow_empty, on_line=view.on_line,
                                    task=task)
            view.on_event(result_line(result))
    else:
        result = run_experiment(workspace, args.message, allow_empty=args.allow_empty, on_line=on_line, task=task)
    print(f"{result_line(result)} | commit {result.commit[:7]}")
    if result.status == "crash" and args.quiet:
        print(log_tail(result.log_path, 15))
    return 0


def _say_what_the_sandbox_does_not_enforce(task) -> None:
    """Once per command, on stderr: runs without bubblewrap are less isolated (README: Safety)."""
    from autoresearch.run.sandbox import find_sandbox
    missing = find_sandbox(task.sandbox.kind).not_enforced()
    if missing:
        print(f"autoresearch: no bubblewrap sandbox here (Linux: apt install bubblewrap); not enforced: "
              f"{'; '.join(missing)}", file=sys.stderr)


def cmd_run(args) -> int:
    from contextlib import ExitStack

    from autoresearch.propose.agent import NO_MODEL_HINT, make_proposer, resolve
    from autoresearch.study.loop import LoopOptions, run_loop
    from autoresearch.core.task import load_task
    from autoresearch.store.workspace import find_workspace

    workspace = find_workspace(args.workspace)
    task = load_task(workspace)
    _say_what_the_sandbox_does_not_enforce(task)
    settings = resolve(task.agent, provider=args.provider, model=args.model, base_url=args.base_url, seed=args.seed,
                       max_fix_attempts=args.max_fix_attempts)
    if settings.provider == "random":
        print(NO_MODEL_HINT, flush=True)
    if args.mlflow is not None:
        try:  # fail now, not after the first experiment
            from autoresearch.interfaces.mlflow_export import export_to_mlflow
        except ImportError:
            print("autoresearch: --mlflow needs mlflow: pip install 'autoresearch[mlflow]'", file=sys.stderr)
            return 1
    options = LoopOptions(max_experiments=args.max_experiments, hours=args.hours, pipeline=not args.no_pipeline,
                          top_k=args.top_k, seed=args.seed,
                          on_result=(lambda _: export_to_mlflow(workspace, args.mlflow or None)) if args.mlflow is not None else None,
                          max_fix_attempts=settings.max_fix_attempts,
                          on_line=(lambda line: print("  " + line, flush=True)) if args.verbose else None)
    if args.executor == "ray" or args.slots > 1:
        return _run_parallel(args, workspace, task, settings, export_to_mlflow if args.mlflow is not None else None)
    with ExitStack() as stack:
        proposer = make_proposer(settings, stack)
        label = f"{settings.provider}" + (f" {settings.model}" if settings.model else "")
        print(f"autoresearch run in {workspace} with {label}; stop with Ctrl-C or `touch .autoresearch/stop`", flush=True)
        on_event = lambda msg: print(msg, flush=True)  # noqa: E731
        if _live_view_wanted(args):
            view = stack.enter_context(_live_view(task))
            options.on_line, on_event = view.on_line, view.on_event
        summary = run_loop(workspace, proposer, options, on_event=on_event)
    kept = sum(1 for r in summary.experiments if r.status == "keep")
    print(f"stopped: {summary.stop_reason}. {len(summary.experiments)} experiments this run, {kept} kept, "
          f"{summary.proposals_failed} failed proposals, {summary.duplicates} duplicates skipped")
    return 0


def _run_parallel(args, workspace, task, settings, export) -> int:
    """Several experiments at once on local slots or a Ray cluster (parallel.py)."""
    from contextlib import ExitStack

    from autoresearch.propose.agent import make_proposer
    from autoresearch.execute.local import LocalExecutor, plan_slots, visible_gpus
    from autoresearch.study.parallel import ParallelOptions, run_parallel

    if args.slots < 1:
        print("autoresearch: --slots must be at least 1", file=sys.stderr)
        return 1
    if args.executor == "ray":
        from autoresearch.execute.ray_cluster import RayExecutor
        executor = RayExecutor(workspace, task, address=args.address, slots=args.slots if args.slots > 1 else None)
    else:
        gpus = args.gpus.split(",") if args.gpus else visible_gpus()
        executor = LocalExecutor(workspace, task, plan_slots(args.slots, gpus))
    options = ParallelOptions(max_experiments=args.max_experiments, hours=args.hours,
                              on_result=(lambda _: export(workspace, args.mlflow or None)) if export else None)
    with ExitStack() as stack:
        proposer = make_proposer(settings, stack)
        print(f"autoresearch run in {workspace} with {settings.provider} on {executor.capacity} {args.executor} slot(s); "
              "stop with Ctrl-C or `touch .autoresearch/stop`", flush=True)
        summary = run_parallel(workspace, proposer, executor, options, on_event=lambda msg: print(msg, flush=True))
    kept = sum(1 for r in summary.experiments if r.status == "keep")
    print(f"stopped: {summary.stop_reason}. {len(summary.experiments)} experiments this run, {kept} kept, "
          f"{summary.proposals_failed} failed proposals, {summary.duplicates} duplicates skipped")
    return 0


def cmd_export(args) -> int:
    from autoresearch.store.workspace import find_workspace

    workspace = find_workspace(args.workspace)
    try:
        from autoresearch.interfaces.mlflow_export import default_tracking_uri, export_to_mlflow
    except ImportError:
        print("autoresearch: MLflow export needs mlflow: pip install 'autoresearch[mlflow]'", file=sys.stderr)
        return 1
    count = export_to_mlflow(workspace, args.mlflow or None)
    print(f"logged {count} experiment(s) to {args.mlflow or default_tracking_uri(workspace)}")
    return 0


def cmd_history(args) -> int:
    import json

    from autoresearch.study.experiment import ledger_for
    from autoresearch.store.workspace import find_workspace

    workspace = find_workspace(args.workspace)
    branch = None if args.all_branches else _git(workspace, "rev-parse", "--abbrev-ref", "HEAD")
    ledger = ledger_for(workspace)
    try:
        experiments = ledger.experiments(branch)
        proposals = {p["id"]: p for p in ledger.proposals(branch=branch)}
    finally:
        ledger.close()
    rows = []
    for exp in experiments:
        proposal = proposals.get(exp.proposal_id) if exp.proposal_id else None
        rows.append({
            "id": exp.id, "branch": exp.branch, "commit": exp.commit, "parent": exp.parent, "status": exp.status,
            "metric": exp.metric, "incumbent": exp.incumbent, "description": exp.description, "reason": exp.reason,
            "wall_seconds": exp.wall_seconds, "metrics": exp.metrics, "log_path": exp.log_path,
            "proposal": None if proposal is None else {k: proposal[k] for k in (
                "id", "kind", "proposer", "model", "reasoning", "tokens_in", "tokens_out", "cost_usd", "latency_s",
                "attempts", "prompt", "response")},
        })
    unused = [p for p in proposals.values() if p["status"] in ("failed", "duplicate", "stale", "pending")]
    if args.json:
        print(json.dumps({"experiments": rows, "other_proposals": unused}, indent=2))
        return 0
    for row in rows:
        p = row["proposal"]
        value = f"{row['metric']:.6f}" if row["metric"] is not None and row["status"] != "crash" else "-"
        model = (f" | {p['proposer']} {p['model']} {p['tokens_in']}+{p['tokens_out']} tok"
                 + (f" ${p['cost_usd']:.4f}" if p["cost_usd"] is not None else "") + f" {p['latency_s']:.1f}s") if p else ""
        size = row["metrics"].get("lines_added"), row["metrics"].get("lines_removed")
        lines = f" [+{size[0]:.0f}/-{size[1]:.0f} lines]" if None not in size else ""
        print(f"{row['id']:4d} {(row['commit'] or '')[:7]} {row['status']:7s} {value:>9s}  {row['description']}{lines}{model}")
    if unused:
        counts = {s: sum(1 for p in unused if p["status"] == s) for s in ("failed", "duplicate", "stale", "pending")}
        print("proposals not run: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n))
    return 0


def cmd_report(args) -> int:
    from autoresearch.store.workspace import WorkspaceError, find_workspace

    source = args.source
    if source.is_dir():
        try:
            source = find_workspace(source)
        except WorkspaceError:
            pass  # a plain directory holding a results.tsv
    out = args.out or (source / ".autoresearch" / "report" if source.is_dir() else source.parent / "report")
    try:
        from autoresearch.interfaces.report import make_report
        paths = make_report(source, out)
    except ImportError:
        print("autoresearch: the report needs matplotlib: pip install 'autoresearch[report]'", file=sys.stderr)
        return 1
    for path in paths:
        print(path)
    return 0


def cmd_dashboard(args) -> int:
    from autoresearch.interfaces.dashboard import DashboardServer
    from autoresearch.store.workspace import find_workspace

    server = DashboardServer(find_workspace(args.workspace), host=args.host, port=args.port, token=args.token)
    print(f"dashboard: {server.url}  (read-only; Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


def cmd_mcp(args) -> int:
    from autoresearch.store.workspace import find_workspace

    workspace = find_workspace(args.workspace)  # before importing mcp: a bad directory is one line either way
    try:
        from autoresearch.interfaces.mcp_server import serve
    except ImportError:
        print("autoresearch: the MCP server needs the mcp package: pip install 'autoresearch[mcp]'", file=sys.stderr)
        return 1
    serve(workspace)  # stdout is the protocol channel from here on
    return 0


def cmd_status(args) -> int:
    from autoresearch.study.experiment import ledger_for
    from autoresearch.store.ledger import results_tsv_rows
    from autoresearch.store.workspace import find_workspace

    workspace = find_workspace(args.workspace)
    branch = _git(workspace, "rev-parse", "--abbrev-ref", "HEAD")
    ledger = ledger_for(workspace)
    try:
        experiments = ledger.experiments(branch)
        best = ledger.incumbent(branch)
    finally:
        ledger.close()
    print(f"branch {branch}: {len(experiments)} experiments")
    for line in results_tsv_rows(experiments):
        print(line)
    if best is not None:
        print(f"best: {best.metric:.6f} at {best.commit[:7]} ({best.description})")
    return 0


def _live_view_wanted(args) -> bool:
    return sys.stdout.isatty() and not args.plain and not getattr(args, "verbose", False)


def _live_view(task):
    from autoresearch.interfaces.view import LiveView

    return LiveView(task.budget.value if task.budget.kind == "seconds" else 0.0)


def _git(path: Path, *args: str) -> str:
    from autoresearch.store.gitops import git

    return git(path, *args)


if __name__ == "__main__":
    sys.exit(main())
