"""Dashboard: a local web page that follows a study live. Read-only: it never changes the workspace.

Standard library HTTP server; the page polls `/api/state` every two seconds and draws the progress
plot itself (hover shows the description, a click opens the diff). It listens on 127.0.0.1 by
default; bound to any other address it requires a token (`?token=...` or `Authorization: Bearer`).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import math
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import parse_qs, urlsplit

from autoresearch.core.curve import mean_loss_at, pooled_spread
from autoresearch.core.errors import UserError
from autoresearch.core.status import Status
from autoresearch.core.task import CONFIG_NAME
from autoresearch.run.trial import log_tail
from autoresearch.store.ledger import Ledger, best_so_far
from autoresearch.store.workspace import Workspace
from autoresearch.study.curves import reference_from

LOG_TAIL_LINES = 40
RECENT_CURVES = 6


class DashboardError(UserError, ValueError):
    """A dashboard that cannot start; one line."""


def read_state(workspace: Workspace) -> dict:
    """Everything the page shows, read through the read-only ledger."""
    ws = Workspace.of(workspace)
    if not ws.has_ledger():
        return {"experiments": [], "running": [], "best": None, "reasoning": "", "sigma": None, "direction": "minimize"}
    with ws.open_ledger(readonly=True) as ledger:
        rows = ledger.experiments()
        proposal = ledger.latest_reasoning()
        verified = ledger.verifications(ws.branch())  # the branch the workspace is on, as the report does
        curves = read_curves(ws, ledger, rows)
    direction, trusted = _direction_and_trust(ws)
    finished = [e for e in rows if e.status != Status.RUNNING]
    experiments = [dict(_item(e), best=b) for e, b in zip(finished, best_so_far(finished, direction))]
    running = [dict(_item(e), log_tail=_log_tail(ws, e.id)) for e in rows if e.status == Status.RUNNING]
    kept = [e for e in experiments if e["status"] == Status.KEEP and e["metric"] is not None]
    sigma = next((e.metrics["sigma"] for e in reversed(finished) if e.metrics.get("sigma") is not None), None)
    return {"experiments": experiments, "running": running, "best": kept[-1] if kept else None,
            "reasoning": (f"{proposal['description']}\n\n{proposal['reasoning']}" if proposal else ""),
            "sigma": sigma, "direction": direction, "verification": _verified(verified), "curves": curves,
            "trusted": trusted}


def read_curves(ws: Workspace, ledger: Ledger, rows: list) -> dict:
    """The curves the page draws: the incumbent's (mean of its runs) with the band of repeated runs
    around it, the running experiments' as they come in, and the most recent finished ones."""
    try:
        reference = reference_from(ledger, ws.branch())
    except UserError:
        reference = None
    finished = [e.id for e in rows if e.status != Status.RUNNING]
    wanted = [e.id for e in rows if e.status == Status.RUNNING] + finished[-RECENT_CURVES:]
    found = ledger.curves(wanted)

    def line(exp) -> dict:
        runs = found.get(exp.id, {})
        points = runs[max(runs)] if runs else []
        return {"id": exp.id, "status": str(exp.status), "stopped_at": exp.metrics.get("stopped_at"),
                "points": [[round(p.fraction, 4), _finite(p.loss)] for p in points]}

    drawn = [line(e) for e in rows if e.id in found]
    return {"incumbent": _band(reference) if reference else None,
            "running": [c for c in drawn if c["status"] == Status.RUNNING],
            "recent": [c for c in drawn if c["status"] != Status.RUNNING and (reference is None or c["id"] != reference.incumbent_id)]}


def _band(reference) -> dict:
    """The incumbent's mean curve on a grid of shares, with one spread of repeated runs either side."""
    grid = [round(0.02 * i, 2) for i in range(1, 51)]
    points = []
    for share in grid:
        mean = mean_loss_at(reference.incumbent, share)
        if mean is None or not math.isfinite(mean):
            continue
        spread, _ = pooled_spread(reference.repeats, share)
        points.append([share, round(mean, 5), round(spread, 5)])
    return {"id": reference.incumbent_id, "points": points}


def _finite(value: float) -> float | None:
    return round(value, 5) if math.isfinite(value) else None


def _verified(verifications: list[dict]) -> dict | None:
    """The latest verification's figures, beside the claim they re-measured."""
    if not verifications:
        return None
    result = verifications[-1]["result"]
    return {key: result.get(key) for key in ("reported_gain", "gain", "runs_per_side", "problems", "baseline", "best")}


def _item(e) -> dict:
    return {"id": e.id, "commit": (e.commit or e.parent)[:7], "status": str(e.status), "metric": e.metric,
            "description": e.description, "reason": e.reason, "runs": e.metrics.get("runs", 1),
            "wall_seconds": e.wall_seconds, "branch": e.branch, "proposer": e.proposer}


def _direction_and_trust(ws: Workspace) -> tuple[str, bool | None]:
    """Which way is better, and whether a trusted evaluation scores the runs (None: unknown)."""
    try:
        task = ws.task()
    except UserError:  # a broken config does not stop the page from showing what was recorded
        return "minimize", None
    return task.direction, bool(task.evaluation.command)


def read_diff(workspace: Workspace, exp_id: int) -> str | None:
    with Workspace.of(workspace).open_ledger(readonly=True) as ledger:
        exp = ledger.get(exp_id)
    return None if exp is None else (exp.diff or "(no diff: the baseline runs the code as the workspace was made)")


def _log_tail(ws: Workspace, exp_id: int) -> str:
    runs = ws.run_dir(exp_id)
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

    def __init__(self, workspace: Workspace, host: str = "127.0.0.1", port: int = 8765, token: str | None = None):
        self.workspace = Workspace.of(workspace)
        if not (self.workspace.root / CONFIG_NAME).exists():
            raise DashboardError(f"{self.workspace.root} is not an autoresearch workspace")
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
