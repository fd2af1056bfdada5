"""Edits: a model's answer -> a proposal (description, reasoning, edits) -> changed files.

The answer format the prompt asks for:

    DESCRIPTION: one line saying what changes
    REASONING: why it should help (any number of lines)
    <<<<<<< SEARCH train.py
    exact lines to find
    =======
    lines to put there
    >>>>>>> REPLACE

or a whole file in a fenced block whose info string names it: ```python FILE=train.py ... ```.
Application tolerates differences in indentation and trailing spaces, refuses a search text that
matches nowhere or more than once, and refuses any file that is not editable. Each error is one
line meant to go back to the model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from autoresearch.core.knobs import KNOB_LINE, Knob, assignment

_BLOCK = re.compile(
    r"^<{5,9} ?SEARCH(?:[ \t]+(?P<path>\S+))?[ \t]*\n(?P<search>.*?)^={5,9}[ \t]*\n(?P<replace>.*?)^>{5,9} ?REPLACE[ \t]*$",
    re.MULTILINE | re.DOTALL)
_WHOLE_FILE = re.compile(r"^```[\w+-]*[ \t]+FILE=(?P<path>\S+)[ \t]*\n(?P<body>.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
_FIELD = re.compile(r"^(DESCRIPTION|REASONING):[ \t]*(.*)$", re.MULTILINE)


class EditError(ValueError):
    """An answer or edit that cannot be used; the one-line message goes back to the model."""


@dataclass(frozen=True)
class Edit:
    path: str
    search: str  # "" with whole_file=True
    replace: str
    whole_file: bool = False


@dataclass
class Proposal:
    description: str
    reasoning: str = ""
    edits: list[Edit] = field(default_factory=list)


def parse_answer(text: str, default_path: str) -> Proposal:
    """Read a model's answer. Raises EditError saying what is missing or malformed."""
    fields = {name: value.strip() for name, value in _FIELD.findall(text)}
    description = " ".join(fields.get("DESCRIPTION", "").split())
    if not description:
        raise EditError("the answer has no 'DESCRIPTION: ...' line")
    reasoning = ""
    if "REASONING" in fields:
        start = text.index("REASONING:") + len("REASONING:")
        end = min([m.start() for m in (_BLOCK.search(text, start), _WHOLE_FILE.search(text, start)) if m] or [len(text)])
        reasoning = text[start:end].strip()
    edits = [Edit(path=m["path"] or default_path, search=m["search"], replace=m["replace"]) for m in _BLOCK.finditer(text)]
    edits += [Edit(path=m["path"], search="", replace=m["body"], whole_file=True) for m in _WHOLE_FILE.finditer(text)]
    if not edits:
        if "<<<<<<<" in text or "SEARCH" in text:
            raise EditError("a SEARCH/REPLACE block is malformed: it needs '<<<<<<< SEARCH', '=======' and '>>>>>>> REPLACE' lines")
        raise EditError("the answer has no SEARCH/REPLACE block and no whole file: nothing to change")
    return Proposal(description=description, reasoning=reasoning, edits=edits)


def apply_to_texts(files: dict[str, str], edits: list[Edit], editable: list[str]) -> dict[str, str]:
    """The new text of every file the edits touch, computed in memory from `files`. Raises EditError."""
    new_texts: dict[str, str] = {}
    for edit in edits:
        if edit.path not in editable:
            raise EditError(f"{edit.path} is not editable (editable: {', '.join(editable)}); change only those files")
        current = new_texts.get(edit.path, files.get(edit.path, ""))
        new_texts[edit.path] = edit.replace if edit.whole_file else replace_once(current, edit.search, edit.replace, edit.path)
    return new_texts


def with_edits(files: dict[str, str], edits: list[Edit], editable: list[str]) -> dict[str, str]:
    """`files` with the edits applied (all of them, in memory). Raises EditError."""
    return {**files, **apply_to_texts(files, edits, editable)}


def apply_edits(workspace: Path, edits: list[Edit], editable: list[str]) -> dict[str, str]:
    """Apply all edits to the workspace's files, or none: returns {path: new text}. Raises EditError."""
    paths = {edit.path for edit in edits if edit.path in editable}
    files = {path: (workspace / path).read_text() for path in paths if (workspace / path).exists()}
    new_texts = apply_to_texts(files, edits, editable)
    for path, text in new_texts.items():
        (workspace / path).write_text(text)
    return new_texts


def replace_once(text: str, search: str, replace: str, path: str = "the file") -> str:
    """Replace the one place where `search` occurs: exactly, else ignoring indentation and
    trailing whitespace line by line (re-indenting the replacement to match)."""
    if not search.strip():
        raise EditError(f"an empty SEARCH text in {path}: quote the lines to replace")
    count = text.count(search)
    if count == 1:
        return text.replace(search, replace, 1)
    if count > 1:
        raise EditError(f"the SEARCH text occurs {count} times in {path}: include more lines so it matches once")
    lines = text.splitlines(keepends=True)
    wanted = [line.strip() for line in search.strip("\n").splitlines()]
    starts = [i for i in range(len(lines) - len(wanted) + 1)
              if all(lines[i + j].strip() == wanted[j] for j in range(len(wanted)))]
    if not starts:
        first = wanted[0][:60]
        raise EditError(f"the SEARCH text was not found in {path} (first line: {first!r}); copy the lines exactly")
    if len(starts) > 1:
        raise EditError(f"the SEARCH text matches {len(starts)} places in {path} when whitespace is ignored: include more lines")
    start = starts[0]
    found = lines[start:start + len(wanted)]
    shift = _indent(found[0]) - _indent(search.strip("\n").splitlines()[0])
    new_lines = [_reindent(line, shift) for line in replace.strip("\n").splitlines()] if replace.strip() else []
    tail = "\n" if found[-1].endswith("\n") else ""
    return "".join(lines[:start]) + "\n".join(new_lines) + (tail if new_lines else "") + "".join(lines[start + len(wanted):])


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _reindent(line: str, shift: int) -> str:
    if shift > 0:
        return " " * shift + line if line.strip() else line
    return line[min(-shift, _indent(line)):] if shift < 0 else line


def knob_edit(path: str, knob: Knob, value: object) -> Edit:
    """A search/replace edit that sets `knob` to `value` (checked), keeping its comment."""
    value = knob.check(value)
    literal = f'"{value}"' if isinstance(value, str) else repr(value)
    path = knob.path or path
    if not KNOB_LINE.match(knob.line):  # declared in [knobs]: only the value changes
        match = assignment(knob.name).match(knob.line)
        return Edit(path=path, search=knob.line, replace=knob.line[:match.start("value")] + literal
                    + knob.line[match.end("value"):])
    prefix, comment = knob.line.split("#", 1)
    code = f"{knob.name} = {literal}"
    return Edit(path=path, search=knob.line, replace=f"{code.ljust(len(prefix) - 1)} #{comment}")
