"""`autoresearch report`: the progress plot and a static HTML page, from a workspace or a results.tsv."""

from __future__ import annotations

from pathlib import Path

from autoresearch.core.errors import UserError
from autoresearch.store.workspace import STATE_DIR, Workspace


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="progress plot (PNG, SVG) and a static HTML report")
    p.add_argument("source", nargs="?", type=Path, default=Path("."),
                   help="a workspace (default: here) or any results.tsv in the original format")
    p.add_argument("--out", type=Path, help=f"output directory (default: <workspace>/{STATE_DIR}/report)")
    p.set_defaults(handler=command)


def command(args) -> int:
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
