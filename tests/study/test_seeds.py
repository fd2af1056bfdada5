"""Seeds owned by the harness: every run of a commit gets its own, so the noise the judge measures is
the spread across seeds, and `verify` re-measures on seeds no study used. On the llm template with
a token budget (a run is then deterministic for one seed: the only noise left is the seed's)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import git, ledger_for, run_cli, set_line

from autoresearch.core.judge import Evidence, judge
from autoresearch.core.status import Status
from autoresearch.core.task import load_task
from autoresearch.store.templates import init_workspace
from autoresearch.store.workspace import Workspace
from autoresearch.study.manual import run_experiment
from autoresearch.study.verify import FRESH_SEEDS


@pytest.fixture(scope="module")
def token_ws(tmp_path_factory, shakespeare_512):
    """The cpu preset, vocabulary 512, a budget of 4 small steps' tokens and a short evaluation."""
    ws = init_workspace(tmp_path_factory.mktemp("seeds") / "ws", template="llm", preset="cpu", tag="seeds")
    toml = ws / "autoresearch.toml"
    set_line(toml, "vocab_size = ", "vocab_size = 512")
    set_line(toml, "eval_tokens = ", "eval_tokens = 8000")
    text = toml.read_text().replace('kind = "seconds"', 'kind = "tokens"', 1)
    toml.write_text(text)
    set_line(toml, "value = ", "value = 8192")
    set_line(ws / "train.py", "TOTAL_BATCH_SIZE = ", "TOTAL_BATCH_SIZE = 2048")
    set_line(ws / "train.py", "DEVICE_BATCH_SIZE = ", "DEVICE_BATCH_SIZE = 8")
    git(ws, "commit", "-qam", "a token budget of 4 steps of 2048 tokens, a short evaluation")
    Workspace(ws).link_data(shakespeare_512)
    return ws


def by_hand(ws, seed: str) -> str:
    """train.py run by hand (it scores itself) with the harness's seed variable set."""
    env = {**os.environ, "AUTORESEARCH_SEED": seed}
    env.pop("AUTORESEARCH_HANDOFF", None)
    out = subprocess.run([sys.executable, "train.py"], cwd=ws, capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    return next(line for line in out.stdout.splitlines() if line.startswith("val_bpb:"))


def test_one_seed_repeats_exactly_and_another_seed_does_not(token_ws):
    assert load_task(token_ws).budget.kind == "tokens"
    first, again, other = by_hand(token_ws, "5"), by_hand(token_ws, "5"), by_hand(token_ws, "6")
    assert first == again and other != first


@pytest.fixture(scope="module")
def studied(token_ws):
    """The baseline (3 runs), then one change judged against it."""
    base = run_experiment(token_ws, "baseline")
    set_line(token_ws / "train.py", "WARMDOWN_RATIO = ", "WARMDOWN_RATIO = 0.3")
    change = run_experiment(token_ws, "warm-down 0.3")
    return token_ws, base, change


def test_the_baselines_runs_get_seeds_1_2_3_and_the_judge_measures_their_spread(studied):
    ws, base, change = studied
    assert base.status == "keep" and base.runs == 3
    ledger = ledger_for(ws)
    runs = [json.loads(row[0]) for row in ledger.db.execute("SELECT metrics_json FROM runs ORDER BY id")]
    ledger.close()
    assert [r["seed"] for r in runs[:3]] == [1, 2, 3] and runs[3]["seed"] == 1  # the candidate's first: seed 1
    values = [r["val_bpb"] for r in runs[:3]]
    assert len(set(values)) == 3, values  # one seed alone would repeat itself: no noise seen
    assert " sd (sigma 0.0" in change.reason and "no run-to-run noise" not in change.reason, change.reason


def test_verify_reruns_on_fresh_seeds_with_an_interval_that_is_not_zero(studied):
    ws, _, change = studied
    out = run_cli("verify", "--json", "--runs", "2", "--best", change.commit, cwd=ws, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    seeds = [r["seed"] for r in result["runs"]]
    assert all(seed >= FRESH_SEEDS for seed in seeds)  # never a study's (run k has seed k)
    assert seeds[0] == seeds[1] != seeds[2] == seeds[3]  # each round on its own seed, the same for both sides
    val = result["gain"]["val"]
    assert val["high"] - val["low"] > 0, val


def test_no_decision_claims_a_margin_in_sd_without_a_measured_noise():
    task = load_task_like()
    identical = judge(task, Evidence([2.49], [2.50, 2.50, 2.50], sigma=0.0, dof=2))
    assert identical.status == Status.KEEP and " sd" not in identical.reason and identical.margin is None
    assert "identical" in identical.reason
    unknown = judge(task, Evidence([2.49], [2.50], sigma=None))
    assert " sd" not in unknown.reason and "no run-to-run noise measured yet" in unknown.reason


def load_task_like():
    from autoresearch.core.settings import Budget, JudgeSettings
    from autoresearch.core.task import Task
    return Task("t", ["true"], "val_bpb", "minimize", Budget("tokens", 1000, 60), ["train.py"], [], judge=JudgeSettings())


def test_a_comment_only_change_runs_on_seeds_of_its_own():
    """Pooled with its parent's runs as the same code, it must not repeat the parent's seeds 1, 2, 3
    (on a deterministic set-up it would repeat the parent's numbers and shrink the noise)."""
    from autoresearch.study.candidate import Candidate
    comment = "--- a/train.py\n+++ b/train.py\n@@ -1 +1 @@\n-# old\n+# new\n"
    code = "--- a/train.py\n+++ b/train.py\n@@ -1 +1 @@\n-DEPTH = 4\n+DEPTH = 5\n"
    assert [Candidate(7, "c", "p", "d", code, None, []).seed(n) for n in (1, 2)] == [1, 2]
    assert [Candidate(7, "c", "p", "d", comment, None, []).seed(n) for n in (1, 2)] == [7001, 7002]


SEED_SCRIPT = ("import os, sys; s = int(sys.argv[1]); assert os.environ['AUTORESEARCH_SEED'] == sys.argv[1]; "
               "print('---'); print(f'val_bpb: {2 + s / 100:.6f}')")


def test_a_command_takes_the_runs_seed_as_seed_and_in_its_environment(tiny_workspace):
    """An adopted repository's script can take the harness's seed as a flag: `{seed}` in the command."""
    toml = tiny_workspace / "autoresearch.toml"
    text = toml.read_text().replace('command = ["{python}", "-P", "prepare.py", "evaluate", "{handoff}"]', "")
    text = text.replace('command = ["{python}", "train.py"]', f'command = ["{{python}}", "-c", "{SEED_SCRIPT}", "{{seed}}"]')
    toml.write_text(text)
    git(tiny_workspace, "commit", "-qam", "a command that prints its seed")
    base = run_experiment(tiny_workspace, "baseline")
    ledger = ledger_for(tiny_workspace)
    values = ledger.run_metrics(base.id)
    ledger.close()
    assert base.status == "keep" and values == [2.01, 2.02, 2.03]
