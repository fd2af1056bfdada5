"""`autoresearch export`: the ledger's experiments as MLflow runs."""

from __future__ import annotations

from autoresearch.core.errors import UserError
from autoresearch.interfaces.cli.common import workspace_flag
from autoresearch.store.workspace import STATE_DIR, Workspace


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="export the ledger: MLflow runs")
    workspace_flag(p)
    p.add_argument("--mlflow", nargs="?", const="", metavar="TRACKING_URI", required=True,
                   help=f"MLflow tracking URI (default: a local store in {STATE_DIR}/mlruns)")
    p.set_defaults(handler=command)


def command(args) -> int:
    ws = Workspace.find(args.workspace)
    try:
        from autoresearch.interfaces.mlflow_export import MlflowExporter
    except ImportError:
        raise UserError("MLflow export needs mlflow: pip install 'autoresearch[mlflow]'") from None
    exporter = MlflowExporter(ws, args.mlflow or None)
    count = exporter.export_all()
    print(f"logged {count} experiment(s) to {exporter.uri}")
    return 0
