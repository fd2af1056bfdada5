"""`autoresearch run`: the autonomous loop, built from the flags and autoresearch.toml."""

from __future__ import annotations

import dataclasses
import sys
from contextlib import ExitStack

from autoresearch.core.errors import UserError
from autoresearch.interfaces.cli.common import (
    live_view,
    live_view_wanted,
    say_what_the_sandbox_does_not_enforce,
    workspace_flag,
)
from autoresearch.store.workspace import STATE_DIR, Workspace


def add_parser(sub) -> None:
    p = sub.add_parser("run", help="the autonomous loop: propose, run, judge, keep or revert, record, until stopped")
    workspace_flag(p)
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
    p.add_argument("--top-k", type=int,
                   help="sometimes propose from one of the k best kept commits, not only the best (default: "
                        "[study] top_k, 1: greedy)")
    p.add_argument("--explore", type=float, metavar="SHARE",
                   help="with --top-k > 1: the share of proposals made from another of the k best (default 0.3)")
    p.add_argument("--max-idle-proposals", type=int, metavar="N",
                   help="stop after N proposals in a row that could not run (default 30)")
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
    p.set_defaults(handler=command)


def command(args) -> int:
    from autoresearch.core.events import EventBus
    from autoresearch.interfaces.plain import PlainPrinter
    from autoresearch.propose.agent import NO_MODEL_HINT, check_prices, make_proposers
    from autoresearch.study.study import Study

    ws = Workspace.find(args.workspace)
    task = ws.task()
    settings = _agent_settings(args, task)
    options = _study_options(args, task)
    check_prices(settings, options.max_cost_usd)  # before anything runs: a cap on spend needs every model's price
    say_what_the_sandbox_does_not_enforce(task)
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
        if live_view_wanted(args):
            bus.subscribe(stack.enter_context(live_view(task)))
        else:
            bus.subscribe(PlainPrinter(verbose=args.verbose))
        summary = Study(ws, proposers, executor, options, bus).run()
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


def _study_options(args, task):
    """[study] from autoresearch.toml, with the flags given on top."""
    from pydantic import ValidationError

    from autoresearch.core.settings import config_problem
    from autoresearch.study.study import StudyOptions

    flags = dict(max_experiments=args.max_experiments, hours=args.hours, max_cost_usd=args.max_cost,
                 pipeline=False if args.no_pipeline else None, top_k=args.top_k, explore=args.explore,
                 seed=args.seed, max_idle_proposals=args.max_idle_proposals)
    given = {key: value for key, value in flags.items() if value is not None}
    early_abort = None if args.early_abort is None else args.early_abort == "on"
    try:
        return StudyOptions(**{**dataclasses.asdict(task.study), **given}, early_abort=early_abort)
    except ValidationError as exc:  # the file's values were checked when it was read: a flag is wrong
        flag = lambda loc: "--max-cost" if loc[0] == "max_cost_usd" else "--" + str(loc[0]).replace("_", "-")  # noqa: E731
        raise UserError(config_problem(exc, flag)) from None


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
