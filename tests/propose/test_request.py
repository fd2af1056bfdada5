"""What the model is sent: the task's facts, the noise and each decision's margin, what each run cost,
what a pipelined request is based on, stable parts first; give-up taken where a fix request offers it;
labels held to the curves' spread."""

from __future__ import annotations

from autoresearch.core.curve import Point
from autoresearch.core.records import Experiment
from autoresearch.core.status import Status
from autoresearch.core.task import parse_task
from autoresearch.propose.base import Snapshot
from autoresearch.propose.briefing import briefing
from autoresearch.propose.context import build_request, build_user_message

TASK = parse_task({"task": {"command": ["x"]}, "budget": {"kind": "tokens", "value": 200000, "timeout": 420},
                   "data": {"dataset": "shakespeare", "vocab_size": 2048, "seq_len": 256}})
FIGURES = {"tokens_per_sec": 2884.0, "num_params_M": 4.2, "peak_vram_mb": 706.0, "device": "cpu",
           "peak_tflops": 0.33}


def experiment(exp_id: int, status: Status, metric: float | None, **metrics) -> Experiment:
    return Experiment(exp_id, "b", f"c{exp_id - 1}", f"c{exp_id}", f"idea {exp_id}", status, metric,
                      None if exp_id == 1 else 2.45, metrics={**FIGURES, **metrics}, timed_out=status == Status.CRASH)


HISTORY = [
    experiment(1, Status.KEEP, 2.45, run_metrics=[2.451, 2.448, 2.451], runs=3, harness_wall_seconds=180.0),
    experiment(2, Status.KEEP, 2.44, run_metrics=[2.44], runs=1, margin=3.1, harness_wall_seconds=61.0),
    experiment(3, Status.DISCARD, 2.4409, run_metrics=[2.4411, 2.4407], runs=2, margin=1.2,
               harness_wall_seconds=130.0, tokens_per_sec=1150.0),
    Experiment(4, "b", "c3", "c4", "deeper", Status.CRASH, None, 2.44, reason="timed out after 420 s",
               metrics={"harness_wall_seconds": 421.0}, timed_out=True),
]


def snapshot(history=HISTORY, in_flight=(), parent="c2") -> Snapshot:
    return Snapshot(TASK, "# program\nthe research", {"train.py": "DEPTH = 4\n"}, parent, {}, list(history),
                    {}, list(in_flight), ["a note from the harness"])


def test_the_request_states_the_task_the_noise_and_what_each_run_cost():
    text = build_user_message(snapshot(), 24000)
    for fact in ("200000 tokens of training per run", "killed at 420 s of wall time",
                 "sequence length 256, vocabulary 2048 tokens", "cpu, peak 0.33 TFLOP/s", "4.2M parameters"):
        assert fact in text, fact
    assert "Run-to-run noise: sd " in text and "from 5 runs of 2 commits on different seeds" in text
    assert "gain +3.1 sd" in text and "gain +1.2 sd, mean of 2 runs" in text  # each decision's margin
    assert "1,150 tok/s" in text and "65 s per run" in text  # a discarded run's throughput and wall time
    assert "421 s of the 420 s timeout per run" in text and "timed out after 420 s" in text


def test_runs_that_never_differ_are_said_to_be_deterministic_and_none_yet_is_said():
    same = [experiment(1, Status.KEEP, 2.45, run_metrics=[2.45, 2.45, 2.45], runs=3)]
    assert "gave identical results (3 runs of 1 commits): no noise" in build_user_message(snapshot(same), 24000)
    assert "No run-to-run noise measured yet" in build_user_message(snapshot([]), 24000)


def test_stable_parts_come_first_and_stay_the_same_from_one_request_to_the_next():
    first, later = build_request(snapshot(HISTORY[:2]), 24000), build_request(snapshot(HISTORY), 24000)
    assert first[0]["cache"] and not first[1]["cache"]
    assert first[0]["text"] == later[0]["text"] and first[1]["text"] != later[1]["text"]
    stable = first[0]["text"]
    assert stable.index("# Research program") < stable.index("# The task") < stable.index("# Current train.py")
    assert "# History" not in stable and "# The noise" not in stable  # they change with every experiment


def test_a_pipelined_request_says_what_it_is_based_on():
    text = build_user_message(snapshot(in_flight=["a deeper model"]), 24000)
    assert "# Current train.py (the code of #2, the best so far: your edit applies to this file)" in text
    assert "- a deeper model" in text and "Your edit applies to the file shown, not on top of theirs" in text
    explored = build_user_message(snapshot(parent="c1"), 24000)
    assert "(the code of #1, one of the best kept but not the best" in explored
    fix = build_user_message(snapshot(), 24000, crash="# The crash\nit crashed")
    assert "(the version that crashed: your fix applies to this file)" in fix and "Propose the next" not in fix


def curve(end: float) -> list[Point]:
    return [Point(i, i / 10, 5.0 - i * 0.2 + (end if i == 10 else 0.0), 1000.0) for i in range(1, 11)]


def test_the_training_versus_validation_remark_needs_a_gap_beyond_the_spread():
    best = experiment(1, Status.KEEP, 2.45)
    tiny_gap = experiment(2, Status.DISCARD, 2.46)
    history = [best, tiny_gap]
    repeated = {1: {1: curve(0.0), 2: curve(0.004), 3: curve(-0.004)}}  # the best's runs spread ~0.004 at the end
    small = briefing(history, {**repeated, 2: {1: curve(-0.003)}}, "val_bpb")
    assert not any("without generalising" in line for line in small)
    large = briefing(history, {**repeated, 2: {1: curve(-0.2)}}, "val_bpb")
    assert any("fits the training data better without generalising" in line for line in large)
    unmeasured = briefing(history, {1: {1: curve(0.0)}, 2: {1: curve(-0.2)}}, "val_bpb")
    assert not any("without generalising" in line for line in unmeasured)  # no repeats: no spread, no label
