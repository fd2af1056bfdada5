"""MLflow logging of the ledger, into a real local MLflow store."""

from __future__ import annotations

import pytest
from conftest import run_cli

from autoresearch.propose.search import RandomProposer
from autoresearch.study.study import StudyOptions, run_study

pytest.importorskip("mlflow")
from mlflow.tracking import MlflowClient  # noqa: E402

from autoresearch.interfaces.mlflow_export import ID_TAG, default_tracking_uri, export_to_mlflow  # noqa: E402


def test_each_experiment_becomes_a_run_once(tiny_workspace):
    ws = tiny_workspace
    run_study(ws, [RandomProposer(seed=2)], StudyOptions(max_experiments=3))
    assert export_to_mlflow(ws) == 3
    assert export_to_mlflow(ws) == 0  # idempotent
    client = MlflowClient(tracking_uri=default_tracking_uri(ws))
    experiment = client.get_experiment_by_name(f"autoresearch/{ws.name}")
    runs = sorted(client.search_runs([experiment.experiment_id]), key=lambda r: int(r.data.tags[ID_TAG]))
    assert [r.data.tags[ID_TAG] for r in runs] == ["1", "2", "3"]
    first = runs[0]
    assert first.data.params["ORDER"] == "2" and first.data.metrics["val_bpb"] > 0
    assert first.data.tags["autoresearch.status"] == "keep"
    artifacts = {a.path for a in client.list_artifacts(runs[1].info.run_id)}
    assert {"diff.patch", "run.log"} <= artifacts
    out = run_cli("export", "--mlflow", cwd=ws)
    assert out.returncode == 0 and out.stdout.startswith("logged 0 experiment(s)")
