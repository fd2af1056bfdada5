"""Audit: the record of a study checked against itself, git and the data. Nothing is run.

Each check names what it finds wrong: a results.tsv row that is not the ledger's, an attempt
whose commit or ref is gone, a metric its runs (or its runs' logs, where the trusted evaluation
printed it) do not bear out, a kept result whose provenance is not its commit's, not the
baseline's, or not the data as it is now.
"""

from __future__ import annotations

import hashlib
import math
import statistics

from autoresearch.core.hashing import file_sha256
from autoresearch.core.records import Experiment
from autoresearch.core.status import Status
from autoresearch.core.summary import metric_value, parse_summary
from autoresearch.core.task import Task
from autoresearch.store import gitops
from autoresearch.store.ledger import Ledger
from autoresearch.store.results_tsv import results_tsv_rows
from autoresearch.store.workspace import Workspace

PRINTED = 5e-7  # metrics are printed with 6 decimals


def audit(ws: Workspace, ledger: Ledger, task: Task, branch: str) -> tuple[list[str], dict]:
    """What is wrong with the record (one line each), and how much was checked."""
    everything = ledger.experiments()
    experiments = [e for e in everything if e.branch == branch]
    kept = [e for e in experiments if e.status == Status.KEEP]
    problems = _results_tsv(ws, everything, task.metric) + _git(ws, experiments, ledger.incumbent(branch), branch)
    metric_problems, runs = _metrics(ws, ledger, task, experiments)
    problems += metric_problems + _provenance(ws, task, kept)
    return problems, {"experiments": len(experiments), "runs": runs, "kept": len(kept)}


def _results_tsv(ws: Workspace, experiments: list[Experiment], metric: str) -> list[str]:
    path = ws.root / "results.tsv"
    want = results_tsv_rows(experiments, metric)
    if not path.exists():
        return [f"results.tsv is missing (the ledger holds {len(want) - 1} finished experiments)"] if len(want) > 1 else []
    got = path.read_text().splitlines()
    finished = [e for e in experiments if e.status != Status.RUNNING]
    problems = [f"results.tsv row {i} (experiment #{finished[i - 1].id}) reads {line!r}, the ledger says {expected!r}"
                for i, (line, expected) in enumerate(zip(got, want)) if line != expected and i > 0]
    if got[:1] != want[:1]:
        problems.insert(0, f"results.tsv's header is {got[:1]}, not {want[0]!r}")
    if len(got) != len(want):
        problems.append(f"results.tsv has {len(got) - 1} rows, the ledger {len(want) - 1} finished experiments")
    return problems


def _git(ws: Workspace, experiments: list[Experiment], best: Experiment | None, branch: str) -> list[str]:
    """Every attempt's commit is in the repository under its attempt ref; the branch stands on the best."""
    refs = dict(line.split(" ", 1)[::-1] for line in gitops.git(
        ws.root, "for-each-ref", "--format=%(objectname) %(refname)", gitops.ATTEMPT_REF_PREFIX).splitlines())
    commits = [e.commit for e in experiments if e.commit]
    known = gitops.git(ws.root, "cat-file", "--batch-check=%(objectname) %(objecttype)", stdin="\n".join(commits),
                       check=False).splitlines() if commits else []
    present = {line.split()[0] for line in known if line.endswith(" commit")}
    problems = []
    for exp in experiments:
        if not exp.commit or exp.status == Status.RUNNING:
            continue
        ref = f"{gitops.ATTEMPT_REF_PREFIX}/{exp.id:05d}"
        if exp.commit not in present:
            problems.append(f"experiment #{exp.id}: its commit {exp.commit[:7]} is not in the repository")
        elif refs.get(ref) != exp.commit:
            problems.append(f"experiment #{exp.id}: {ref} points at {str(refs.get(ref))[:7]}, not at its commit "
                            f"{exp.commit[:7]}")
    head = gitops.git(ws.root, "rev-parse", f"refs/heads/{branch}", check=False)
    if best is not None and best.commit and head != best.commit:
        problems.append(f"the branch {branch} stands on {head[:7]}, not on the best kept commit {best.commit[:7]} "
                        f"(#{best.id})")
    return problems


