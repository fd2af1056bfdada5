"""Context: what the model sees for one proposal, kept inside a token budget, stable parts first.

The parts that stay the same from one request to the next come first, so that the model APIs'
prompt caches serve them: program.md, the task's facts, what the frozen file offers (constants and
signatures, not its code), the knobs, the editable files (they change on a keep). Then what
changes: the noise the judge measures, the history, the harness's notes, what is running, the ask.

The history is summarised by importance, not cut at random: the path of kept improvements and the
best result always; the biggest gains with their diffs; the most recent experiments; the near
misses; then one-line descriptions of everything else, oldest dropped first with a count of what
was left out. Each line carries its decision's margin in sd and what its runs cost.
"""

from __future__ import annotations

import ast
import string
from dataclasses import dataclass
from importlib import resources

from autoresearch.core.records import Experiment
from autoresearch.core.status import FINISHED, Status
from autoresearch.core.task import Task
from autoresearch.propose.base import Snapshot
from autoresearch.propose.facts import margin_text, noise_text, run_figures, task_facts

CHARS_PER_TOKEN = 4  # a rough, conservative estimate for English and code
MAX_DIFF_CHARS = 2500


def prompt_template(name: str) -> string.Template:
    return string.Template((resources.files("autoresearch.propose") / "prompts" / name).read_text())


def template_values(task: Task) -> dict[str, str]:
    return {
        "metric": task.metric,
        "direction_word": "lower" if task.direction == "minimize" else "higher",
        "default_file": task.editable[0],
        "editable": ", ".join(task.editable),
        "frozen": ", ".join(task.frozen) or "nothing else",
    }


