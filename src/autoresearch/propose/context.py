"""Context: what the model sees for one proposal, kept inside a token budget.

program.md, the editable files, what the frozen file offers (constants and signatures, not its
code), and the history. The history is summarised by importance, not cut at random: the path of
kept improvements and the best result always; the biggest gains with their diffs; the most
recent experiments; the near misses; then one-line descriptions of everything else, oldest
dropped first with a count of what was left out.
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

    def render(self) -> str:
        value = f"{self.exp.metric:.6f}" if self.exp.metric is not None and self.exp.status != Status.CRASH else "-"
        delta = f" ({self.delta:+.6f})" if self.delta is not None and self.exp.status != Status.CRASH else ""
        reason = f" [{self.exp.reason[:100]}]" if self.exp.status == Status.CRASH else ""
        return f"#{self.exp.id} {self.exp.status:7s} {value}{delta}  {self.exp.description}{reason}"


def history_text(experiments: list[Experiment], task: Task, budget_chars: int) -> str:
    if not experiments:
        return "No experiments yet: the first one is the baseline (run the code as it is, or a safe change)."
    lines = [HistoryLine(e, e.metric - e.incumbent if e.metric is not None and e.incumbent is not None else None)
             for e in experiments if e.status != Status.RUNNING]
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


def build_user_message(snapshot: Snapshot, budget_tokens: int, extra: str = "") -> str:
    """The user message of a proposal, from what the snapshot holds."""
    task = snapshot.task
    sections = [f"# Research program ({task.program})\n{snapshot.program.strip()}",
                f"# Task\nmetric: {task.metric} ({task.direction}); budget: {task.budget.value:g} {task.budget.kind} "
                f"per experiment; hard timeout {task.budget.timeout:g} s."]
    for name, api in snapshot.frozen_api.items():
        if api:
            sections.append(f"# What the frozen {name} offers (read-only)\n```python\n{api}\n```")
    if task.knobs:
        sections.append("# Knobs declared in autoresearch.toml (change a value where it lives)\n" + "\n".join(
            f"- {k.name}: {k.spec}, in {k.file or task.knob_file}"
            + ("" if k.file else f" (passed to the command as {{{k.name}}})") for k in task.knobs))
    for name in task.editable:
        text = snapshot.files.get(name) or "(missing: create it with a whole-file block)"
        sections.append(f"# Current {name}\n```python\n{text}\n```")
    if snapshot.in_flight:
        sections.append("# Running right now (do not propose these again)\n"
                        + "\n".join(f"- {d}" for d in snapshot.in_flight))
    if snapshot.notes:
        sections.append("# Notes from the harness\n" + "\n".join(snapshot.notes))
    if extra:
        sections.append(extra)
    fixed = sum(len(s) for s in sections)
    history_budget = max(2000, budget_tokens * CHARS_PER_TOKEN - fixed - 2000)
    sections.insert(2, "# History\n" + history_text(snapshot.history, task, history_budget))
    sections.append("Propose the next experiment.")
    return "\n\n".join(sections)
