"""The harness's clock: the channel a real subprocess writes to, and the budget rules on timelines."""

from __future__ import annotations

import re
import subprocess
import sys
import time

from conftest import git

from autoresearch.core.budget import measure, over_budget, past_any_allowance, warmup_bound
from autoresearch.run.clock import ClockChannel, Timeline
from autoresearch.store.templates import init_workspace
from autoresearch.study.manual import run_experiment


def _timeline(batches: list[float], steps: list[float] = (), handoff: float | None = None, ended: float = 0.0,
              tokens: int = 1000) -> Timeline:
    return Timeline(started=0.0, ended=ended or (handoff or batches[-1]) + 1, batches=[(t, tokens) for t in batches],
                    steps=list(steps), handoff=handoff)


def _steady(start: float, seconds: float, step: float) -> list[float]:
    n = int(seconds / step)
    return [start + i * step for i in range(n + 1)]


def test_the_channel_stamps_what_a_real_process_sends_with_the_harness_clock():
    clock = ClockChannel()
    code = ("import time; from autoresearch.run.clock import tell\n"
            "for i in range(3):\n    tell('batch', 512); tell('step'); time.sleep(0.2)\n"
            "tell('handoff'); tell('handed-off'); print('nonsense is ignored')\n")
    proc = subprocess.Popen([sys.executable, "-c", code], env={**clock.env(), "PATH": ""}, pass_fds=(clock.child_fd,))
    clock.started()
    proc.wait()
    timeline = clock.finish()
    assert [n for _, n in timeline.batches] == [512, 512, 512] and len(timeline.steps) == 3
    gaps = [b[0] - a[0] for a, b in zip(timeline.batches, timeline.batches[1:])]
    assert all(0.15 < g < 0.5 for g in gaps), gaps  # stamped on arrival, by this process's clock
    assert timeline.handoff is not None and timeline.handed_off >= timeline.handoff


def test_the_run_side_is_silent_outside_the_harness():
    out = subprocess.run([sys.executable, "-c", "from autoresearch.run.clock import tell; tell('batch', 1); print('ok')"],
                         capture_output=True, text=True, env={"PATH": ""})
    assert out.returncode == 0 and out.stdout == "ok\n"


def test_an_honest_run_is_within_its_budget():
    batches = _steady(0.0, 61.2, 0.3)  # a first step, 60 s of timed steps, an overshoot of one step
    steps = [b for b in batches[::4]]  # a budget check every 4 micro-batches (one optimizer step of 1.2 s)
    reading = measure(_timeline(batches, steps, handoff=61.3), startup_seconds=10)
    assert reading.source == "loader" and abs(reading.training_seconds - 61.3) < 1e-9
    assert abs(reading.step_seconds - 1.2) < 1e-6 and reading.warmup_seconds == 0.0
    assert over_budget(reading, "seconds", 60, bound=None) == ""


def test_a_slow_clock_is_over_budget():
    batches = _steady(0.0, 72.0, 0.3)  # a clock running 1.2x slow: 72 s of training for a 60 s budget
    reading = measure(_timeline(batches, batches[::4], handoff=72.1), startup_seconds=10)
    reason = over_budget(reading, "seconds", 60, bound=None)
    assert reason.startswith("over budget: 72.1 s of training by the harness clock for a 60 s budget (allowed 65.4 s")


def test_a_compile_at_the_start_is_warm_up_up_to_the_bound():
    batches = [0.0] + _steady(30.0, 61.0, 0.3)  # 30 s compiling the first step, then 61 s of training
    reading = measure(_timeline(batches, batches[::4], handoff=91.0), startup_seconds=10)
    assert 29.0 < reading.warmup_seconds < 30.0
    assert over_budget(reading, "seconds", 60, bound=None) == ""  # the baseline: its warm-up makes the bound
    assert over_budget(reading, "seconds", 60, bound=warmup_bound(0, [25.0])) == ""  # 2 x 25 s
    too_little = over_budget(reading, "seconds", 60, bound=warmup_bound(0, [4.0]))  # 2 x 4 s: at least 5, so 8 s
    assert too_little.startswith("over budget:") and "more warm-up than the 8.0 s bound" in too_little
    assert warmup_bound(12.0, [4.0]) == 12.0 and warmup_bound(0, []) is None


