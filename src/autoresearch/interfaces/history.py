"""`autoresearch history`: every experiment with its proposal and training curves, how each
proposer fared, and the briefing the built-in proposer reads (so an outside agent sees the same)."""

from __future__ import annotations

import math
from dataclasses import asdict

from autoresearch.core.curve import Point
from autoresearch.core.records import ProposalRecord
from autoresearch.core.status import ProposalStatus, Status
from autoresearch.core.task import Task
from autoresearch.propose.briefing import briefing, curves_wanted
from autoresearch.store.ledger import Ledger

PROPOSAL_FIELDS = ("id", "kind", "proposer", "model", "reasoning", "tokens_in", "tokens_out", "cost_usd", "latency_s",
                   "attempts", "prompt", "response")
NOT_RUN = (ProposalStatus.FAILED, ProposalStatus.DUPLICATE, ProposalStatus.STALE, ProposalStatus.PENDING)


def history(ledger: Ledger, branch: str | None, task: Task | None = None, briefed: str | None = None) -> dict:
    """Experiments with their proposals and their runs' curves, the proposals that never ran, a record
    per proposer, and the briefing of branch `briefed` (default `branch`; none without a task or a branch)."""
    experiments = ledger.experiments(branch)
    proposals = {p.id: p for p in ledger.proposals(branch=branch)}
    curves = ledger.curves(None if branch is None else [e.id for e in experiments])
    rows = []
    for exp in experiments:
        proposal = proposals.get(exp.proposal_id) if exp.proposal_id else None
        rows.append({
            "id": exp.id, "branch": exp.branch, "commit": exp.commit, "parent": exp.parent, "status": exp.status,
            "metric": exp.metric, "incumbent": exp.incumbent, "description": exp.description, "reason": exp.reason,
            "wall_seconds": exp.wall_seconds, "metrics": exp.metrics, "log_path": exp.log_path,
            "proposer": exp.proposer,
            "proposal": None if proposal is None else {k: getattr(proposal, k) for k in PROPOSAL_FIELDS},
            "curves": curves_json(curves.get(exp.id, {})),
        })
    unused = [asdict(p) for p in proposals.values() if p.status in NOT_RUN]
    briefed = briefed or branch
    notes = branch_briefing(ledger, briefed, task) if briefed and task is not None else []
    return {"experiments": rows, "other_proposals": unused, "proposers": proposer_table(rows, proposals),
            "briefing": notes}


def branch_briefing(ledger: Ledger, branch: str, task: Task) -> list[str]:
    """The notes the built-in proposer gets for its next proposal on `branch` (empty before a keep),
    read as study/proposals.py reads them."""
    experiments = ledger.experiments(branch)
    curves = ledger.curves(curves_wanted(experiments))
    return briefing(experiments, curves, task.metric, task.study.stagnation_after, task.judge.z)


def curves_json(runs: dict[int, list[Point]]) -> dict[str, list[dict]]:
    """One experiment's training curves for JSON: run number (as a string) -> its points in order."""
    return {str(n): [point_json(p) for p in points] for n, points in sorted(runs.items())}


def point_json(point: Point) -> dict:
    """A curve point; a loss that is not finite (the run diverged) is null."""
    return {"step": point.step, "fraction": point.fraction,
            "loss": point.loss if math.isfinite(point.loss) else None,
            "tokens_per_second": point.tokens_per_second, "seconds": point.seconds}


def proposer_table(rows: list[dict], proposals: dict[int, ProposalRecord]) -> dict[str, dict]:
    """Per proposer: experiments, keeps, crashes, proposals that could not run, and model spend."""
    table: dict[str, dict] = {}

    def entry(name: str) -> dict:
        return table.setdefault(name, {"experiments": 0, "kept": 0, "crashed": 0, "not_run": 0, "cost_usd": 0.0})

    for row in rows:
        if row["proposer"] and row["status"] != Status.RUNNING:
            one = entry(row["proposer"])
            one["experiments"] += 1
            one["kept"] += row["status"] == Status.KEEP
            one["crashed"] += row["status"] == Status.CRASH
    for proposal in proposals.values():
        one = entry(proposal.proposer)
        one["not_run"] += proposal.status in NOT_RUN
        one["cost_usd"] += proposal.cost_usd or 0.0
    return table


def render(data: dict) -> list[str]:
    lines = []
    for row in data["experiments"]:
        p = row["proposal"]
        value = f"{row['metric']:.6f}" if row["metric"] is not None and row["status"] != Status.CRASH else "-"
        model = (f" | {p['proposer']} {p['model']} {p['tokens_in']}+{p['tokens_out']} tok"
                 + (f" ${p['cost_usd']:.4f}" if p["cost_usd"] is not None else "") + f" {p['latency_s']:.1f}s") if p else ""
        size = row["metrics"].get("lines_added"), row["metrics"].get("lines_removed")
        size_text = f" [+{size[0]:.0f}/-{size[1]:.0f} lines]" if None not in size else ""
        lines.append(f"{row['id']:4d} {(row['commit'] or '')[:7]} {row['status']:7s} {value:>9s}  "
                     f"{row['description']}{size_text}{model}")
    unused = data["other_proposals"]
    if unused:
        counts = {s: sum(1 for p in unused if p["status"] == s) for s in NOT_RUN}
        lines.append("proposals not run: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n))
    for name, one in sorted(data["proposers"].items()):
        cost = f", ${one['cost_usd']:.4f}" if one["cost_usd"] else ""
        lines.append(f"proposer {name}: {one['kept']} kept of {one['experiments']} experiments, "
                     f"{one['crashed']} crashed, {one['not_run']} proposals not run{cost}")
    return lines
