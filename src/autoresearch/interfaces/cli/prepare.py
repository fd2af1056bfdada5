"""`autoresearch prepare`: the workspace's data and tokenizer, cached."""

from __future__ import annotations

from autoresearch.interfaces.cli.common import workspace_flag
from autoresearch.store.workspace import Workspace


def add_parser(sub) -> None:
    p = sub.add_parser("prepare", help="download the data and train the tokenizer (cached, safe to rerun)")
    workspace_flag(p)
    p.add_argument("--num-shards", type=int, default=8, help="climbmix training shards to download (default 8)")
    p.set_defaults(handler=command)


def command(args) -> int:
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
