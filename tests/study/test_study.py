"""The one research loop: what every slot count gets (crash fixes, pipelining, top-k), several
proposers in one study, and the stop rules. Real git, subprocesses, SQLite and SDKs."""

from __future__ import annotations

import itertools
import re
import time

import pytest
from conftest import git, ledger_for, run_cli, set_line
from helpers import consistent_record
from llm_server import ScriptedLLMServer

from autoresearch.core.task import load_task
from autoresearch.execute.local import LocalExecutor, plan_slots
from autoresearch.propose.base import Draft
from autoresearch.propose.edits import Edit, Proposal
from autoresearch.propose.llm import LLMProposer
from autoresearch.propose.models import OpenAIChat
from autoresearch.propose.search import RandomProposer
from autoresearch.study.study import StudyOptions, run_study


def _answer(description: str, search: str, replace: str) -> str:
    return (f"DESCRIPTION: {description}\nREASONING: it should help.\n"
            f"<<<<<<< SEARCH train.py\n{search}\n=======\n{replace}\n>>>>>>> REPLACE\n")


def _crash_then_alphas():
    """A model that first proposes a change that crashes, fixes it when shown the crash, and
    otherwise proposes new smoothing strengths."""
    alphas = itertools.count(2)

    def respond(request: dict) -> str:
        prompt = request["messages"][-1]["content"]
        if "# The crash" in prompt:
            return _answer("remove the raise", "    raise RuntimeError('boom')", "    pass")
        if "raise RuntimeError('boom')" not in prompt and not respond.crashed:
            respond.crashed = True
            return _answer("raise on purpose", "    main()", "    raise RuntimeError('boom')\n    main()")
        line = re.search(r"^ALPHA = .*$", prompt, re.MULTILINE).group(0)
        value = 1.0 + next(alphas) / 10
        return _answer(f"alpha {value:g}", line, re.sub(r"= \S+", f"= {value:g}", line, count=1))
    respond.crashed = False
    return respond


def test_two_slots_fix_a_crash_and_write_a_proposal_while_both_run(tiny_workspace):
    ws = tiny_workspace
    set_line(ws / "train.py", "    main()", "    import time; time.sleep(1.0)\n    main()")
    git(ws, "commit", "-qam", "runs of a second")
    executor = LocalExecutor(ws, load_task(ws), plan_slots(2, []))
    with ScriptedLLMServer(responder=_crash_then_alphas(), latency=0.05) as server:
        model = OpenAIChat("gpt-4.1-mini", base_url=server.base_url, max_retries=0, timeout=30)
        summary = run_study(ws, [LLMProposer(model)], StudyOptions(max_experiments=6, failure_backoff_s=0.01),
                            executor=executor)
    experiments = consistent_record(ws)
    crashed = next(e for e in experiments if e.description == "raise on purpose")
    fixed = next(e for e in experiments if e.description.startswith("raise on purpose (fix 1: remove the raise)"))
    assert crashed.status == "crash" and "boom" in crashed.reason
    assert fixed.status in ("keep", "discard") and fixed.parent == crashed.parent
    ledger = ledger_for(ws)
    proposals = ledger.proposals()
    ledger.close()
    fix = next(p for p in proposals if p.kind == "fix")
    assert fix.fix_of == crashed.id and fix.status == "used" and fix.experiment_id == fixed.id
    # pipelining with two slots: a proposal was written while both slots were busy
    runs = [e for e in experiments if e.id > 1]
    busy_when = [sum(1 for e in runs if e.started_at < p.created_at < e.finished_at) for p in proposals]
    assert max(busy_when) >= 2, f"no proposal was written while both slots ran: {busy_when}"
    assert summary.stop_reason.startswith("started 6")


def _score_task(ws, direction: str = "maximize"):
    """A task whose metric is the knob X itself, printed by the run (no trusted evaluation needed)."""
    (ws / "train.py").write_text('X = 10.0  # knob: float 0..100\nprint("---")\nprint(f"score: {X}")\n')
    toml = ws / "autoresearch.toml"
    text = toml.read_text().replace('metric = "val_bpb"', 'metric = "score"')
    text = text.replace('direction = "minimize"', f'direction = "{direction}"')
    text = text.replace('command = ["{python}", "-P", "prepare.py", "evaluate", "{handoff}"]', "")
    toml.write_text(text + '\n[judge]\nrule = "strict"\nbaseline_runs = 1\n')
    git(ws, "commit", "-qam", f"{direction} the knob")


