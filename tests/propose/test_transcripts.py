"""Real answers replayed: each request this product sent (tests/fixtures/model-transcripts, from a
study of the `cpu` preset behind a capable model) is rebuilt from what it showed the model, and the
answer the model wrote goes back through the loopback OpenAI server to the product's own proposer.

Every answer must apply to the files its request showed, or be refused with the reason the model is
then shown, or (to a crash-fix request) be a give-up that leaves the crash: none may be lost.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from llm_server import ScriptedLLMServer

from autoresearch.core.records import Experiment
from autoresearch.core.settings import Budget
from autoresearch.core.status import Status
from autoresearch.core.task import Task
from autoresearch.propose.base import Snapshot
from autoresearch.propose.edits import apply_to_texts
from autoresearch.propose.llm import LLMProposer
from autoresearch.propose.models import OpenAIChat

TRANSCRIPTS = Path(__file__).resolve().parents[1] / "fixtures" / "model-transcripts"
NUMBERS = sorted(p.name.split(".")[0] for p in TRANSCRIPTS.glob("*.request.json"))
# what happened in the study (README.md): every answer ran but 15, a give-up to a crash fix
EXPECTED = {n: "gave up" if n == "15" else "applied" for n in NUMBERS}
TASK = Task(name="cpu", command=["python", "train.py"], metric="val_bpb", direction="minimize",
            budget=Budget(kind="tokens", value=200_000, timeout=420), editable=["train.py"],
            frozen=["prepare.py", "autoresearch.toml"])

_CURRENT = re.compile(r"^# Current (?P<name>\S+)(?: \([^\n]*\))?\n```python\n(?P<text>.*?)\n```\n\n(?=# |Propose the next)",
                      re.MULTILINE | re.DOTALL)
_PROGRAM = re.compile(r"^# Research program \(\S+\)\n(?P<text>.*?)\n\n# Task\n", re.MULTILINE | re.DOTALL)
_FROZEN = re.compile(r"^# What the frozen (?P<name>\S+) offers \(read-only\)\n```python\n(?P<text>.*?)\n```$",
                     re.MULTILINE | re.DOTALL)
_CRASH = re.compile(r"^# The crash\nYour experiment \"(?P<description>.*)\" crashed\. .*?\(your change applied\):"
                    r"\n\n```\n(?P<diff>.*?)\n```\n\nThe end of its log:\n\n```\n(?P<log>.*?)\n```\n\nFix the bug",
                    re.MULTILINE | re.DOTALL)


@dataclass
class Shown:
    """What one request showed the model."""
    number: str
    request: dict
    answer: str
    snapshot: Snapshot
    crashed: Experiment | None = None  # a crash-fix request: the crashed candidate
    log_tail: str = ""


@dataclass
class Outcome:
    kind: str  # applied | refused with reason | gave up | lost
    detail: str = ""


def load(number: str, tmp_path: Path) -> Shown:
    request = json.loads((TRANSCRIPTS / f"{number}.request.json").read_text())
    answer = (TRANSCRIPTS / f"{number}.answer.txt").read_text()
    user = request["messages"][1]["content"]
    files = {m["name"]: m["text"] for m in _CURRENT.finditer(user)}
    assert set(files) == {"train.py"}, f"{number}: the request shows {sorted(files)}"
    crash = _CRASH.search(user)
    if crash:
        files = crashed_files(files, crash["diff"], tmp_path)
    program = _PROGRAM.search(user)
    snapshot = Snapshot(task=TASK, program=program["text"] if program else "", files=files,
                        frozen_api={m["name"]: m["text"] for m in _FROZEN.finditer(user)})
    if not crash:
        return Shown(number, request, answer, snapshot)
    crashed = Experiment(id=int(number), branch="", parent="", commit=None, description=crash["description"],
                         status=Status.CRASH, metric=None, incumbent=None, diff=crash["diff"])
    return Shown(number, request, answer, snapshot, crashed, crash["log"])


def crashed_files(shown: dict[str, str], diff: str, tmp_path: Path) -> dict[str, str]:
    """The files the crashed candidate ran: the shown files with its diff applied, or the shown files
    themselves when they already hold it (the diff then applies only in reverse)."""
    work = tmp_path / "crashed"
    work.mkdir(parents=True)
    for name, text in shown.items():
        (work / name).write_text(text)
    (work / "crash.diff").write_text(diff + "\n")

    def git_apply(*args: str) -> bool:
        return subprocess.run(["git", "apply", *args, "crash.diff"], cwd=work, capture_output=True).returncode == 0

    if git_apply("--check"):
        assert git_apply()
        return {name: (work / name).read_text() for name in shown}
    assert git_apply("--check", "--reverse"), "the crash's diff applies to the shown files neither way"
    return dict(shown)


def replay(shown: Shown) -> Outcome:
    """The answer through the loopback server and the product's proposer; what became of it."""
    with ScriptedLLMServer(responder=lambda body: shown.answer) as server:  # the same answer to any retry
        model = OpenAIChat(shown.request["model"], base_url=server.base_url, max_retries=0, timeout=10,
                           temperature=shown.request["temperature"], max_tokens=shown.request["max_tokens"])
        proposer = LLMProposer(model, max_edit_retries=1)
        if shown.crashed is None:
            draft = proposer.propose(shown.snapshot)
        else:
            draft = proposer.fix(shown.snapshot, shown.crashed, shown.log_tail)
        requests = [r["json"] for r in server.requests]
    sent, recorded = [text_of(m) for m in requests[0]["messages"]], [m["content"] for m in shown.request["messages"]]
    assert sent[0] == recorded[0], "the system prompt differs from the one the model was shown"
    assert _CURRENT.search(sent[1])["text"] == _CURRENT.search(recorded[1])["text"], "the file shown differs"
    if shown.crashed is not None and draft is None:
        if len(requests) != 1:
            return Outcome("lost", f"gave up, but only after {len(requests) - 1} retry request(s)")
        return Outcome("gave up")
    if draft.proposal is not None:
        changed = apply_to_texts(shown.snapshot.files, draft.proposal.edits, TASK.editable)
        if not any(text != shown.snapshot.files.get(name) for name, text in changed.items()):
            return Outcome("lost", "the edits change nothing")
        return Outcome("applied", draft.proposal.description)
    retries = [text_of(r["messages"][-1]) for r in requests[1:]]
    if draft.error and retries and draft.error in retries[0]:
        return Outcome("refused with reason", draft.error)
    return Outcome("lost", f"refused ({draft.error!r}) without telling the model why")