def test_work_moved_into_the_first_step_counts():
    # the first step trains on 40 batches at the steady pace before the run's own clock starts
    batches = _steady(0.0, 12.0, 0.3) + _steady(12.3, 60.0, 0.3)
    reading = measure(_timeline(batches, batches[40::4], handoff=72.4), startup_seconds=10)
    assert reading.warmup_seconds == 0.0 and over_budget(reading, "seconds", 60, bound=10.0).startswith("over budget")


def test_a_run_of_one_long_step_does_not_set_its_own_allowance():
    # 30 s of batches in one step for a 10 s budget: the pace it would be judged by is its own step
    batches = _steady(0.0, 30.0, 0.3)
    one_step = measure(_timeline(batches, [0.0, 30.0], handoff=30.1), startup_seconds=10)
    assert one_step.step_seconds == 0.0 and one_step.first_step_seconds == 30.0
    assert over_budget(one_step, "seconds", 10, bound=None).startswith("over budget: 30.1 s of training")
    # the same work as a long first step and a short one: the pace is the second step's
    two_steps = measure(_timeline(batches + [30.3, 30.6], [0.0, 30.0, 30.6], handoff=30.7), startup_seconds=10)
    assert abs(two_steps.step_seconds - 0.6) < 1e-9
    assert over_budget(two_steps, "seconds", 10, bound=None).startswith("over budget: 30.7 s of training")


def test_training_after_the_handoff_and_a_token_budget():
    batches = _steady(0.0, 10.0, 0.5)
    late = measure(_timeline(batches, handoff=8.0), startup_seconds=10)
    assert late.batches_after_handoff == 4
    assert over_budget(late, "seconds", 10, None) == "over budget: 4 batches served after the handoff (training went on)"
    tokens = measure(_timeline(batches, batches[::2], handoff=10.1, tokens=4096), startup_seconds=10)
    assert tokens.tokens == 21 * 4096 and tokens.step_tokens == 2 * 4096
    assert over_budget(tokens, "tokens", 80_000, None) == ""  # 86,016 <= 80,000 x 1.05 + 2 steps
    assert "tokens served by the harness's count" in over_budget(tokens, "tokens", 60_000, None)


def _seen_until(timeline: Timeline, now: float) -> Timeline:
    """What the harness had stamped by `now` of a run still training."""
    return Timeline(started=timeline.started, batches=[b for b in timeline.batches if b[0] <= now],
                    steps=[t for t in timeline.steps if t <= now])


def _first_stop(timeline: Timeline, kind: str, value: float, until: float) -> tuple[float, str]:
    """The first tick (every 0.2 s, as the watchdog asks) at which the live rule stops the run."""
    for i in range(int(until / 0.2) + 1):
        now = i * 0.2
        reason = past_any_allowance(_seen_until(timeline, now), now, kind, value)
        if reason:
            return now, reason
    return float("inf"), ""


