"""`autoresearch adopt`: an existing training repository becomes a workspace."""

from __future__ import annotations

from pathlib import Path


def add_parser(sub) -> None:
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
    p.set_defaults(handler=command)


def command(args) -> int:
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
