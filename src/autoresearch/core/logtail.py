"""A crashed run's log tail that explains the failure, short enough to show a model.

A run prints a progress line about every second, so the raw end of a log is mostly near-identical
`step ... | loss ... | tok/s ...` lines, and a cut by characters lands mid-word. `explain_tail`
keeps every other line (a traceback, a warning, the harness's `[autoresearch] killed: ...`),
collapses exact repeats, keeps only the first and the last two progress lines (enough to see
where the loss and the speed went), and cuts at a line boundary, saying how much it cut.
"""

from __future__ import annotations

from autoresearch.core.curve import parse_progress

PROGRESS_KEPT_AT_END = 2
PROGRESS_WORD = "step "  # how a progress line begins (see curve.PROGRESS_LINE)


def explain_tail(text: str, max_lines: int = 40, max_chars: int = 4000) -> str:
    """The lines of a log's end that explain it: see the module's docstring. At most `max_lines`
    lines and `max_chars` characters, a note on what was cut at the top included."""
    lines = text.splitlines()
    if lines:
        lines[0] = _whole_first_line(lines[0])
    lines = _collapse_repeats(_thin_progress(lines))
    return _last_part(lines, max(max_lines, 2), max(max_chars, 80))


def _whole_first_line(line: str) -> str:
    """A tail cut by characters starts mid-line: a progress line cut inside its leading word `step`
    gets it back whole (so it counts as one, and no line starts mid-word); others stay as they are."""
    if parse_progress(line) is not None:
        return line
    for k in range(1, len(PROGRESS_WORD)):  # not 5: the cut may have been inside the step's digits
        restored = PROGRESS_WORD[:k] + line
        if restored.startswith(PROGRESS_WORD) and parse_progress(restored) is not None:
            return restored
    return line


def _thin_progress(lines: list[str]) -> list[str]:
    """All lines but the progress lines between the first and the last two, which become one note."""
    progress = [i for i, line in enumerate(lines) if parse_progress(line) is not None]
    dropped = progress[1:-PROGRESS_KEPT_AT_END] if len(progress) > 1 + PROGRESS_KEPT_AT_END else []
    if not dropped:
        return list(lines)
    gone, out = set(dropped), []
    for i, line in enumerate(lines):
        if i == dropped[0]:
            out.append(f"(... {len(dropped)} progress lines ...)")
        elif i not in gone:
            out.append(line)
    return out


def _collapse_repeats(lines: list[str]) -> list[str]:
    """Each run of exactly equal lines as one line, with how many times it was printed."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        j = i
        while j + 1 < len(lines) and lines[j + 1] == lines[i]:
            j += 1
        count = j - i + 1
        out.append(lines[i] if count == 1 or not lines[i].strip() else f"{lines[i]} (repeated {count} times)")
        i = j + 1
    return out


def _last_part(lines: list[str], max_lines: int, max_chars: int) -> str:
    """The last lines that fit both limits, the note on what was cut above them included."""
    body = lines[-max_lines:] if len(lines) <= max_lines else lines[len(lines) - max_lines + 1:]
    while body and len(_render(lines, body)) > max_chars:
        body = body[1:]
    if not body and lines:  # not even the last line fits: its end, from a word
        room = max_chars - len(_cut_note(len(lines))) - 1
        body = [_line_end(lines[-1], room)] if room > 3 else []
    return _render(lines, body)


def _render(lines: list[str], body: list[str]) -> str:
    cut = len(lines) - len(body)
    return "\n".join(([_cut_note(cut)] if cut else []) + body)


def _cut_note(lines_cut: int) -> str:
    return f"(... {lines_cut} earlier line{'s' if lines_cut != 1 else ''} cut ...)"


def _line_end(line: str, max_chars: int) -> str:
    """The end of a line too long to show whole, from the first whole word that fits, after '...'."""
    start = len(line) - (max_chars - 3)
    if not line[start - 1].isspace() and " " in line[start:]:
        start = line.index(" ", start)
    return "..." + line[start:].lstrip()