def frozen_api(source: str) -> str:
    """Top-level constants and function signatures (with their first docstring line) of Python source."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return ""
    source_lines, lines = source.splitlines(), []
    for node in tree.body:
        if isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) and t.id.isupper() for t in node.targets):
            lines.append(source_lines[node.lineno - 1])
        elif isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
            doc = (ast.get_docstring(node) or "").strip().splitlines()
            lines.append(f"def {node.name}({ast.unparse(node.args)})" + (f"  # {doc[0]}" if doc else ""))
    return "\n".join(lines)


@dataclass
class HistoryLine:
    exp: Experiment
    delta: float | None  # metric minus the incumbent it was judged against
    timeout: float = 0.0  # the task's hard timeout, to say when a run came close to it

    def render(self) -> str:
        exp, crashed = self.exp, self.exp.status == Status.CRASH
        value = f"{exp.metric:.6f}" if exp.metric is not None and not crashed else "-"
        judged = [f"{self.delta:+.6f}"] if self.delta is not None and not crashed else []
        judged += [margin_text(exp)] if not crashed and margin_text(exp) else []
        delta = f" ({', '.join(judged)})" if judged else ""
        figures = run_figures(exp, self.timeout)
        reason = f" [{exp.reason[:100]}]" if crashed or exp.metrics.get("stopped_at") is not None else ""
        return f"#{exp.id} {exp.status:7s} {value}{delta}  {exp.description}{reason}" + (f" | {figures}" if figures else "")


def history_text(experiments: list[Experiment], task: Task, budget_chars: int) -> str:
    if not experiments:
        return "No experiments yet: the first one is the baseline (run the code as it is, or a safe change)."
    lines = [HistoryLine(e, e.metric - e.incumbent if e.metric is not None and e.incumbent is not None else None,
                         task.budget.timeout) for e in experiments if e.status != Status.RUNNING]
    kept = [h for h in lines if h.exp.status == Status.KEEP]
    best = kept[-1] if kept else None
    counts = {s: sum(1 for h in lines if h.exp.status == s) for s in FINISHED}
    sign = 1 if task.direction == "minimize" else -1
    parts = [f"{len(lines)} experiments so far: {counts['keep']} kept, {counts['discard']} discarded, {counts['crash']} crashed."]
    if best:
        parts.append(f"Best so far: {best.render()}")
    parts.append("Kept improvements, in order:\n" + "\n".join(h.render() for h in kept))
    used = sum(len(p) for p in parts)
    shown = {h.exp.id for h in kept}

    gains = sorted((h for h in kept if h.delta is not None and h.exp.diff), key=lambda h: sign * h.delta)[:3]
    for h in gains:
        block = f"Diff of #{h.exp.id} ({h.exp.description}, {h.delta:+.6f}):\n{h.exp.diff[:MAX_DIFF_CHARS]}"
        if used + len(block) < budget_chars * 0.5:
            parts.append(block)
            used += len(block)

    def add_section(title: str, candidates: list[HistoryLine]) -> None:
        nonlocal used
        picked = []
        for h in candidates:
            text = h.render()
            if h.exp.id in shown or used + len(text) > budget_chars:
                continue
            picked.append(h)
            shown.add(h.exp.id)
            used += len(text) + 1
        if picked:
            parts.append(title + "\n" + "\n".join(h.render() for h in sorted(picked, key=lambda h: h.exp.id)))

    add_section("Most recent:", lines[::-1][:15])
    near = [h for h in lines if h.exp.status == Status.DISCARD and h.delta is not None]
    add_section("Near misses (closest to the best, not kept):", sorted(near, key=lambda h: sign * h.delta)[:8])
    add_section("Everything else tried (newest first):", lines[::-1])
    left_out = len(lines) - len(shown)
    if left_out > 0:
        parts.append(f"({left_out} older experiments not listed, to fit the context.)")
    return "\n\n".join(parts)


def build_request(snapshot: Snapshot, budget_tokens: int, crash: str = "") -> list[dict]:
    """The user message of a proposal as two parts: what stays the same from one request to the next
    first (the program, the task's facts, the frozen API, the knobs, the files: a prefix the model
    APIs cache), then what changes (the noise, the history, the notes, what is running, the ask: a
    new experiment, or the fix of a `crash`, whose files the snapshot holds)."""
    task = snapshot.task
    stable = [f"# Research program ({task.program})\n{snapshot.program.strip()}",
              "# The task\n" + task_facts(task, snapshot.history)]
    for name, api in snapshot.frozen_api.items():
        if api:
            stable.append(f"# What the frozen {name} offers (read-only)\n```python\n{api}\n```")
    if task.knobs:
        stable.append("# Knobs declared in autoresearch.toml (change a value where it lives)\n" + "\n".join(
            f"- {k.name}: {k.spec}, in {k.file or task.knob_file}"
            + ("" if k.file else f" (passed to the command as {{{k.name}}})") for k in task.knobs))
    for name in task.editable:
        text = snapshot.files.get(name) or "(missing: create it with a whole-file block)"
        shown = " (the version that crashed: your fix applies to this file)" if crash else _based_on(snapshot)
        stable.append(f"# Current {name}{shown}\n```python\n{text}\n```")
    changing = ["# The noise\n" + noise_text(task, snapshot.history)]
    if snapshot.notes:
        changing.append("# Notes from the harness\n" + "\n".join(snapshot.notes))
    if snapshot.in_flight:
        changing.append(_running(snapshot))
    changing.append(crash or "Propose the next experiment.")
    used = sum(len(part) for part in stable + changing)
    history_budget = max(2000, budget_tokens * CHARS_PER_TOKEN - used - 2000)
    history = history_text(snapshot.history, task, history_budget)
    changing.insert(1, "# History (oldest experiments drop out first when the context is short)\n" + history)
    return [{"type": "text", "text": "\n\n".join(stable) + "\n\n", "cache": True},
            {"type": "text", "text": "\n\n".join(changing), "cache": False}]


def build_user_message(snapshot: Snapshot, budget_tokens: int, crash: str = "") -> str:
    """The user message of a proposal as one text (its parts joined)."""
    return "".join(part["text"] for part in build_request(snapshot, budget_tokens, crash))


def _based_on(snapshot: Snapshot) -> str:
    """Which commit the files shown are, said plainly (other candidates may be running meanwhile)."""
    kept = [e for e in snapshot.history if e.status == Status.KEEP and e.commit]
    shown = next((e for e in reversed(kept) if e.commit == snapshot.parent), None)
    if shown is None:
        return ""
    if shown is kept[-1]:
        return f" (the code of #{shown.id}, the best so far: your edit applies to this file)"
    return f" (the code of #{shown.id}, one of the best kept but not the best: your edit applies to this file)"


def _running(snapshot: Snapshot) -> str:
    return ("# Running right now (do not propose these again)\n" + "\n".join(f"- {d}" for d in snapshot.in_flight)
            + "\nEach is another candidate with its own change; their results are not in yet. Your edit applies to "
              "the file shown, not on top of theirs; if one of them is kept first, your edit is replayed on the "
              "new best and must confirm its gain there.")