def test_top_k_on_a_maximize_task_branches_from_the_best(tiny_workspace):
    ws = tiny_workspace
    _score_task(ws, "maximize")
    run_study(ws, [RandomProposer(seed=4, spread=0.5)], StudyOptions(max_experiments=24, top_k=2, explore=1.0, seed=1))
    ledger = ledger_for(ws)
    experiments = ledger.experiments()
    best = ledger.incumbent(experiments[0].branch)
    asked_at = {p.id: p.created_at for p in ledger.proposals()}  # when the parent was chosen
    ledger.close()
    explored = 0
    for exp in experiments[1:]:
        kept = [e for e in experiments if e.status == "keep" and e.finished_at < asked_at[exp.proposal_id]]
        kept.sort(key=lambda e: e.metric, reverse=True)  # the highest is the best
        top = {e.commit for e in kept[:2]}
        assert exp.parent in top, f"#{exp.id} branched from a kept commit outside the 2 best"
        explored += exp.parent != kept[0].commit
    assert explored >= 3 and len([e for e in experiments if e.status == "keep"]) >= 4
    assert best.metric == max(e.metric for e in experiments if e.status == "keep")
    assert git(ws, "rev-parse", "HEAD") == best.commit


class StepProposer:
    """Moves the knob X by `step` from the best: +1 always improves a maximized X, -1 never does."""

    def __init__(self, name: str, step: float):
        self.name, self.step = name, step
        self.asked = 0

    def propose(self, snapshot) -> Draft:
        self.asked += 1
        line = next(line for line in snapshot.files["train.py"].splitlines() if line.startswith("X = "))
        value = float(line.split("=")[1].split("#")[0]) + self.step * (1 + self.asked / 1000)
        new = f"X = {value:.4f}  # knob: float 0..100"
        return Draft(Proposal(f"X {value:.4f}", "", [Edit("train.py", line, new)]), self.name)

    def fix(self, snapshot, crashed, log_tail):
        return None


def test_two_proposers_share_the_asks_by_their_keeps(tiny_workspace):
    ws = tiny_workspace
    _score_task(ws, "maximize")
    good, bad = StepProposer("good", +1.0), StepProposer("bad", -1.0)
    summary = run_study(ws, [bad, good], StudyOptions(max_experiments=31, seed=3, pipeline=False))
    assert len(summary.experiments) == 31
    assert good.asked >= 3 * bad.asked and bad.asked >= 1, (good.asked, bad.asked)
    ledger = ledger_for(ws)
    records = ledger.proposer_records(ledger.experiments()[0].branch)
    ledger.close()
    assert records["good"][0] == records["good"][1] == good.asked  # every one of its experiments kept
    assert records["bad"] == (0, bad.asked)
    history = run_cli("history", cwd=ws).stdout
    assert f"proposer good: {good.asked} kept of {good.asked} experiments" in history
    assert f"proposer bad: 0 kept of {bad.asked} experiments" in history


def test_a_proposer_that_can_never_succeed_stops_the_study_at_once(tiny_workspace):
    ws = tiny_workspace
    (ws / "train.py").write_text((ws / "train.py").read_text().replace("# knob:", "# was a knob:"))
    git(ws, "commit", "-qam", "no knobs declared")
    started = time.monotonic()
    summary = run_study(ws, [RandomProposer(seed=1)], StudyOptions(max_experiments=10))
    assert summary.gave_up and "declares no knobs" in summary.stop_reason
    assert [r.description for r in summary.experiments] == ["baseline"]
    assert time.monotonic() - started < 30  # no backoff of minutes: it asked once
    ledger = ledger_for(ws)
    assert [p.status for p in ledger.proposals()] == ["failed"]
    ledger.close()
    out = run_cli("run", "--provider", "tpe", cwd=ws)
    assert out.returncode == 1 and out.stderr.count("\n") == 1 and "declares no knobs" in out.stderr


def test_max_cost_stops_the_study(tiny_workspace):
    alphas = itertools.count(2)

    def respond(request: dict) -> str:
        line = re.search(r"^ALPHA = .*$", request["messages"][-1]["content"], re.MULTILINE).group(0)
        value = 1.0 + next(alphas) / 10
        return _answer(f"alpha {value:g}", line, re.sub(r"= \S+", f"= {value:g}", line, count=1))

    # each answer: 100 tokens in, 50 out; gpt-4.1-mini at $0.40 / $1.60 per million = $0.00012
    with ScriptedLLMServer(responder=respond) as server:
        out = run_cli("run", "--base-url", server.base_url, "--model", "gpt-4.1-mini", "--max-cost", "0.00025",
                      "--no-pipeline", "--max-experiments", "20", "--plain", cwd=tiny_workspace)
    assert out.returncode == 0, out.stderr
    assert "reached --max-cost $0.00025" in out.stdout and "$0.0004 spent on models" in out.stdout
    ledger = ledger_for(tiny_workspace)
    proposals, experiments = ledger.proposals(), ledger.experiments()
    ledger.close()
    assert len(proposals) == 3 and len(experiments) == 4  # the baseline and the three it paid for
    assert sum(p.cost_usd for p in proposals) == pytest.approx(3 * 0.00012)