def _metrics(ws: Workspace, ledger: Ledger, task: Task, experiments: list[Experiment]) -> tuple[list[str], int]:
    """Each metric is the mean of its runs; each run's is what the trusted evaluation printed in its log."""
    problems, checked = [], 0
    for exp in experiments:
        if exp.status == Status.RUNNING:
            continue
        runs = ledger.runs(exp.id)
        values = [r["metric"] for r in runs if r["metric"] is not None]
        if exp.status != Status.CRASH and exp.metric is not None:
            if not values or abs(statistics.fmean(values) - exp.metric) > PRINTED:
                measured = ", ".join(f"{v:.6f}" for v in values) or "nothing"
                problems.append(f"experiment #{exp.id}: {task.metric} {exp.metric:.6f} in the record, but its runs "
                                f"measured {measured}")
        for run in runs:
            if run["metric"] is None:
                continue
            checked += 1
            problems += _log_agrees(ws, task, exp, run)
    return problems, checked


def _log_agrees(ws: Workspace, task: Task, exp: Experiment, run: dict) -> list[str]:
    log = ws.root / run["log_path"] if run["log_path"] else None
    if log is None or not log.exists():
        return [f"experiment #{exp.id} run {run['n']}: its log {run['log_path'] or '(none)'} is missing"]
    printed = metric_value(parse_summary(log.read_text(errors="replace")), task.metric)
    if printed is None or not math.isclose(printed, run["metric"], abs_tol=PRINTED):
        return [f"experiment #{exp.id} run {run['n']}: {task.metric} {run['metric']:.6f} in the record, but its log's "
                f"last summary block says {printed}"]
    return []


def _provenance(ws: Workspace, task: Task, kept: list[Experiment]) -> list[str]:
    """Each kept result was measured on its own commit's frozen files, on the baseline's data, and on
    the data as it is now."""
    problems, current = [], _current_data(ws)
    reference = next((e.metrics.get("provenance") for e in kept if e.metrics.get("provenance")), None)
    for exp in kept:
        prov = exp.metrics.get("provenance")
        if not prov:
            problems.append(f"experiment #{exp.id} (kept) has no provenance")
            continue
        if prov.get("commit") != exp.commit:
            problems.append(f"experiment #{exp.id}: its provenance names commit {str(prov.get('commit'))[:7]}, "
                            f"not {str(exp.commit)[:7]}")
        problems += _frozen_at_commit(ws, task, exp, prov)
        for name, digest in prov.get("frozen", {}).items():
            if reference and reference.get("frozen", {}).get(name) != digest:
                problems.append(f"experiment #{exp.id} was measured with a {name} other than the baseline's")
        for name, digest in prov.get("data", {}).items():
            if reference and reference.get("data", {}).get(name) != digest:
                problems.append(f"experiment #{exp.id} was measured on a {name} other than the baseline's")
            if current.get(name) != digest:
                now = current.get(name, "missing")[:12]
                problems.append(f"data file {name} has changed since experiment #{exp.id} was measured "
                                f"(sha256 {digest[:12]} then, {now} now)")
    return problems


def _frozen_at_commit(ws: Workspace, task: Task, exp: Experiment, prov: dict) -> list[str]:
    problems = []
    for name in task.frozen:
        content = gitops.file_at(ws.root, exp.commit, name)
        digest = hashlib.sha256(content).hexdigest() if content is not None else "missing"
        if prov.get("frozen", {}).get(name) != digest:
            problems.append(f"experiment #{exp.id}: frozen file {name} at its commit is not the one it was measured "
                            "with")
    return problems


def _current_data(ws: Workspace) -> dict[str, str]:
    """sha256 of every prepared data file now, read in full (a verification trusts no cached hash)."""
    data = ws.data_dir()
    if data is None:
        return {}
    return {item.name: file_sha256(item) for item in sorted(data.resolve().iterdir()) if item.is_file()}
