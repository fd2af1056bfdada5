"""`autoresearch init`: a new workspace from a template."""

from __future__ import annotations

from pathlib import Path

from autoresearch.store.workspace import Workspace


def add_parser(sub) -> None:
    p = sub.add_parser("init", help="make a research workspace (a git repo) from a template")
    p.add_argument("directory", type=Path)
    p.add_argument("--template", default="llm", help="llm (default) or tiny")
    p.add_argument("--preset", help="llm size preset: h100, gpu, mps or cpu (default: picked from the hardware)")
    p.add_argument("--tag", help="research branch autoresearch/<tag> (default: today, e.g. nov26)")
    p.add_argument("--dataset", help="shakespeare, climbmix, tinystories, or a path to .txt/.jsonl/.parquet files")
    p.add_argument("--budget", type=float, help="training budget in seconds (default: the preset's)")
    p.set_defaults(handler=command)


def command(args) -> int:
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
