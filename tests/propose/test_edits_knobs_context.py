"""Answer parsing, edit application, knob declarations and the history summary."""

from __future__ import annotations

import random

import pytest

from autoresearch.core.knobs import KnobError, parse_knobs
from autoresearch.core.records import Experiment
from autoresearch.core.task import load_task
from autoresearch.propose.context import build_user_message, frozen_api, history_text
from autoresearch.propose.edits import Edit, EditError, apply_to_texts, knob_edit, parse_answer, replace_once
from autoresearch.store.templates import template_dir
from autoresearch.store.workspace import Workspace
from autoresearch.study.snapshot import Snapshots

SOURCE = "def f():\n    x = 1\n    return x\n\n\ndef g():\n    y = 2\n    return y\n"


def test_parse_answer_with_blocks_and_reasoning():
    text = ("DESCRIPTION:  bigger   model\nREASONING: more capacity\nhelps.\n"
            "<<<<<<< SEARCH\n    x = 1\n=======\n    x = 3\n>>>>>>> REPLACE\n"
            "<<<<<<< SEARCH other.py\na\n=======\nb\n>>>>>>> REPLACE\n")
    proposal = parse_answer(text, "train.py")
    assert proposal.description == "bigger model" and proposal.reasoning == "more capacity\nhelps."
    assert proposal.edits == [Edit("train.py", "    x = 1\n", "    x = 3\n"), Edit("other.py", "a\n", "b\n")]


def test_parse_answer_whole_file_and_errors():
    whole = parse_answer("DESCRIPTION: rewrite\n```python FILE=train.py\nprint(1)\n```\n", "train.py")
    assert whole.edits == [Edit("train.py", "", "print(1)\n", whole_file=True)]
    with pytest.raises(EditError, match="no 'DESCRIPTION"):
        parse_answer("<<<<<<< SEARCH\na\n=======\nb\n>>>>>>> REPLACE\n", "train.py")
    with pytest.raises(EditError, match="malformed"):
        parse_answer("DESCRIPTION: x\n<<<<<<< SEARCH\na\n>>>>>>> REPLACE\n", "train.py")


def test_replace_tolerates_indentation_and_trailing_spaces():
    out = replace_once(SOURCE, "x = 1   \nreturn x", "x = 5\nreturn x + 1", "t.py")
    assert out == SOURCE.replace("    x = 1\n    return x\n", "    x = 5\n    return x + 1\n")
    with pytest.raises(EditError, match="matches 2 places|occurs 2 times"):
        replace_once(SOURCE + SOURCE, "    x = 1\n", "    x = 2\n", "t.py")
    with pytest.raises(EditError, match="not found in t.py"):
        replace_once(SOURCE, "z = 9", "z = 0", "t.py")


def test_edits_to_other_files_are_refused_and_nothing_is_half_applied():
    files = {"train.py": SOURCE}
    with pytest.raises(EditError, match="prepare.py is not editable"):
        apply_to_texts(files, [Edit("train.py", "    x = 1\n", "    x = 2\n"), Edit("prepare.py", "a", "b")], ["train.py"])
    assert files == {"train.py": SOURCE}


def test_knobs_of_the_shipped_templates():
    knobs = {k.name: k for k in parse_knobs((template_dir("llm") / "train.py").read_text())}
    assert knobs["HEAD_DIM"].choices == (32, 64, 128) and knobs["TOTAL_BATCH_SIZE"].scale == "pow2"
    assert knobs["MATRIX_LR"].scale == "log" and knobs["WINDOW_PATTERN"].current == "SSSL"
    rng = random.Random(0)
    for _ in range(200):
        for knob in knobs.values():
            value = knob.sample(rng, near=knob.current)
            assert knob.check(value) == value
    batches = [knobs["TOTAL_BATCH_SIZE"].sample(rng, near=8192) for _ in range(50)]
    assert all(v & (v - 1) == 0 and 4096 <= v <= 16384 for v in batches)  # powers of two, one octave away
    edit = knob_edit("train.py", knobs["HEAD_DIM"], "64")
    assert edit.replace.startswith("HEAD_DIM = 64 ") and "# knob: choice 32|64|128" in edit.replace
    with pytest.raises(KnobError, match="MATRIX_LR must lie in 0.005..0.2"):
        knob_edit("train.py", knobs["MATRIX_LR"], 3.0)
    with pytest.raises(KnobError, match="power of two"):
        knobs["TOTAL_BATCH_SIZE"].check(10000)


