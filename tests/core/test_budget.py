"""The harness's clock: the channel a real subprocess writes to, and the budget rules on timelines."""

from __future__ import annotations

import random
import re
import subprocess
import sys
import time
from dataclasses import replace

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


def _template_run(steps, budget: float, *, stretch: float = 1.0, kind: str = "seconds", first_untimed: bool = False,
                  final: float | None = None) -> Timeline:
    """The harness's timeline of the llm template's train.py: a batch before the first step, a budget
    check before it and after each step, four batches of 1,024 tokens a step (each fetched at the end
    of its micro-step), stopping once the end is nearer than half a step, then the handoff. `steps` are the
    steps' seconds by the harness's clock (as long as the run wants them); the run sees its progress
    `stretch` times too small (a slowed clock, a scaled progress). `final`: the final step's seconds."""
    micro, batch = 4, 1024
    t, batches, checks, spent, progress = 0.0, [(0.0, batch)], [0.0], 0.0, 0.0
    for i, step in enumerate(steps):
        last = spent
        # the run times a little less of each step than the harness sees (it prints, asks for its progress)
        spent += micro * batch if kind == "tokens" else (0.0 if first_untimed and i == 0 else step * 0.998)
        step_progress = (spent - last) / budget / stretch
        progress = spent / budget / stretch
        if final is not None and progress + step_progress / 2 >= 1:  # the step that ends the run, made long
            step = final
        batches += [(t + step * (j + 0.9) / micro, batch) for j in range(micro)]
        t += step
        checks.append(t)
        if (i > 0 or not first_untimed) and progress + step_progress / 2 >= 1:
            return Timeline(started=-1.0, ended=t + 1.0, batches=batches, steps=checks, handoff=t + 0.03)
    raise AssertionError("the run wanted more steps")


def _loaded_steps(seed: int, pace: float, n: int = 400) -> list[float]:
    """Steps on a machine shared with other work: a pace 1-3x slower for stretches, jitter, and now
    and then a step that waits several times its length."""
    rng = random.Random(seed)
    steps, load = [], 1.0
    for _ in range(n):
        if rng.random() < 0.05:
            load = rng.uniform(1.0, 3.0)
        spike = rng.uniform(2.0, 6.0) if rng.random() < 0.03 else 1.0
        steps.append(pace * load * spike * rng.lognormvariate(0.0, 0.25))
    return steps


def test_an_honest_run_is_within_its_budget():
    timeline = _template_run([1.2] * 100, 60)  # 50 steps of 1.2 s: the 50th brings the end within half a step
    reading = measure(timeline, startup_seconds=10)
    assert reading.source == "loader" and abs(reading.training_seconds - 60.03) < 1e-6
    assert abs(reading.step_seconds - 1.2) < 1e-6 and reading.warmup_seconds == 0.0
    assert reading.step_tokens == reading.ending.final_tokens == 4096 and reading.batch_tokens == 1024
    assert over_budget(reading, "seconds", 60, bound=None) == ""


def test_a_stretched_clock_is_over_budget_however_slow_its_steps():
    """The budget cheats' clock: the run sees its time (or its progress) 1.1-1.6x too small. Judged where it
    last went on, not by how far its final step ran, so that slow steps allow it nothing more."""
    for stretch in (1.1, 1.15, 1.2, 1.6):
        alone = measure(_template_run([0.3] * 1000, 60, stretch=stretch), startup_seconds=10)
        assert over_budget(alone, "seconds", 60, None).startswith(f"over budget: {60 * stretch:.0f}."), stretch
        for seed in range(20):  # under load: slow, jittery steps
            loaded = measure(_template_run(_loaded_steps(seed, 0.3), 60, stretch=stretch), startup_seconds=10)
            assert "it went on at" in over_budget(loaded, "seconds", 60, None), (stretch, seed)
    # issue 23's runs on a 20 s budget, 1.15x alone (steps of 1 s) and 1.6x with three jobs on two cores (3 s),
    # each with a first and a final step three times as long: an allowance of 1 s and three median steps for
    # each of those kept the first (25.0 s) and let the second train to 39.0 s
    for stretch, step in ((1.15, 1.0), (1.6, 3.0)):
        issue = measure(_template_run([3 * step] + [step] * 100, 20, stretch=stretch, final=3 * step), 10)
        assert "it went on at" in over_budget(issue, "seconds", 20, None), stretch
    reason = over_budget(measure(_template_run([0.3] * 1000, 60, stretch=1.2), 10), "seconds", 60, None)
    assert reason == ("over budget: 72.0 s of training by the harness clock for a 60 s budget (it went on at 71.7 s "
                      "after a step of 0.30 s: allowed until 60.7 s)"), reason


