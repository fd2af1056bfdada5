"""The decision rule on synthetic distributions: noise, grey-zone reruns, seeds, simplicity."""

from __future__ import annotations

import dataclasses
import math
import random
import statistics

import pytest

from autoresearch.core.judge import Evidence, candidate_sigma, change_size, classify_change, judge, pooled_sigma
from autoresearch.core.settings import JudgeSettings
from autoresearch.core.task import parse_task

TASK = parse_task({"task": {"command": ["x"]}, "budget": {"value": 60}})
SIGMA = 0.01


def with_judge(**settings):
    return dataclasses.replace(TASK, judge=JudgeSettings(**settings))


def decide_with_reruns(task, rng, incumbent, true_mean, sigma=SIGMA):
    """Run the judge as the harness does: a new sample for every rerun it asks for."""
    runs = [rng.gauss(true_mean, sigma)]
    while True:
        decision = judge(task, Evidence(runs, incumbent, sigma))
        if decision.status != "rerun":
            return decision, len(runs)
        runs.append(rng.gauss(true_mean, sigma))


def test_baseline_runs_until_the_noise_is_measured():
    assert judge(TASK, Evidence([1.0])).status == "rerun"
    assert judge(TASK, Evidence([1.0, 1.01])).status == "rerun"
    decision = judge(TASK, Evidence([1.0, 1.01, 0.99]))
    assert decision.status == "keep" and decision.reason.startswith("baseline, runs 1.000000 1.010000 0.990000")
    assert judge(with_judge(baseline_runs=1), Evidence([1.0])).status == "keep"


def decide_with_estimated_noise(task, rng, true_mean, sigma=SIGMA):
    """As the harness does it early in a study: sigma pooled from 3 baseline runs and the reruns."""
    incumbent = [rng.gauss(2.0, sigma) for _ in range(3)]
    runs = [rng.gauss(true_mean, sigma)]
    while True:
        estimate, dof = pooled_sigma([incumbent, runs])
        decision = judge(task, Evidence(runs, incumbent, estimate, dof))
        if decision.status != "rerun":
            return decision, len(runs)
        runs.append(rng.gauss(true_mean, sigma))


def test_null_candidates_are_rarely_kept_and_the_original_rule_keeps_half():
    rng = random.Random(0)
    ours = ours_estimated = strict = 0
    trials = 2000
    for _ in range(trials):
        incumbent = [rng.gauss(2.0, SIGMA) for _ in range(3)]
        ours += decide_with_reruns(TASK, rng, incumbent, 2.0)[0].status == "keep"
        ours_estimated += decide_with_estimated_noise(TASK, rng, 2.0)[0].status == "keep"
        first = rng.gauss(2.0, SIGMA)
        strict += judge(with_judge(rule="strict"), Evidence([first], incumbent[:1])).status == "keep"
    assert ours / trials <= 0.03 and ours_estimated / trials <= 0.03
    assert 0.4 <= strict / trials <= 0.6


def test_real_gains_are_kept_after_confirmation():
    rng = random.Random(1)
    kept, reruns = 0, []
    for _ in range(500):
        incumbent = [rng.gauss(2.0, SIGMA) for _ in range(3)]
        decision, n = decide_with_reruns(TASK, rng, incumbent, 2.0 - 4 * SIGMA)
        kept += decision.status == "keep"
        reruns.append(n)
    assert kept / 500 >= 0.9
    assert statistics.mean(reruns) < 2  # most are clear after one run


def test_the_grey_zone_reruns_then_decides():
    incumbent = [2.0, 2.0, 2.0]
    grey = judge(TASK, Evidence([1.985], incumbent, sigma=SIGMA))  # gain 1.3 sd: more than 1, under 2.5
    assert grey.status == "rerun" and grey.reason.startswith("grey zone: gain +0.015000")
    assert grey.margin == pytest.approx(0.015 / (SIGMA * (1 + 1 / 3) ** 0.5))
    assert judge(TASK, Evidence([1.995], incumbent, sigma=SIGMA)).reason.startswith("within noise after 1 run:")
    confirmed = judge(TASK, Evidence([1.985, 1.97, 1.975], incumbent, sigma=SIGMA))
    assert confirmed.status == "keep" and "> 2.5 sd" in confirmed.reason
    not_confirmed = judge(TASK, Evidence([1.985, 2.0, 2.005], incumbent, sigma=SIGMA))
    assert not_confirmed.status == "discard" and not_confirmed.reason.startswith("within noise after 3 runs")
    worse = judge(TASK, Evidence([2.01], incumbent, sigma=SIGMA))
    assert worse.status == "discard" and worse.reason.startswith("not better")


def test_seed_and_comment_changes_are_never_kept():
    big_gain = Evidence([1.5], [2.0, 2.0, 2.0], sigma=SIGMA, change="seed-only")
    decision = judge(TASK, big_gain)
    assert decision.status == "discard" and decision.reason.startswith("changes only seeds")
    assert judge(TASK, dataclasses.replace(big_gain, change="")).status == "keep"
    seed_diff = "--- a/train.py\n+++ b/train.py\n@@ -1 +1 @@\n-SEED = 42\n+SEED = 7\n"
    assert classify_change(seed_diff) == "seed-only"
    assert classify_change("-x = 1  # a\n+x = 1  # b\n") == ""
    assert classify_change("-# old note\n+# new note\n+\n") == "comments-only"
    assert classify_change("-torch.manual_seed(1)\n+torch.manual_seed(2)\n") == "seed-only"
    assert classify_change("-SEED = 42\n+SEED = 7\n-lr = 1\n+lr = 2\n") == ""


