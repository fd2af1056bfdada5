"""Optional MLflow logging: each finished experiment becomes an MLflow run with its parameters
(knob values), metrics, decision, diff and log. Idempotent: experiments already logged (tagged
with their ledger id) are skipped, so it can run after every experiment or once at the end.

Needs the `mlflow` extra. The default store is a local directory: `.autoresearch/mlruns`.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from autoresearch.study.experiment import ledger_for
from autoresearch.propose.knobs import knob_values_at
from autoresearch.core.task import load_task

ID_TAG = "autoresearch.experiment_id"


def default_tracking_uri(workspace: Path) -> str:
    return (Path(workspace).resolve() / ".autoresearch" / "mlruns").as_uri()


def export_to_mlflow(workspace: Path, tracking_uri: str | None = None, experiment_name: str | None = None) -> int:
    """Log every finished experiment not logged yet; returns how many were logged now."""
    from mlflow.tracking import MlflowClient

    workspace = Path(workspace).resolve()
    task = load_task(workspace)
    uri = tracking_uri or default_tracking_uri(workspace)
    if uri.startswith("file:"):  # MLflow 3 keeps its file store only on request; a local file store is the point here
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient(tracking_uri=uri)
    name = experiment_name or f"autoresearch/{workspace.name}"
    found = client.get_experiment_by_name(name)
    mlflow_experiment = found.experiment_id if found else client.create_experiment(name)
    logged, token = set(), None
    while True:  # page through the runs already there
        page = client.search_runs([mlflow_experiment], max_results=1000, page_token=token)
        logged |= {run.data.tags.get(ID_TAG) for run in page}
        token = page.token
        if not token:
            break
    ledger = ledger_for(workspace)
    try:
        experiments = [e for e in ledger.experiments() if e.status != "running" and str(e.id) not in logged]
    finally:
        ledger.close()
    for exp in experiments:
        run = client.create_run(mlflow_experiment, run_name=f"#{exp.id} {exp.description}"[:250], tags={
            ID_TAG: str(exp.id), "autoresearch.status": exp.status, "autoresearch.branch": exp.branch,
            "autoresearch.commit": exp.commit or "", "autoresearch.reason": exp.reason[:5000],
            "mlflow.note.content": exp.description})
        for key, value in knob_values_at(workspace, exp.commit, task.editable[0]).items():
            client.log_param(run.info.run_id, key, value)
        for key, value in exp.metrics.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                client.log_metric(run.info.run_id, key, float(value))
        if exp.diff:
            client.log_text(run.info.run_id, exp.diff, "diff.patch")
        log = workspace / exp.log_path if exp.log_path else None
        if log and log.exists():
            client.log_artifact(run.info.run_id, str(log))
        client.set_terminated(run.info.run_id, "FAILED" if exp.status == "crash" else "FINISHED")
    return len(experiments)
