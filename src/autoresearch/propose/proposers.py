"""Proposers: where the next candidate comes from.

- `RandomProposer`: no model; moves one declared knob to a random nearby value (offline runs,
  and a yardstick for the others).
- `LLMProposer`: any chat model answering with SEARCH/REPLACE blocks; bad answers go back to the
  model with the exact error, a bounded number of times; it can also fix a crash.
- `KnobProposer`: small models under constrained decoding (a JSON schema that only allows knob
  changes); the ranges they ignore are checked here.

Each returns a `Draft`: the proposal (or None when it failed) and the record of how it was made
(prompt, response, tokens, cost, latency, error), which the loop stores in the ledger.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

from autoresearch.propose.context import build_user_message, prompt_template, template_values
from autoresearch.propose.edits import EditError, Proposal, apply_to_texts, parse_answer
from autoresearch.propose.knobs import KnobError, knob_edit, parse_knobs
from autoresearch.store.ledger import Experiment
from autoresearch.propose.models import ChatModel, ModelError
from autoresearch.core.task import Task


@dataclass
class Request:
    workspace: Path
    task: Task
    experiments: list[Experiment]
    files: dict[str, str]  # the editable files as the proposal must change them (the incumbent's)
    in_flight: list[str] = field(default_factory=list)
    parent: str = ""  # the commit those files come from


@dataclass
class Draft:
    proposal: Proposal | None
    proposer: str
    model: str = ""
    prompt: str = ""
    response: str = ""
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float | None = None
    latency_s: float = 0.0
    attempts: int = 0
    error: str = ""
    ledger_id: int | None = None  # set once the ledger holds it

    def record(self) -> dict:
        """Columns for the ledger's proposals table."""
        p = self.proposal
        return {
            "proposer": self.proposer, "model": self.model,
            "description": p.description if p else "", "reasoning": p.reasoning if p else "",
            "edits_json": json.dumps([asdict(e) for e in p.edits]) if p else "[]",
            "prompt": self.prompt, "response": self.response, "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out, "cost_usd": self.cost_usd, "latency_s": round(self.latency_s, 3),
            "attempts": self.attempts, "error": self.error,
        }


class Proposer(Protocol):
    name: str

    def propose(self, request: Request) -> Draft: ...

    def fix(self, request: Request, crashed: Experiment, log_tail: str) -> Draft | None: ...


class RandomProposer:
    name = "random"

    def __init__(self, seed: int | None = None, spread: float = 1.0, exclude: tuple[str, ...] = ("TORCH_COMPILE",)):
        self.rng = random.Random(seed)
        self.spread = spread
        self.exclude = set(exclude)

    def propose(self, request: Request) -> Draft:
        path = request.task.editable[0]
        try:
            knobs = [k for k in parse_knobs(request.files.get(path, "")) if k.name not in self.exclude]
        except KnobError as exc:
            return Draft(None, self.name, error=str(exc), attempts=1)
        if not knobs:
            return Draft(None, self.name, attempts=1,
                         error=f"{path} declares no knobs ('NAME = value  # knob: float A..B'); the random proposer needs them")
        tried = {e.description for e in request.experiments} | set(request.in_flight)
        for attempt in range(1, 51):
            knob = self.rng.choice(knobs)
            value = knob.sample(self.rng, near=knob.current, spread=self.spread)
            description = f"{knob.name} {knob.current!r} -> {value!r}"
            if value != knob.current and description not in tried:
                edit = knob_edit(path, knob, value)
                return Draft(Proposal(description, f"random step of one knob ({knob.kind}, {knob.scale})", [edit]),
                             self.name, attempts=attempt)
        return Draft(None, self.name, attempts=50, error="no untried knob value found in 50 draws")

    def fix(self, request: Request, crashed: Experiment, log_tail: str) -> Draft | None:
        return None  # a random step has no bug to fix: the next random step is the remedy