def test_memory_cap_strict_rule_and_simplicity():
    capped = with_judge(max_memory_gb=10)
    assert judge(capped, Evidence([1.0], [2.0], sigma=SIGMA, memory_gb=12)).reason.startswith("peak memory 12.0 GB")
    strict = with_judge(rule="strict")
    assert judge(strict, Evidence([1.999], [2.0])).status == "keep"
    assert judge(strict, Evidence([2.0], [2.0])).status == "discard"
    shorter = Evidence([2.001], [2.0, 2.0, 2.0], sigma=SIGMA, lines_added=2, lines_removed=10)
    decision = judge(TASK, shorter)
    assert decision.status == "keep" and decision.reason.startswith("as good within noise and 8 lines shorter")
    assert judge(with_judge(prefer_simpler=False), shorter).status == "discard"
    assert change_size("--- a\n+++ b\n+x = 1\n+# note\n+\n-y = 2\n-z = 3\n") == (1, 2)


def test_pooled_sigma():
    sigma, dof = pooled_sigma([[1.0, 3.0], [10.0, 12.0, 14.0], [5.0]])
    assert dof == 3 and sigma == pytest.approx(((2 + 8) / 3) ** 0.5)
    assert pooled_sigma([[1.0]]) == (None, 0)


def test_one_unstable_candidate_does_not_become_the_noise_of_every_later_one():
    """The real cpu-preset study's case: one candidate ran 2.263 and 2.458 (an unstable change) among
    repeats that spread by ~0.006; pooled plainly, its spread made sigma 0.08 and blocked every keep."""
    rng = random.Random(3)
    steady = [[rng.gauss(2.40, 0.006) for _ in range(3)]] + [[rng.gauss(2.38, 0.006) for _ in range(2)] for _ in range(4)]
    unstable = [2.263, 2.458]
    plain = math.sqrt(sum(sum((x - statistics.fmean(g)) ** 2 for x in g) for g in steady + [unstable])
                      / sum(len(g) - 1 for g in steady + [unstable]))
    sigma, dof = pooled_sigma(steady + [unstable])
    assert plain > 0.03 and sigma < 0.01 and dof == 6  # the unstable pair is left out of the noise
    assert pooled_sigma(steady) == (sigma, dof)
    # a later candidate's real gain of 0.03 (5 sd of the steady noise) is kept again
    later = judge(TASK, Evidence([2.35, 2.351], [2.38, 2.381], sigma, dof))
    assert later.status == "keep", later.reason
    # the unstable candidate itself is judged by its own spread: its mean gain is within its noise
    decision = judge(with_judge(max_reruns=1), Evidence(unstable, [2.40, 2.401, 2.399], sigma, dof))
    assert decision.status == "discard" and "unstable" in decision.reason, decision.reason
    assert candidate_sigma(unstable, sigma) == statistics.stdev(unstable)
    assert candidate_sigma([2.38, 2.385], sigma) == sigma  # an ordinary pair keeps the pooled spread


def test_a_spread_group_is_not_called_unstable_before_there_is_a_reference():
    """With only the baseline and one other group, there is nothing to call a group unstable against."""
    sigma, dof = pooled_sigma([[2.40, 2.41], [2.2, 2.5]])
    assert dof == 2 and sigma > 0.1


def test_seed_and_comment_only_runs_refine_the_noise(tmp_path):
    from autoresearch.core.records import Outcome, RunRecord
    from autoresearch.store.ledger import Ledger

    ledger = Ledger(tmp_path / "ledger.sqlite")
    base = ledger.start("b", "c0", "baseline")
    ledger.set_commit(base, "c0", "", "ref")
    for n, value in enumerate([1.0, 1.02], start=1):
        ledger.add_run(base, n, RunRecord(metric=value, metrics={}, exit_code=0, timed_out=False, wall_seconds=1,
                                          log_path=""))
    ledger.finish(base, Outcome(status="keep", metric=1.01, incumbent=None, metrics={"change": ""}, reason="",
                                exit_code=0, timed_out=False, wall_seconds=2))
    for change, value in (("comments-only", 0.99), ("", 0.5), ("seed-only", 1.03)):
        exp = ledger.start("b", "c0", change or "a real change")
        ledger.set_commit(exp, f"c-{change}", "diff", "ref")
        ledger.add_run(exp, 1, RunRecord(metric=value, metrics={}, exit_code=0, timed_out=False, wall_seconds=1,
                                         log_path=""))
        ledger.finish(exp, Outcome(status="discard", metric=value, incumbent=1.01, metrics={"change": change},
                                   reason="", exit_code=0, timed_out=False, wall_seconds=1))
    assert ledger.run_groups() == [[1.0, 1.02, 0.99, 1.03]]  # the real change (0.5) is not noise
    ledger.close()
