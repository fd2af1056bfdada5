"""Proposers backed by a chat model.

- `LLMProposer`: any chat model answering with SEARCH/REPLACE blocks; bad answers go back to the
  model with the exact error, a bounded number of times; it can also fix a crash.
- `KnobProposer`: small models under constrained decoding (a JSON schema that only allows knob
  changes); the ranges they ignore are checked here.

Each returns a `Draft` with the record of how it was made (prompt, response, tokens, cost,
latency, error), which the study stores in the ledger.
"""

from __future__ import annotations

import json
import re

from autoresearch.core.knobs import KnobError
from autoresearch.core.records import Experiment
from autoresearch.propose.base import Draft, Snapshot
from autoresearch.propose.context import build_request, prompt_template, template_values
from autoresearch.propose.edits import EditError, Proposal, apply_to_texts, knob_edit, parse_answer
from autoresearch.propose.models import ChatModel, ModelError
from autoresearch.propose.search import searchable_knobs

GAVE_UP = "gave up: the idea cannot work"


class LLMProposer:
    """Any chat model answering with SEARCH/REPLACE blocks; bad answers go back to it with the exact error."""

    def __init__(self, model: ChatModel, max_edit_retries: int = 2, context_tokens: int = 24000,
                 name: str | None = None):
        self.model = model
        self.name = name or "llm"
        self.max_edit_retries = max_edit_retries
        self.context_tokens = context_tokens

    def propose(self, snapshot: Snapshot) -> Draft:
        return self._converse(snapshot, build_request(snapshot, self.context_tokens))

    def fix(self, snapshot: Snapshot, crashed: Experiment, log_tail: str) -> Draft | None:
        """A fix of the crash, or None when the model gives up on the idea (as the request offers)."""
        values = dict(template_values(snapshot.task), description=crashed.description, diff=crashed.diff[-6000:],
                      log_tail=log_tail)
        extra = "# The crash\n" + prompt_template("fix.md").substitute(values)
        draft = self._converse(snapshot, build_request(snapshot, self.context_tokens, crash=extra), may_give_up=True)
        return None if draft.error == GAVE_UP else draft

    def _converse(self, snapshot: Snapshot, user: list[dict], may_give_up: bool = False) -> Draft:
        system = system_prompt(snapshot.task)
        messages = [{"role": "user", "content": user}]
        prompt = system + "\n\n" + "".join(part["text"] for part in user)
        draft = Draft(None, self.name, model=self.model.name, prompt=prompt)
        for attempt in range(1, self.max_edit_retries + 2):
            draft.attempts = attempt
            try:
                completion = self.model.complete(system, messages)
            except ModelError as exc:
                draft.error, draft.fatal = str(exc), exc.permanent
                return draft
            _account(draft, completion)
            if gives_up(completion.text):  # an answer, not a format error: never sent back
                draft.error = GAVE_UP if may_give_up else "the model gave up instead of proposing"
                return draft
            try:
                proposal = parse_answer(completion.text, snapshot.main_file)
                apply_to_texts(snapshot.files, proposal.edits, snapshot.task.editable)
            except EditError as exc:
                draft.error = str(exc)
                messages += [{"role": "assistant", "content": completion.text},
                             {"role": "user", "content": f"That answer could not be applied: {exc}. "
                                                         "Answer again, in the required format."}]
                continue
            draft.proposal, draft.error = proposal, ""
            return draft
        return draft


class KnobProposer:
    """For small local models: constrained decoding to knob changes only, ranges checked here."""

    def __init__(self, model: ChatModel, max_edit_retries: int = 2, name: str | None = None):
        self.model = model
        self.name = name or "knobs-llm"
        self.max_edit_retries = max_edit_retries

    def propose(self, snapshot: Snapshot) -> Draft:
        path = snapshot.main_file
        knobs, failed = searchable_knobs(snapshot, self.name)
        if failed:
            return failed
        schema = knob_schema(list(knobs))
        system = prompt_template("knob_system.md").substitute(template_values(snapshot.task))
        lines = [f"{k.name} = {k.current!r}  ({_range_text(k)})" for k in knobs.values()]
        recent = [f"{e.status} {e.metric if e.metric is not None else '-'}: {e.description}" for e in snapshot.history[-12:]]
        user = "Knobs now:\n" + "\n".join(lines) + "\n\nRecent experiments:\n" + ("\n".join(recent) or "none")
        messages = [{"role": "user", "content": user}]
        draft = Draft(None, self.name, model=self.model.name, prompt=system + "\n\n" + user)
        for attempt in range(1, self.max_edit_retries + 2):
            draft.attempts = attempt
            try:
                completion = self.model.complete(system, messages, json_schema=schema)
            except ModelError as exc:
                draft.error, draft.fatal = str(exc), exc.permanent
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
                apply_to_texts(snapshot.files, edits, snapshot.task.editable)
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

    def fix(self, snapshot: Snapshot, crashed: Experiment, log_tail: str) -> Draft | None:
        return None


def system_prompt(task) -> str:
    """The system prompt of every request an `LLMProposer` sends for `task` (stable: cached first)."""
    return prompt_template("system.md").substitute(template_values(task))


def gives_up(answer: str) -> bool:
    """`DESCRIPTION: give up` (what a fix request offers when the idea itself cannot work)."""
    match = re.search(r"^\s*DESCRIPTION:\s*(.*)$", answer, re.MULTILINE)
    return match is not None and match.group(1).strip().strip(".!").lower() == "give up"


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
    draft.tokens_cached += getattr(completion, "tokens_cached", 0) or 0
    draft.latency_s += completion.latency_s
    if completion.cost_usd is not None:
        draft.cost_usd = (draft.cost_usd or 0.0) + completion.cost_usd
