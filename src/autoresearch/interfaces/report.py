"""Report: the progress plot (PNG and SVG) and a static HTML report of a study.

Reads a workspace's ledger (diffs, logs, reasons) or, for results from anywhere, a `results.tsv`
in the original five-column format. The plot follows the original's teaser: experiment number
against val_bpb, discarded runs faint, kept runs highlighted and labelled with short descriptions
set apart, the running best as a step line with the noise band around it. It zooms to the region
between the best and the baseline, where everything happens; a diverged run and crashes are marks
on the edge, runs stopped early ticks at the bottom.
"""

from __future__ import annotations

import csv
import html
import math
import re
from dataclasses import dataclass
from pathlib import Path

from autoresearch.core.best import gain
from autoresearch.core.best import running_best as core_running_best
from autoresearch.core.errors import UserError
from autoresearch.core.status import FINISHED, Status
from autoresearch.run.trial import log_tail
from autoresearch.store.results_tsv import is_results_header, results_header
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
    stopped_at: float | None = None  # early abort stopped it at this share of the budget


def read_results_tsv(path: Path) -> list[Row]:
    with open(path, newline="") as f:
        reader = csv.reader(f, delimiter="\t")
        header = next(reader, None)
        if header is None or not is_results_header(header):
            raise ReportError(f"{path}: not a results.tsv (expected the header {results_header('val_bpb')!r},"
                              " the second column named after the metric)")
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
                raise ReportError(f"{path}:{number}: {header[1]} and memory_gb must be numbers") from None
            crashed = status == Status.CRASH or metric == 0.0 or not math.isfinite(metric)
            rows.append(Row(len(rows), commit, None if crashed else metric, memory_gb, status, description))
    return rows


def read_workspace(ws: Workspace) -> list[Row]:
    with ws.open_ledger(readonly=True) as ledger:
        experiments = [e for e in ledger.experiments() if e.status != Status.RUNNING]
    return [Row(i, (e.commit or e.parent)[:7], e.metric if e.status != Status.CRASH else None,
                e.memory_gb, str(e.status), e.description, e.reason, e.diff,
                log_tail(ws.root / e.log_path, 30) if e.log_path else "", e.proposer, e.metrics.get("stopped_at"))
            for i, e in enumerate(experiments)]


def workspace_sigma(ws: Workspace) -> float | None:
    """The judge's latest estimate of one run's standard deviation."""
    with ws.open_ledger(readonly=True) as ledger:
        sigmas = [e.metrics.get("sigma") for e in ledger.experiments()]
    known = [s for s in sigmas if isinstance(s, (int, float)) and s > 0]
    return known[-1] if known else None


def tsv_sigma(rows: list[Row]) -> float | None:
    """The sd our results.tsv writes on the baseline's row ("[mean of 3 runs, sd 0.0057]"), if any."""
    found = re.search(r"\bsd (\d+(?:\.\d+)?)\]", rows[0].description) if rows else None
    return float(found.group(1)) if found else None


@dataclass
class Results:
    """What a report shows: the rows, and which way is better for their metric."""
    rows: list[Row]
    title: str
    metric: str = "val_bpb"
    direction: str = "minimize"
    verification: dict | None = None  # the latest `autoresearch verify` of the branch
    sigma: float | None = None  # one run's standard deviation, where the judge measured it
    trusted: bool | None = None  # scored by a trusted evaluation; False: the runs' own report; None: unknown


def running_best(rows: list[Row], direction: str = "minimize") -> list[float | None]:
    """The best kept value after each experiment."""
    return core_running_best(((r.status, r.metric) for r in rows), direction)