def test_honest_runs_under_load_are_never_over_budget():
    """Slow and jittery steps, a long step at the end (a slow step is the one that brings the end within
    half a step, so the final step is often the run's longest): none over budget, none stopped."""
    for seed in range(100):
        steps = _loaded_steps(seed, 0.3)
        n = len(_template_run(steps, 60).steps) - 1  # its steps: the final one made 3.5x its longest before
        for final in (None, 3.5 * max(steps[1:n - 1])):  # (the first, when slow, is warm-up)
            timeline = _template_run(steps, 60, final=final)
            assert over_budget(measure(timeline, 10), "seconds", 60, None) == "", (seed, final)
            if seed < 5:  # the live rule, every 0.2 s, is slower to take: a few of them
                assert _first_stop(timeline, "seconds", 60, until=timeline.handoff) == (float("inf"), ""), seed
    few = _template_run([4.0, 5.5, 5.2], 10)  # two threads on two busy cores: steps of half the budget
    assert over_budget(measure(few, 10), "seconds", 10, None) == ""


def test_work_moved_into_the_final_step_counts():
    # through the loader: a final step of five steps' batches (1.5 s) serves more tokens than a step
    timeline = _template_run([0.3] * 1000, 60, final=1.5)
    extra = [(timeline.steps[-1] - 0.07 * (i + 1), 1024) for i in range(16)]
    reason = over_budget(measure(replace(timeline, batches=sorted(timeline.batches + extra)), 10), "seconds", 60, None)
    assert reason.endswith("(its final step served 20,480 tokens, the step before it 4,096)"), reason
    # outside the loader (a batch repeated, the training split read directly): by its time, loosely
    long_final = _template_run([0.3] * 1000, 60, final=4 * 0.3 + 1.0)
    reason = over_budget(measure(long_final, 10), "seconds", 60, None)
    assert reason.endswith("(its final step took 2.2 s: allowed 2.1 s, 4 of its longest step)"), reason


def test_a_slow_clock_is_over_budget():
    batches = _steady(0.0, 72.0, 0.3)  # a clock running 1.2x slow: 72 s of training for a 60 s budget
    reading = measure(_timeline(batches, batches[::4], handoff=72.1), startup_seconds=10)
    reason = over_budget(reading, "seconds", 60, bound=None)
    assert reason.startswith("over budget: 72.1 s of training by the harness clock for a 60 s budget (it went on at 70.8 s")


def test_a_compile_at_the_start_is_warm_up_up_to_the_bound():
    batches = [0.0] + _steady(30.0, 61.0, 0.3)  # 30 s compiling the first step, then 61 s of training
    reading = measure(_timeline(batches, batches[::4], handoff=91.0), startup_seconds=10)
    assert 29.0 < reading.warmup_seconds < 30.0
    assert over_budget(reading, "seconds", 60, bound=None) == ""  # the baseline: its warm-up makes the bound
    assert over_budget(reading, "seconds", 60, bound=warmup_bound(0, [25.0])) == ""  # 2 x 25 s
    too_little = over_budget(reading, "seconds", 60, bound=warmup_bound(0, [4.0]))  # 2 x 4 s: at least 5, so 8 s
    assert too_little.startswith("over budget:") and "more warm-up than the 8.0 s bound" in too_little
    assert warmup_bound(12.0, [4.0]) == 12.0 and warmup_bound(0, []) is None
    # the template does not time a compiling first step: it may train one step more than the run says
    compiled = measure(_template_run([30.0] + [1.2] * 100, 60, first_untimed=True), startup_seconds=10)
    assert compiled.untimed_first_step() > 1.0 and over_budget(compiled, "seconds", 60, bound=60.0) == ""
    eager = measure(_template_run([1.2] * 100, 60), startup_seconds=10)  # no warm-up: its first step is timed
    assert eager.untimed_first_step() == 0.0


def test_work_moved_into_the_first_step_counts():
    # the first step trains on 40 batches at the steady pace before the run's own clock starts
    batches = _steady(0.0, 12.0, 0.3) + _steady(12.3, 60.0, 0.3)
    reading = measure(_timeline(batches, batches[40::4], handoff=72.4), startup_seconds=10)
    assert reading.warmup_seconds == 0.0 and reading.untimed_first_step() == 0.0
    assert over_budget(reading, "seconds", 60, bound=10.0).startswith("over budget: 72.4 s of training by the harness "
                                                                      "clock for a 60 s budget (it went on at 70.8 s")


