"""Report: the progress plot (PNG and SVG) and a static HTML report of a study.

Reads a workspace's ledger (diffs, logs, reasons) or, for results from anywhere, a `results.tsv`
in the original five-column format. The plot follows the original's teaser: experiment number
against val_bpb, discarded runs faint, kept runs highlighted and labelled with their
descriptions, the running best as a step line, crashes marked.
"""

from __future__ import annotations

import csv
import html
import math
from dataclasses import dataclass
from pathlib import Path

from autoresearch.core.best import gain
from autoresearch.core.best import running_best as core_running_best
from autoresearch.core.errors import UserError
from autoresearch.core.status import Status
from autoresearch.run.trial import log_tail
from autoresearch.store.ledger import RESULTS_HEADER
from autoresearch.store.workspace import Workspace


class ReportError(UserError, ValueError):
    """Results that cannot be read; one line."""


@dataclass
class Row:
    index: int  # experiment number, 0 = the baseline
    commit: str
    metric: float | None  # None for crashes
    memory_gb: float
    status: str
    description: str
    reason: str = ""
    diff: str = ""
    log_tail: str = ""
    proposer: str = ""


def read_results_tsv(path: Path) -> list[Row]:
    with open(path, newline="") as f:
        reader = csv.reader(f, delimiter="\t")
        header = next(reader, None)
        if header is None or "\t".join(header[:5]) != RESULTS_HEADER:
            raise ReportError(f"{path}: not a results.tsv (expected the header {RESULTS_HEADER!r})")
        rows = []
        for number, fields in enumerate(reader, start=2):
            if not fields:
                continue
            if len(fields) < 5:
                raise ReportError(f"{path}:{number}: expected 5 tab-separated fields, found {len(fields)}")
            commit, value, memory, status, description = fields[:5]
            try:
                metric = float(value)
                memory_gb = float(memory)
            except ValueError:
                raise ReportError(f"{path}:{number}: val_bpb and memory_gb must be numbers") from None
            crashed = status == "crash" or metric == 0.0 or not math.isfinite(metric)
            rows.append(Row(len(rows), commit, None if crashed else metric, memory_gb, status, description))
    return rows


def read_workspace(ws: Workspace) -> list[Row]:
    with ws.open_ledger(readonly=True) as ledger:
        experiments = [e for e in ledger.experiments() if e.status != Status.RUNNING]
    return [Row(i, (e.commit or e.parent)[:7], e.metric if e.status != Status.CRASH else None,
                e.memory_gb, str(e.status), e.description, e.reason, e.diff,
                log_tail(ws.root / e.log_path, 30) if e.log_path else "", e.proposer)
            for i, e in enumerate(experiments)]


@dataclass
class Results:
    """What a report shows: the rows, and which way is better for their metric."""
    rows: list[Row]
    title: str
    metric: str = "val_bpb"
    direction: str = "minimize"
    verification: dict | None = None  # the latest `autoresearch verify` of the branch


def running_best(rows: list[Row], direction: str = "minimize") -> list[float | None]:
    """The best kept value after each experiment."""
    return core_running_best(((r.status, r.metric) for r in rows), direction)