def zoom_range(rows: list[Row], direction: str = "minimize") -> tuple[float, float]:
    """The y-range where everything happens: from the best to the baseline, with room either side
    for the runs around them. A diverged run or any value far outside is drawn at the edge instead."""
    kept = [r.metric for r in rows if r.status == Status.KEEP and r.metric is not None]
    values = [r.metric for r in rows if r.metric is not None]
    if not values:
        return 0.0, 1.0
    focus = kept or values
    low, high = min(focus), max(focus)
    span = high - low
    if span <= 0:  # nothing kept beyond the baseline: the middle half of the values sets the scale
        ordered = sorted(values)
        span = ordered[3 * len(ordered) // 4] - ordered[len(ordered) // 4] or abs(high) * 0.01 or 1.0
    better, worse = 0.15 * span, 0.5 * span  # little lies beyond the best; the runs that missed lie the other way
    return (low - better, high + worse) if direction == "minimize" else (low - worse, high + better)


def short_label(description: str, width: int = 30) -> str:
    """A kept run's description for the plot: without the decision tags, cut at a word."""
    text = description.split(" [", 1)[0].strip()
    if len(text) <= width:
        return text
    return text[:width].rsplit(" ", 1)[0].rstrip(",;:") + "…"


def plot_progress(results: Results, out_stem: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    rows = results.rows
    low, high = zoom_range(rows, results.direction)
    fig, ax = plt.subplots(figsize=(12, 6))
    ax.set_ylim(low, high)
    _draw_points(ax, rows, low, high)
    _draw_best(ax, rows, results)
    _draw_edges(ax, rows, low, high, results.direction)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(-0.02 * max(len(rows), 1) - 0.5, len(rows) - 0.5 + 0.02 * len(rows))
    ax.set_xlabel("experiment")
    ax.set_ylabel(f"{results.metric} ({'lower' if results.direction == 'minimize' else 'higher'} is better)")
    ax.set_title(results.title)
    ax.grid(alpha=0.25)
    legend = ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()  # before the labels: they are placed apart in the final layout
    _draw_labels(ax, rows, legend)
    out_stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [out_stem.with_suffix(".png"), out_stem.with_suffix(".svg")]
    for path in paths:
        fig.savefig(path, dpi=130)
    plt.close(fig)
    return paths


def _draw_points(ax, rows: list[Row], low: float, high: float) -> None:
    inside = [r for r in rows if r.metric is not None and low <= r.metric <= high]
    discarded = [r for r in inside if r.status != Status.KEEP]
    kept = [r for r in inside if r.status == Status.KEEP]
    stopped = [r for r in rows if r.stopped_at is not None]
    ax.scatter([r.index for r in discarded], [r.metric for r in discarded], s=14, color="#9aa0a6", alpha=0.5,
               label=f"discarded ({sum(r.status == 'discard' for r in rows)})", zorder=2)
    ax.scatter([r.index for r in kept], [r.metric for r in kept], s=36, color="#1e8e3e",
               label=f"kept ({sum(r.status == 'keep' for r in rows)})", zorder=4)
    if stopped:
        ax.scatter([r.index for r in stopped], [0.03] * len(stopped), transform=ax.get_xaxis_transform(), marker="|",
                   s=60, color="#e37400", label=f"stopped early ({len(stopped)})", zorder=4, clip_on=False)


def _draw_best(ax, rows: list[Row], results: Results) -> None:
    """The running best as a step line, with the noise band (one sd of a run) around it where known."""
    best = running_best(rows, results.direction)
    steps = [(r.index, b) for r, b in zip(rows, best) if b is not None]
    if not steps:
        return
    xs, ys = [x for x, _ in steps] + [len(rows) - 0.5], [y for _, y in steps] + [steps[-1][1]]
    ax.step(xs, ys, where="post", color="#1e8e3e", linewidth=1.5, label="running best", zorder=3)
    if results.sigma:
        ax.fill_between(xs, [y - results.sigma for y in ys], [y + results.sigma for y in ys], step="post",
                        color="#1e8e3e", alpha=0.12, linewidth=0, label=f"noise: ±1 sd ({results.sigma:.4f})")


def _draw_edges(ax, rows: list[Row], low: float, high: float, direction: str) -> None:
    """Crashes and values outside the range as marks on the worse edge (or the better one)."""
    worse_edge = 0.985 if direction == "minimize" else 0.015
    crashed = [r.index for r in rows if r.metric is None]
    above = [r for r in rows if r.metric is not None and r.metric > high]
    below = [r for r in rows if r.metric is not None and r.metric < low]
    transform = ax.get_xaxis_transform()
    if crashed:
        ax.scatter(crashed, [worse_edge] * len(crashed), transform=transform, marker="x", color="#d93025",
                   label=f"crashed ({len(crashed)})", zorder=5, clip_on=False)
    outside = [(r, 0.985, "^") for r in above] + [(r, 0.015, "v") for r in below]
    for n, (r, edge, marker) in enumerate(outside):
        ax.scatter([r.index], [edge], transform=transform, marker=marker, color="#5f6368", zorder=5, clip_on=False,
                   label=f"outside the range ({len(outside)})" if n == 0 else None)
        ax.annotate(f"{r.metric:.3g}", (r.index, edge), xycoords=transform, xytext=(4, -3 if edge > 0.5 else 3),
                    textcoords="offset points", fontsize=7, color="#5f6368", va="top" if edge > 0.5 else "bottom")


LABEL_OFFSETS = ((4, 6), (4, -13), (4, 19), (4, -26), (4, 32), (4, -39))  # points from the kept run's dot


def _draw_labels(ax, rows: list[Row], legend) -> None:
    """Kept runs' short descriptions, each at the first offset where it overlaps no other label and
    stays inside the plot; a label with no room is left out (the table below has every row)."""
    renderer = ax.figure.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    placed = [legend.get_window_extent(renderer)]
    for r in (r for r in rows if r.status == Status.KEEP and r.metric is not None):
        for dx, dy in LABEL_OFFSETS:
            arrow = {"arrowstyle": "-", "color": "#1e6e34", "alpha": 0.35, "linewidth": 0.5} if dy != 6 else None
            text = ax.annotate(short_label(r.description), (r.index, r.metric), xytext=(dx, dy), fontsize=7,
                               textcoords="offset points", color="#1e6e34", arrowprops=arrow,
                               va="bottom" if dy > 0 else "top")
            box = text.get_window_extent(renderer)
            inside = frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
            if inside and not any(box.overlaps(other) for other in placed):
                placed.append(box)
                break
            text.remove()


def write_html(results: Results, svg: Path, out: Path) -> Path:
    rows, title = results.rows, results.title
    values = [r.metric for r in rows if r.metric is not None]
    best = running_best(rows, results.direction)
    baseline = rows[0].metric if rows else None
    final = best[-1] if best else None
    gains = []
    incumbent = None
    for row, after in zip(rows, best):
        if row.status == Status.KEEP and incumbent is not None and row.metric is not None:
            gains.append((gain(row.metric, incumbent, results.direction), row))
        incumbent = after
    gains.sort(key=lambda g: -g[0])
    counts = {s: sum(r.status == s for r in rows) for s in FINISHED}
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
<span>{esc(results.metric)} {esc(improvement)}</span>{_trust_html(results.trusted)}<span>range {min(values, default=0):.6f} – {max(values, default=0):.6f}</span></p>
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


def _trust_html(trusted: bool | None) -> str:
    if trusted is False:
        return ('<span class="untrusted"><b>reported by the runs, not verified</b> (no [evaluation] command: '
                "nothing stops a run from printing any number)</span>")
    return ""


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
        kept = sum(r.status == Status.KEEP for r in mine)
        crashed = sum(r.status == Status.CRASH for r in mine)
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
                       verified[-1]["result"] if verified else None, workspace_sigma(ws),
                       trusted=bool(task.evaluation.command))
    path = source / "results.tsv" if source.is_dir() else source
    if path.is_file():
        rows = read_results_tsv(path)
        with open(path) as f:
            metric = f.readline().split("\t")[1]  # the header's second column: the metric's name
        return Results(rows, f"autoresearch: {source.name}", metric, sigma=tsv_sigma(rows))
    raise ReportError(f"{source}: neither a workspace with results nor a results.tsv")


def make_report(source: Path, out_dir: Path) -> list[Path]:
    """Report from a workspace (its ledger) or from a results.tsv file; returns the files written."""
    results = load_results(source)
    if not results.rows:
        raise ReportError(f"{source}: no finished experiments yet")
    png, svg = plot_progress(results, out_dir / "progress")
    page = write_html(results, svg, out_dir / "report.html")
    return [png, svg, page]
