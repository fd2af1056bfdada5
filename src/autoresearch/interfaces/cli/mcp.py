"""`autoresearch mcp`: the workspace served to outside agents over the Model Context Protocol (stdio)."""

from __future__ import annotations

from autoresearch.core.errors import UserError
from autoresearch.interfaces.cli.common import workspace_flag
from autoresearch.store.workspace import Workspace


def add_parser(sub) -> None:
    p = sub.add_parser("mcp", help="serve this workspace to outside agents over the Model Context Protocol (stdio)")
    workspace_flag(p)
    p.set_defaults(handler=command)


def command(args) -> int:
    ws = Workspace.find(args.workspace)  # before importing mcp: a bad directory is one line either way
    try:
        from autoresearch.interfaces.mcp_server import serve
    except ImportError:
        raise UserError("the MCP server needs the mcp package: pip install 'autoresearch[mcp]'") from None
    serve(ws.root)  # stdout is the protocol channel from here on
    return 0
