"""results.tsv: the ledger's experiments in the original autoresearch's five-column format.

A view, rewritten atomically after each experiment. The second column is named after the task's
metric (`val_bpb` for the templates, as in the original; `val_loss` for a repository adopted with
that metric); the other four are always `commit`, `memory_gb`, `status` and `description`.
"""

from __future__ import annotations

import os
from pathlib import Path

from autoresearch.core.records import Experiment
from autoresearch.core.status import Status


def results_header(metric: str) -> str:
    return f"commit\t{metric}\tmemory_gb\tstatus\tdescription"


def is_results_header(fields: list[str]) -> bool:
    """A results.tsv header, whatever its metric's name."""
    return len(fields) >= 5 and "\t".join(fields[:5]) == results_header(fields[1])


def results_tsv_rows(experiments: list[Experiment], metric: str) -> list[str]:
    """Finished experiments in the original's results.tsv format (running ones are not shown)."""
    lines = [results_header(metric)]
    for exp in experiments:
        if exp.status == Status.RUNNING:
            continue
        crashed = exp.status == Status.CRASH or exp.metric is None
        value, memory = (0.0, 0.0) if crashed else (exp.metric, exp.memory_gb)
        description = " ".join((exp.description + _decision_tag(exp)).split())  # no tabs or newlines in a field
        lines.append(f"{(exp.commit or exp.parent)[:7]}\t{value:.6f}\t{memory:.1f}\t{exp.status}\t{description}")
    return lines


def _decision_tag(exp: Experiment) -> str:
    """The noise and the decision's margin, short enough for a description column."""
    if exp.status == Status.CRASH:
        if exp.metrics.get("over_budget"):
            return " [over budget]"
        return " [invalid: caught by the evaluation]" if exp.metrics.get("invalid") else ""
    runs, sigma, margin = exp.metrics.get("runs"), exp.metrics.get("sigma"), exp.metrics.get("margin")
    if isinstance(exp.metrics.get("stopped_at"), (int, float)):
        return f" [stopped at {100 * exp.metrics['stopped_at']:.0f} %]"
    parts = []
    if isinstance(margin, (int, float)):
        parts.append(f"{margin:+.1f} sd")
    if isinstance(runs, (int, float)) and runs > 1:
        parts.append(f"mean of {runs:.0f} runs")
    if isinstance(sigma, (int, float)) and exp.incumbent is None:  # the baseline row says how noisy runs are
        parts.append(f"sd {sigma:.4f}")
    if exp.metrics.get("change"):
        parts.append(str(exp.metrics["change"]))
    return f" [{', '.join(parts)}]" if parts else ""


def write_results_tsv(path: Path, experiments: list[Experiment], metric: str) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text("\n".join(results_tsv_rows(experiments, metric)) + "\n")
    os.replace(tmp, path)
