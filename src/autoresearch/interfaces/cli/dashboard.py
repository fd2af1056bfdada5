"""`autoresearch dashboard`: a live, read-only web page of the study."""

from __future__ import annotations

from autoresearch.interfaces.cli.common import workspace_flag
from autoresearch.store.workspace import Workspace


def add_parser(sub) -> None:
    p = sub.add_parser("dashboard", help="a live, read-only web page of the study (127.0.0.1 by default)")
    workspace_flag(p)
    p.add_argument("--host", default="127.0.0.1", help="any other address than loopback requires a token")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--token", help="the access token (default: none on loopback, a random one elsewhere)")
    p.set_defaults(handler=command)


def command(args) -> int:
    from autoresearch.interfaces.dashboard import DashboardServer

    server = DashboardServer(Workspace.find(args.workspace), host=args.host, port=args.port, token=args.token)
    print(f"dashboard: {server.url}  (read-only; Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0
