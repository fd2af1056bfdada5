"""Dashboard: a local web page that follows a study live. Read-only: it never changes the workspace.

Standard library HTTP server; the page polls `/api/state` every two seconds and draws the progress
plot itself (hover shows the description, a click opens the diff). It listens on 127.0.0.1 by
default; bound to any other address it requires a token (`?token=...` or `Authorization: Bearer`).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import secrets
import sqlite3
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from autoresearch.run.trial import log_tail

LOG_TAIL_LINES = 40


class DashboardError(ValueError):
    """A dashboard that cannot start; one line."""


def read_state(workspace: Path) -> dict:
    """Everything the page shows, read through a read-only SQLite connection."""
    db_path = workspace / ".autoresearch" / "ledger.sqlite"
    if not db_path.exists():
        return {"experiments": [], "running": None, "best": None, "reasoning": "", "sigma": None}
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
    try:
        db.row_factory = sqlite3.Row
        rows = db.execute("SELECT id, branch, commit_sha, parent, status, metric, incumbent, description, reason,"
                          " metrics_json, log_path, wall_seconds, proposal_id FROM experiments ORDER BY id").fetchall()
        proposal = db.execute("SELECT description, reasoning, model, created_at FROM proposals"
                              " WHERE reasoning != '' ORDER BY id DESC LIMIT 1").fetchone()
    finally:
        db.close()
    experiments, running = [], None
    for row in rows:
        metrics = json.loads(row["metrics_json"] or "{}")
        item = {"id": row["id"], "commit": (row["commit_sha"] or row["parent"])[:7], "status": row["status"],
                "metric": row["metric"], "description": row["description"], "reason": row["reason"],
                "runs": metrics.get("runs", 1), "wall_seconds": row["wall_seconds"], "branch": row["branch"]}
        if row["status"] == "running":
            running = {**item, "log_tail": _log_tail(workspace, row["id"])}
        else:
            experiments.append(item)
    kept = [e for e in experiments if e["status"] == "keep" and e["metric"] is not None]
    sigma = next((json.loads(r["metrics_json"] or "{}").get("sigma") for r in reversed(rows)
                  if json.loads(r["metrics_json"] or "{}").get("sigma") is not None), None)
    return {"experiments": experiments, "running": running, "best": kept[-1] if kept else None,
            "reasoning": (f"{proposal['description']}\n\n{proposal['reasoning']}" if proposal else ""),
            "sigma": sigma}


def read_diff(workspace: Path, exp_id: int) -> str | None:
    db = sqlite3.connect(f"file:{workspace / '.autoresearch' / 'ledger.sqlite'}?mode=ro", uri=True, timeout=5)
    try:
        row = db.execute("SELECT diff FROM experiments WHERE id = ?", (exp_id,)).fetchone()
    finally:
        db.close()
    return None if row is None else (row[0] or "(no diff: the baseline runs the code as the workspace was made)")


def _log_tail(workspace: Path, exp_id: int) -> str:
    runs = workspace / ".autoresearch" / "runs" / f"{exp_id:05d}"
    logs = sorted(runs.glob("run*.log"), key=lambda p: p.stat().st_mtime) if runs.exists() else []
    return log_tail(logs[-1], LOG_TAIL_LINES) if logs else ""


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class DashboardServer:
    """`with DashboardServer(workspace) as server: server.url` — or `serve_forever()` from the CLI."""

    def __init__(self, workspace: Path, host: str = "127.0.0.1", port: int = 8765, token: str | None = None):
        self.workspace = Path(workspace).resolve()
        if not (self.workspace / "autoresearch.toml").exists():
            raise DashboardError(f"{self.workspace} is not an autoresearch workspace")
        self.token = token if token is not None else (None if _is_loopback(host) else secrets.token_urlsafe(16))
        self.page = (resources.files("autoresearch.interfaces") / "dashboard.html").read_text()
        try:
            self.httpd = ThreadingHTTPServer((host, port), self._handler())
        except OSError as exc:
            raise DashboardError(f"cannot listen on {host}:{port} ({exc.strerror}); pick another --port") from None
        self.httpd.daemon_threads = True

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/" + (f"?token={self.token}" if self.token else "")

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def __enter__(self) -> DashboardServer:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format, *args):  # quiet: the terminal belongs to the user
                pass

            def do_GET(self):  # noqa: N802 (the http.server API)
                url = urlsplit(self.path)
                if not self._authorized(url):
                    return self._send(401, "text/plain", b"missing or wrong token\n")
                if url.path == "/":
                    return self._send(200, "text/html; charset=utf-8", server.page.encode())
                if url.path == "/api/state":
                    return self._send(200, "application/json", json.dumps(read_state(server.workspace)).encode())
                if url.path.startswith("/api/diff/") and url.path.rsplit("/", 1)[-1].isdigit():
                    diff = read_diff(server.workspace, int(url.path.rsplit("/", 1)[-1]))
                    if diff is None:
                        return self._send(404, "text/plain", b"no such experiment\n")
                    return self._send(200, "text/plain; charset=utf-8", diff.encode())
                return self._send(404, "text/plain", b"not found\n")

            def do_POST(self):  # noqa: N802 - read-only: nothing can be changed through the dashboard
                self._send(405, "text/plain", b"the dashboard is read-only\n")

            do_PUT = do_DELETE = do_PATCH = do_POST  # noqa: N815

            def _authorized(self, url) -> bool:
                if server.token is None:
                    return True
                given = parse_qs(url.query).get("token", [""])[0]
                header = self.headers.get("Authorization", "")
                if header.startswith("Bearer "):
                    given = header[len("Bearer "):]
                return hmac.compare_digest(given, server.token)

            def _send(self, status: int, content_type: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

        return Handler
