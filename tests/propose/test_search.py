"""Classic proposers over the declared knobs: TPE (Optuna) and random steps."""

from __future__ import annotations

import pytest

from autoresearch.core.knobs import parse_knobs
from autoresearch.core.task import load_task
from autoresearch.study.study import StudyOptions, run_study

optuna = pytest.importorskip("optuna")
from autoresearch.propose.tpe import TPEProposer, distribution  # noqa: E402


def test_distributions_follow_the_declarations():
    from autoresearch.store.templates import template_dir

    knobs = {k.name: k for k in parse_knobs((template_dir("llm") / "train.py").read_text())}
    assert distribution(knobs["TOTAL_BATCH_SIZE"]).choices[:3] == (4096, 8192, 16384)
    assert distribution(knobs["MATRIX_LR"]).log and distribution(knobs["DEPTH"]).low == 2
    assert distribution(knobs["HEAD_DIM"]).choices == (32, 64, 128)


def test_tpe_drives_the_loop_and_resumes(tiny_workspace):
    ws = tiny_workspace
    first = run_study(ws, [TPEProposer(seed=0)], StudyOptions(max_experiments=5))
    second = run_study(ws, [TPEProposer(seed=0)], StudyOptions(max_experiments=3))
    results = first.experiments + second.experiments
    assert len(results) == 8 and all(r.status in ("keep", "discard") for r in results)
    assert all(r.description.startswith("tpe: ") for r in results[1:])
    knobs = {k.name: k for k in parse_knobs((ws / "train.py").read_text())}
    assert set(knobs) == {"ORDER", "ALPHA"}
    assert min(r.metric for r in results) < results[0].metric  # it found something better than the baseline
    assert load_task(ws).agent.provider == ""  # nothing in the workspace had to change for it