def test_a_run_of_one_long_step_does_not_set_its_own_allowance():
    # 30 s of batches in one step for a 10 s budget: the pace it would be judged by is its own step
    batches = _steady(0.0, 30.0, 0.3)
    one_step = measure(_timeline(batches, [0.0, 30.0], handoff=30.1), startup_seconds=10)
    assert one_step.step_seconds == 0.0 and one_step.first_step_seconds == 30.0
    assert over_budget(one_step, "seconds", 10, bound=None) == ("over budget: 30.1 s of training by the harness clock "
                                                                "for a 10 s budget (allowed 10.3 s: its one step "
                                                                "outlasted the budget, which is too short for the step)")
    # the same work as a long first step and a short one: it went on when 30 s were spent
    two_steps = measure(_timeline(batches + [30.3, 30.6], [0.0, 30.0, 30.6], handoff=30.7), startup_seconds=10)
    assert abs(two_steps.ending.previous - 30.0) < 1e-9
    assert over_budget(two_steps, "seconds", 10, bound=None).startswith("over budget: 30.7 s of training")


def test_training_after_the_handoff_and_a_token_budget():
    batches = _steady(0.0, 10.0, 0.5)
    late = measure(_timeline(batches, handoff=8.0), startup_seconds=10)
    assert late.batches_after_handoff == 4
    assert over_budget(late, "seconds", 10, None) == "over budget: 4 batches served after the handoff (training went on)"
    # the template on 80,000 tokens in steps of 4,096: it stops after 20 steps (81,920 + half a step >= 80,000);
    # the loader has served one batch more than it trained on
    honest = measure(_template_run([0.5] * 100, 80_000, kind="tokens"), startup_seconds=10)
    assert honest.tokens == 20 * 4096 + 1024 and honest.step_tokens == 4096 and honest.batch_tokens == 1024
    assert over_budget(honest, "tokens", 80_000, None) == ""  # 82,944 <= 80,000 + 2,048 + 1,024
    assert over_budget(honest, "tokens", 78_000, None) == ("over budget: 82,944 tokens served by the harness's count "
                                                           "for a 78,000-token budget (allowed 81,072: half a step of "
                                                           "4,096 tokens and one batch of 1,024 more)")


def test_a_token_budget_stretched_or_not():
    """Tokens are counted, not timed: the load changes nothing, and a run that scales its progress is over."""
    for seed in range(50):
        steps = _loaded_steps(seed, 0.3)
        honest = measure(_template_run(steps, 200_000, kind="tokens", final=10.0), 10)
        assert over_budget(honest, "tokens", 200_000, None) == "", seed
        for stretch in (1.1, 1.15, 1.6):
            stretched = measure(_template_run(steps, 200_000, kind="tokens", stretch=stretch), 10)
            assert "tokens served by the harness's count" in over_budget(stretched, "tokens", 200_000, None)


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
    # stopped once it went on past the budget, half a step, the tolerance (0.85 s) and the margin (3 s)
    assert abs(at - 64.0) < 1e-9, at
    assert reason == ("over budget: 64.0 s of training by the harness clock for a 60 s budget (it went on at 63.6 s "
                      "after a step of 1.20 s: allowed until 63.2 s; stopped by the harness before its handoff)"), reason
    handed_off = _timeline(slowed, slowed[::4], handoff=60.0)  # after its handoff a run is never stopped by this rule
    assert past_any_allowance(handed_off, 100.0, "seconds", 60) == ""


def test_the_live_rule_counts_served_tokens_for_a_token_budget():
    batches = _steady(0.0, 30.0, 0.5)  # 4,096 tokens a batch, a step of two
    at, reason = _first_stop(_timeline(batches, batches[::2], tokens=4096), "tokens", 80_000, until=30.0)
    # 80,000 + half a step (4,096) + one batch (4,096) + 5 % (4,000) = 92,192 tokens: the 23rd batch is past it
    assert abs(at - 11.0) < 1e-9 and reason.startswith("over budget: 94,208 tokens served"), (at, reason)


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
    # it goes on past 3 s, the tolerance (0.28 s), the margin (1 s) and half a step: stopped after ~4.3 s of training
    assert time.monotonic() - started < 25, "it ran towards its 50 s timeout"
    assert result.status == "crash" and re.match(r"over budget: [45]\.\d s of training by the harness clock for a 3 s "
                                                 r"budget \(it went on at [45]\.\d s .*; stopped by the harness before "
                                                 r"its handoff\)$", result.reason), result.reason
    assert "[autoresearch] killed: over budget" in result.log_path.read_text()
    assert "[over budget]" in (ws / "results.tsv").read_text().splitlines()[-1]