def test_the_live_rule_never_stops_an_honest_run_and_stops_a_slow_clock_early():
    compiled = [0.0] + _steady(30.0, 61.2, 0.3)  # 30 s compiling the first step, then a step past the budget
    honest = _timeline(compiled, compiled[::4])
    assert _first_stop(honest, "seconds", 60, until=91.4) == (float("inf"), "")
    long_steps = _steady(0.0, 64.0, 0.4)  # steps of 8 s (20 batches): half a step over, and its first one slow
    assert _first_stop(_timeline(long_steps, [0.0, 10.0] + long_steps[40::20]), "seconds", 60, until=64.0)[1] == ""
    slowed = _steady(0.0, 300.0, 0.3)  # a clock slowed 5x would train 300 s for its 60 s
    at, reason = _first_stop(_timeline(slowed, slowed[::4]), "seconds", 60, until=300.0)
    # stopped past the widest allowance (60 + 2 x 3 steps of 1.2 s + 3 s) and its margin (6 s), not at its timeout
    assert 76.2 <= at <= 77.0, at
    assert reason.startswith("over budget: 76.") and "for a 60 s budget (stopped by the harness past 76.2 s" in reason
    handed_off = _timeline(slowed, slowed[::4], handoff=60.0)  # after its handoff a run is never stopped by this rule
    assert past_any_allowance(handed_off, 100.0, "seconds", 60) == ""


def test_the_live_rule_counts_served_tokens_for_a_token_budget():
    batches = _steady(0.0, 30.0, 0.5)  # 4,096 tokens a batch, a step of two
    at, reason = _first_stop(_timeline(batches, batches[::2], tokens=4096), "tokens", 80_000, until=30.0)
    # 80,000 x 1.15 + 6 steps of 8,192 = 141,152 tokens: the 35th batch (143,360) is past it
    assert abs(at - 17.0) < 1e-9 and reason.startswith("over budget: 143,360 tokens served"), (at, reason)


def test_a_run_without_the_frozen_loader_gets_wall_time_less_start_up():
    quick = measure(Timeline(started=0.0, ended=14.0), startup_seconds=10)
    assert quick.source == "wall" and quick.training_seconds == 4.0 and over_budget(quick, "seconds", 5, None) == ""
    slow = measure(Timeline(started=0.0, ended=30.0), startup_seconds=10)
    assert over_budget(slow, "seconds", 5, None).startswith("over budget: 20.0 s of training")


def test_the_clock_does_not_wait_for_children_that_keep_the_channel_open():
    clock = ClockChannel()
    code = "import subprocess, sys; subprocess.Popen(['sleep', '3'], close_fds=False); print('left')"
    proc = subprocess.Popen([sys.executable, "-c", code], pass_fds=(clock.child_fd,), stdout=subprocess.DEVNULL)
    clock.started()
    proc.wait()
    started = time.monotonic()
    clock.finish()  # a daemonised child still holds the write end: the reader stops anyway
    assert time.monotonic() - started < 2


IGNORES_ITS_BUDGET = '''
import time
from autoresearch.run.clock import tell
for i in range(400):  # 40 s of training through the harness's clock, whatever the budget says
    tell("batch", 512)
    if i % 2 == 0:
        tell("step")
    time.sleep(0.1)
'''


def test_the_harness_stops_a_run_past_its_budget_instead_of_waiting_for_its_timeout(tmp_path):
    ws = init_workspace(tmp_path / "ws", template="tiny", tag="live")
    (ws / "train.py").write_text(IGNORES_ITS_BUDGET)
    toml = ws / "autoresearch.toml"
    toml.write_text(toml.read_text().replace("value = 10", "value = 3").replace("timeout = 60", "timeout = 50"))
    git(ws, "commit", "-qam", "a run that trains on past its 3 s budget")
    started = time.monotonic()
    result = run_experiment(ws, "baseline")
    # the widest allowance (3 s + 6 steps of 0.2 s + 1 s) and the margin (2 s): stopped after ~7.2 s of training
    assert time.monotonic() - started < 25, "it ran towards its 50 s timeout"
    assert result.status == "crash" and re.match(r"over budget: 7\.\d s of training by the harness clock for a 3 s "
                                                 r"budget \(stopped by the harness past 7\.2 s", result.reason), result.reason
    assert "[autoresearch] killed: over budget" in result.log_path.read_text()
    assert "[over budget]" in (ws / "results.tsv").read_text().splitlines()[-1]
