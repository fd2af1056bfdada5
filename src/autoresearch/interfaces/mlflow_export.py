"""Optional MLflow logging: each finished experiment becomes an MLflow run with its parameters
(knob values), metrics, decision, diff and log. Idempotent: experiments already logged (tagged
with their ledger id) are skipped, so it can run after every experiment or once at the end.

`MlflowExporter` is also a study subscriber: `autoresearch run --mlflow` logs each experiment as
it finishes. Needs the `mlflow` extra. The default store is a local directory in the state dir.
"""

from __future__ import annotations

import math
import os

from autoresearch.core.events import Event, ExperimentFinished
from autoresearch.core.knobs import knob_paths, knob_values
from autoresearch.core.records import Experiment
from autoresearch.core.status import Status
from autoresearch.store.workspace import Workspace

ID_TAG = "autoresearch.experiment_id"


def default_tracking_uri(workspace: Workspace) -> str:
    return Workspace.of(workspace).mlruns_dir.as_uri()


class MlflowExporter:
    def __init__(self, workspace: Workspace, tracking_uri: str | None = None, experiment_name: str | None = None):
        from mlflow.tracking import MlflowClient

        self.ws = Workspace.of(workspace)
        self.task = self.ws.task()
        self.uri = tracking_uri or default_tracking_uri(self.ws)
        if self.uri.startswith("file:"):  # MLflow 3 keeps its file store only on request; a local store is the point
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = MlflowClient(tracking_uri=self.uri)
        name = experiment_name or f"autoresearch/{self.ws.root.name}"
        found = self.client.get_experiment_by_name(name)
        self.mlflow_experiment = found.experiment_id if found else self.client.create_experiment(name)
        self._logged: set[str] | None = None  # ledger ids already in the store, read once

    def logged(self) -> set[str]:
        if self._logged is None:
            self._logged, token = set(), None
            while True:  # page through the runs already there
                page = self.client.search_runs([self.mlflow_experiment], max_results=1000, page_token=token)
                self._logged |= {run.data.tags.get(ID_TAG) for run in page}
                token = page.token
                if not token:
                    break
        return self._logged

    def export_all(self) -> int:
        """Log every finished experiment not logged yet; returns how many were logged now."""
        with self.ws.open_ledger(readonly=True) as ledger:
            experiments = [e for e in ledger.experiments() if e.status != Status.RUNNING and str(e.id) not in self.logged()]
        for exp in experiments:
            self.log(exp)
        return len(experiments)

    def __call__(self, event: Event) -> None:
        if isinstance(event, ExperimentFinished) and str(event.result.id) not in self.logged():
            with self.ws.open_ledger(readonly=True) as ledger:
                exp = ledger.get(event.result.id)
            if exp is not None:
                self.log(exp)

    def log(self, exp: Experiment) -> None:
        client = self.client
        run = client.create_run(self.mlflow_experiment, run_name=f"#{exp.id} {exp.description}"[:250], tags={
            ID_TAG: str(exp.id), "autoresearch.status": str(exp.status), "autoresearch.branch": exp.branch,
            "autoresearch.commit": exp.commit or "", "autoresearch.reason": exp.reason[:5000],
            "autoresearch.proposer": exp.proposer, "mlflow.note.content": exp.description})
        for key, value in self._knobs(exp.commit).items():
            client.log_param(run.info.run_id, key, value)
        for key, value in exp.metrics.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                client.log_metric(run.info.run_id, key, float(value))
        if exp.diff:
            client.log_text(run.info.run_id, exp.diff, "diff.patch")
        log = self.ws.root / exp.log_path if exp.log_path else None
        if log and log.exists():
            client.log_artifact(run.info.run_id, str(log))
        client.set_terminated(run.info.run_id, "FAILED" if exp.status == Status.CRASH else "FINISHED")
        self.logged().add(str(exp.id))

    def _knobs(self, commit: str | None) -> dict[str, object]:
        """The knob values at `commit`, logged as the run's parameters."""
        return knob_values(self.ws.files_at(commit, knob_paths(self.task)), self.task) if commit else {}


def export_to_mlflow(workspace: Workspace, tracking_uri: str | None = None, experiment_name: str | None = None) -> int:
    """Log every finished experiment not logged yet; returns how many were logged now."""
    return MlflowExporter(workspace, tracking_uri, experiment_name).export_all()