def test_frozen_api_lists_constants_and_signatures():
    api = frozen_api((template_dir("llm") / "prepare.py").read_text())
    assert "MAX_SEQ_LEN = " in api and "def evaluate_bpb(model, batch_size, seq_len=MAX_SEQ_LEN)" in api
    assert "def _tokens" not in api and "np.memmap" not in api


def _experiments(n: int) -> list[Experiment]:
    rng = random.Random(1)
    out, best = [], 3.0
    for i in range(1, n + 1):
        metric = best + rng.uniform(-0.02, 0.1)
        status = "keep" if metric < best or i == 1 else ("crash" if i % 17 == 0 else "discard")
        out.append(Experiment(id=i, branch="b", parent="p", commit=f"{i:07x}", description=f"idea number {i}",
                              status=status, metric=None if status == "crash" else metric,
                              incumbent=None if i == 1 else best, diff=f"-old {i}\n+new {i}\n" * 30,
                              reason="exit code 1: boom" if status == "crash" else ""))
        if status == "keep":
            best = metric
    return out


def test_history_summary_fits_and_keeps_what_matters():
    from autoresearch.core.task import parse_task

    task = parse_task({"task": {"command": ["x"]}, "budget": {"value": 60}})
    experiments = _experiments(500)
    text = history_text(experiments, task, budget_chars=12_000)
    assert len(text) < 12_000 * 1.1
    kept = [e for e in experiments if e.status == "keep"]
    best = kept[-1]
    assert f"Best so far: #{best.id} keep" in text
    assert all(f"#{e.id} keep" in text for e in kept)  # the whole path of improvements
    assert f"#{experiments[-1].id} " in text  # the most recent
    assert "older experiments not listed" in text and text.count("Diff of #") == 3
    small = history_text(experiments[:5], task, budget_chars=12_000)
    assert "not listed" not in small and all(f"#{i} " in small for i in range(1, 6))


def test_user_message_holds_program_files_and_api(tiny_workspace):
    task = load_task(tiny_workspace)
    ws = Workspace(tiny_workspace)
    message = build_user_message(Snapshots(ws, task).take(ws.head(), [], ["an idea in flight"]), 8000)
    for part in ("# Research program", "# Current train.py", "ORDER = 2", "def evaluate_bpb(tables, alpha)",
                 "an idea in flight", "No experiments yet"):
        assert part in message


def test_presets_narrow_the_declared_knob_ranges(tmp_path):
    from autoresearch.core.knobs import KnobError, parse_knobs, set_knob_ranges
    from autoresearch.store.templates import init_workspace

    cpu = {k.name: k for k in parse_knobs((init_workspace(tmp_path / "cpu", template="llm", preset="cpu", tag="k")
                                            / "train.py").read_text())}
    h100 = {k.name: k for k in parse_knobs((init_workspace(tmp_path / "h100", template="llm", preset="h100", tag="k")
                                             / "train.py").read_text())}
    assert (cpu["DEPTH"].low, cpu["DEPTH"].high) == (2, 6) and h100["DEPTH"].high == 24
    assert cpu["TOTAL_BATCH_SIZE"].high == 32768 and cpu["TOTAL_BATCH_SIZE"].scale == "pow2"
    assert cpu["HEAD_DIM"].choices == (32, 64) and cpu["MATRIX_LR"].high == h100["MATRIX_LR"].high
    line = 'X = 3   # knob: int 1..9   a comment that stays\n'
    assert set_knob_ranges(line, {"X": "int 2..4"}) == 'X = 3   # knob: int 2..4   a comment that stays\n'
    with pytest.raises(KnobError, match="no knob Y"):
        set_knob_ranges(line, {"Y": "int 1..2"})
    with pytest.raises(KnobError, match="bad knob range"):
        set_knob_ranges(line, {"X": "between 1 and 2"})