class LLMProposer:
    def __init__(self, model: ChatModel, max_edit_retries: int = 2, context_tokens: int = 24000):
        self.model = model
        self.name = "llm"
        self.max_edit_retries = max_edit_retries
        self.context_tokens = context_tokens

    def propose(self, request: Request) -> Draft:
        user = build_user_message(request.workspace, request.task, request.experiments, request.in_flight,
                                  self.context_tokens, files=request.files)
        return self._converse(request, user)

    def fix(self, request: Request, crashed: Experiment, log_tail: str) -> Draft | None:
        values = dict(template_values(request.task), description=crashed.description, diff=crashed.diff[-6000:],
                      log_tail=log_tail[-4000:])
        extra = "# The crash\n" + prompt_template("fix.md").substitute(values)
        user = build_user_message(request.workspace, request.task, request.experiments, request.in_flight,
                                  self.context_tokens, extra=extra, files=request.files)
        draft = self._converse(request, user)
        if draft.proposal is None and "give up" in draft.response.lower():
            return None
        return draft

    def _converse(self, request: Request, user: str) -> Draft:
        system = prompt_template("system.md").substitute(template_values(request.task))
        messages = [{"role": "user", "content": user}]
        draft = Draft(None, self.name, model=self.model.name, prompt=system + "\n\n" + user)
        for attempt in range(1, self.max_edit_retries + 2):
            draft.attempts = attempt
            try:
                completion = self.model.complete(system, messages)
            except ModelError as exc:
                draft.error = str(exc)
                return draft
            _account(draft, completion)
            try:
                proposal = parse_answer(completion.text, request.task.editable[0])
                if proposal.description.lower() == "give up":
                    raise EditError("gave up")
                apply_to_texts(request.files, proposal.edits, request.task.editable)
            except EditError as exc:
                draft.error = str(exc)
                if str(exc) == "gave up":
                    return draft
                messages += [{"role": "assistant", "content": completion.text},
                             {"role": "user", "content": f"That answer could not be applied: {exc}. "
                                                         "Answer again, in the required format."}]
                continue
            draft.proposal, draft.error = proposal, ""
            return draft
        return draft


class KnobProposer:
    """For small local models: constrained decoding to knob changes only, ranges checked here."""

    def __init__(self, model: ChatModel, max_edit_retries: int = 2):
        self.model = model
        self.name = "knobs-llm"
        self.max_edit_retries = max_edit_retries

    def propose(self, request: Request) -> Draft:
        path = request.task.editable[0]
        knobs = {k.name: k for k in parse_knobs(request.files.get(path, "")) if k.name != "TORCH_COMPILE"}
        schema = knob_schema(list(knobs))
        system = prompt_template("knob_system.md").substitute(template_values(request.task))
        lines = [f"{k.name} = {k.current!r}  ({_range_text(k)})" for k in knobs.values()]
        recent = [f"{e.status} {e.metric if e.metric is not None else '-'}: {e.description}" for e in request.experiments[-12:]]
        user = "Knobs now:\n" + "\n".join(lines) + "\n\nRecent experiments:\n" + ("\n".join(recent) or "none")
        messages = [{"role": "user", "content": user}]
        draft = Draft(None, self.name, model=self.model.name, prompt=system + "\n\n" + user)
        for attempt in range(1, self.max_edit_retries + 2):
            draft.attempts = attempt
            try:
                completion = self.model.complete(system, messages, json_schema=schema)
            except ModelError as exc:
                draft.error = str(exc)
                return draft
            _account(draft, completion)
            try:
                answer = json.loads(completion.text)
                edits, notes = [], []
                changes = {c["knob"]: c["value"] for c in answer["changes"]}  # one change per knob: the last
                for name, value in changes.items():
                    knob = knobs[name]
                    value = knob.check(value)
                    value = float(f"{value:.4g}") if isinstance(value, float) else value  # readable diffs
                    edits.append(knob_edit(path, knob, value))
                    notes.append(f"{knob.name} {knob.current!r} -> {value!r}")
                apply_to_texts(request.files, edits, request.task.editable)
            except (ValueError, KeyError, TypeError, KnobError, EditError) as exc:
                draft.error = f"{type(exc).__name__}: {exc}"
                messages += [{"role": "assistant", "content": completion.text},
                             {"role": "user", "content": f"Invalid: {draft.error}. Answer again with valid JSON."}]
                continue
            description = "; ".join(notes)  # what really changes, whatever the model called it
            draft.proposal = Proposal(description, str(answer.get("reasoning", ""))[:500], edits)
            draft.error = ""
            return draft
        return draft

    def fix(self, request: Request, crashed: Experiment, log_tail: str) -> Draft | None:
        return None


def knob_schema(names: list[str]) -> dict:
    return {
        "type": "object",
        "properties": {
            "description": {"type": "string", "maxLength": 200},  # caps stop a small model rambling
            "reasoning": {"type": "string", "maxLength": 400},
            "changes": {"type": "array", "minItems": 1, "maxItems": 2, "items": {
                "type": "object",
                "properties": {"knob": {"type": "string", "enum": names}, "value": {"type": ["number", "string"]}},
                "required": ["knob", "value"]}},
        },
        "required": ["description", "changes"],
    }


def _range_text(knob) -> str:
    if knob.kind == "choice":
        return "one of " + "|".join(map(str, knob.choices))
    return f"{knob.kind} {knob.low:g}..{knob.high:g}" + (f" {knob.scale}" if knob.scale != "linear" else "")


def _account(draft: Draft, completion) -> None:
    draft.response = completion.text
    draft.tokens_in += completion.tokens_in
    draft.tokens_out += completion.tokens_out
    draft.latency_s += completion.latency_s
    if completion.cost_usd is not None:
        draft.cost_usd = (draft.cost_usd or 0.0) + completion.cost_usd