def plot_progress(results: Results, out_stem: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, title = results.rows, results.title
    kept = [r for r in rows if r.status == "keep" and r.metric is not None]
    discarded = [r for r in rows if r.status != "keep" and r.metric is not None]
    crashed = [r for r in rows if r.metric is None]
    best = running_best(rows, results.direction)
    fig, ax = plt.subplots(figsize=(12, 6))
    ax.scatter([r.index for r in discarded], [r.metric for r in discarded], s=14, color="#9aa0a6", alpha=0.45,
               label=f"discarded ({len(discarded)})", zorder=2)
    ax.scatter([r.index for r in kept], [r.metric for r in kept], s=36, color="#1e8e3e", label=f"kept ({len(kept)})",
               zorder=4)
    steps = [(r.index, b) for r, b in zip(rows, best) if b is not None]
    if steps:
        ax.step([x for x, _ in steps], [y for _, y in steps], where="post", color="#1e8e3e", linewidth=1.5,
                label="running best", zorder=3)
    values = [r.metric for r in rows if r.metric is not None]
    if crashed and values:
        low, high = min(values), max(values)
        ax.scatter([r.index for r in crashed], [high + 0.02 * (high - low or 1)] * len(crashed), marker="x",
                   color="#d93025", label=f"crashed ({len(crashed)})", zorder=4)
    for r in kept:
        ax.annotate(r.description[:48], (r.index, r.metric), xytext=(4, 6), textcoords="offset points",
                    fontsize=7, rotation=30, color="#1e6e34")
    ax.set_xlabel("experiment")
    ax.set_ylabel(f"{results.metric} ({'lower' if results.direction == 'minimize' else 'higher'} is better)")
    ax.set_title(title)
    ax.grid(alpha=0.25)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    out_stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [out_stem.with_suffix(".png"), out_stem.with_suffix(".svg")]
    for path in paths:
        fig.savefig(path, dpi=130)
    plt.close(fig)
    return paths


def write_html(results: Results, svg: Path, out: Path) -> Path:
    rows, title = results.rows, results.title
    values = [r.metric for r in rows if r.metric is not None]
    best = running_best(rows, results.direction)
    baseline = rows[0].metric if rows else None
    final = best[-1] if best else None
    gains = []
    incumbent = None
    for row, after in zip(rows, best):
        if row.status == "keep" and incumbent is not None and row.metric is not None:
            gains.append((gain(row.metric, incumbent, results.direction), row))
        incumbent = after
    gains.sort(key=lambda g: -g[0])
    counts = {s: sum(r.status == s for r in rows) for s in ("keep", "discard", "crash")}
    improvement = (f"{baseline:.6f} → {final:.6f} ({100 * (final - baseline) / baseline:+.2f} %)"
                   if baseline and final else "—")
    esc = html.escape

    def row_html(r: Row) -> str:
        value = f"{r.metric:.6f}" if r.metric is not None else "crash"
        details = ""
        if r.diff or r.log_tail or r.reason:
            details = (f"<details><summary>details</summary><p>{esc(r.reason)}</p>"
                       + (f"<h4>diff</h4><pre>{esc(r.diff)}</pre>" if r.diff else "")
                       + (f"<h4>log tail</h4><pre>{esc(r.log_tail)}</pre>" if r.log_tail else "") + "</details>")
        return (f'<tr class="{r.status}"><td>{r.index}</td><td><code>{esc(r.commit)}</code></td><td>{value}</td>'
                f"<td>{r.memory_gb:.1f}</td><td>{r.status}</td><td>{esc(r.description)}{details}</td></tr>")

    gain_items = "".join(f"<li><b>{g:+.6f}</b> — #{r.index} {esc(r.description)}</li>" for g, r in gains[:10]) or "<li>none yet</li>"
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #202124; }}
table {{ border-collapse: collapse; width: 100%; font-size: 14px; }}
td, th {{ border-bottom: 1px solid #e0e0e0; padding: 4px 8px; text-align: left; vertical-align: top; }}
tr.keep td {{ background: #e6f4ea; }} tr.crash td {{ background: #fce8e6; }} tr.discard td {{ color: #5f6368; }}
pre {{ background: #f8f9fa; padding: 8px; overflow-x: auto; font-size: 12px; }}
.summary span {{ margin-right: 2em; }}
</style></head><body>
<h1>{esc(title)}</h1>
<p class="summary"><span><b>{len(rows)}</b> experiments</span><span><b>{counts['keep']}</b> kept</span>
<span><b>{counts['discard']}</b> discarded</span><span><b>{counts['crash']}</b> crashed</span>
<span>{esc(results.metric)} {esc(improvement)}</span><span>range {min(values, default=0):.6f} – {max(values, default=0):.6f}</span></p>
<div class="plot">{svg.read_text() if svg.exists() else ""}</div>
{verified_html(results.verification)}
<h2>Biggest gains</h2><ol>{gain_items}</ol>
{proposer_table(rows)}
<h2>All experiments</h2>
<table><tr><th>#</th><th>commit</th><th>{esc(results.metric)}</th><th>memory GB</th><th>status</th><th>description</th></tr>
{''.join(row_html(r) for r in rows)}
</table></body></html>
"""
    out.write_text(page)
    return out


def verified_html(verification: dict | None) -> str:
    """The claims re-measured: `autoresearch verify`'s figures beside what the study reported."""
    if not verification:
        return "<h2>Verified</h2><p>not yet: <code>autoresearch verify</code> re-measures the claims</p>"
    from autoresearch.interfaces.verification import render

    return "<h2>Verified</h2><pre>" + html.escape("\n".join(render(verification))) + "</pre>"


def proposer_table(rows: list[Row]) -> str:
    """Who proposed what, and how each fared (workspaces record it; a plain results.tsv does not)."""
    names = sorted({r.proposer for r in rows if r.proposer})
    if not names:
        return ""
    cells = []
    for name in names:
        mine = [r for r in rows if r.proposer == name]
        kept = sum(r.status == "keep" for r in mine)
        crashed = sum(r.status == "crash" for r in mine)
        cells.append(f"<tr><td>{html.escape(name)}</td><td>{len(mine)}</td><td>{kept}</td><td>{crashed}</td></tr>")
    return ("<h2>Proposers</h2><table><tr><th>proposer</th><th>experiments</th><th>kept</th><th>crashed</th></tr>"
            + "".join(cells) + "</table>")


def load_results(source: Path) -> Results:
    """The rows of a workspace (its ledger) or of any results.tsv in the original format."""
    source = Path(source)
    if source.is_dir() and Workspace(source).has_ledger():
        ws = Workspace(source)
        task = ws.task()
        with ws.open_ledger(readonly=True) as ledger:
            verified = ledger.verifications(ws.branch())
        return Results(read_workspace(ws), f"autoresearch: {source.name}", task.metric, task.direction,
                       verified[-1]["result"] if verified else None)
    if source.is_dir() and (source / "results.tsv").exists():
        return Results(read_results_tsv(source / "results.tsv"), f"autoresearch: {source.name}")
    if source.is_file():
        return Results(read_results_tsv(source), f"autoresearch: {source.name}")
    raise ReportError(f"{source}: neither a workspace with results nor a results.tsv")


def make_report(source: Path, out_dir: Path) -> list[Path]:
    """Report from a workspace (its ledger) or from a results.tsv file; returns the files written."""
    results = load_results(source)
    if not results.rows:
        raise ReportError(f"{source}: no finished experiments yet")
    png, svg = plot_progress(results, out_dir / "progress")
    page = write_html(results, svg, out_dir / "report.html")
    return [png, svg, page]