def text_of(message: dict) -> str:
    """A chat message's text, whether its content is a string or a list of text parts."""
    content = message["content"]
    return content if isinstance(content, str) else "".join(part.get("text", "") for part in content)


@pytest.fixture
def api_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")


@pytest.mark.parametrize("number", NUMBERS)
def test_each_answer_applies_or_is_refused_with_the_reason_shown(number, tmp_path, api_key):
    outcome = replay(load(number, tmp_path))
    assert outcome.kind != "lost", f"answer {number}: {outcome.detail}"
    assert outcome.kind == EXPECTED[number], f"answer {number}: {outcome.kind}: {outcome.detail}"


def test_a_give_up_to_a_crash_fix_leaves_the_crash_without_a_retry(tmp_path, api_key):
    shown = load("15", tmp_path)
    assert shown.crashed is not None and "DESCRIPTION: give up" in shown.request["messages"][1]["content"]
    assert shown.answer.strip() == "DESCRIPTION: give up"
    with ScriptedLLMServer([shown.answer]) as server:
        model = OpenAIChat(shown.request["model"], base_url=server.base_url, max_retries=0, timeout=10)
        assert LLMProposer(model).fix(shown.snapshot, shown.crashed, shown.log_tail) is None
        assert len(server.requests) == 1, "the give-up went back to the model as a bad answer"


def test_no_answer_is_lost(tmp_path, api_key):
    outcomes = {n: replay(load(n, tmp_path / n)) for n in NUMBERS}
    tally = Counter(o.kind for o in outcomes.values())
    print("replayed", len(NUMBERS), "answers:", ", ".join(f"{k} {tally[k]}" for k in
                                                          ("applied", "refused with reason", "gave up", "lost")))
    lost = {n: o.detail for n, o in outcomes.items() if o.kind == "lost"}
    assert not lost, lost
    assert tally["applied"] + tally["refused with reason"] + tally["gave up"] == len(NUMBERS)


def test_an_answer_that_misquotes_the_file_is_refused_with_the_reason_shown(tmp_path, api_key):
    """The replay tells a refusal from a loss: answer 01 with its SEARCH text misquoted."""
    shown = load("01", tmp_path)
    search = re.search(r"^<{7} SEARCH \S+\n(.*)$", shown.answer, re.MULTILINE)[1]
    shown.answer = shown.answer.replace(search, search + "  # not in the file", 1)
    outcome = replay(shown)
    assert outcome.kind == "refused with reason" and "was not found in train.py" in outcome.detail
