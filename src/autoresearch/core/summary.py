"""The summary block a training script prints last: a line `---`, then one `key: value` a line."""

from __future__ import annotations

import math
import re

_LINE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*):\s*(.*?)\s*$")


def parse_summary(text: str) -> dict[str, float | str]:
    """Key/value pairs of the last summary block in `text`; {} if there is none.
    Numbers become floats (nan included, so a caller can reject it); anything else stays text."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip() == "---"]
    if not starts:
        return {}
    summary: dict[str, float | str] = {}
    for line in lines[starts[-1] + 1:]:
        match = _LINE.match(line.strip())
        if not match:
            break
        key, value = match.groups()
        summary[key] = _number(value)
    return summary


def _number(value: str) -> float | str:
    try:
        return float(value.replace(",", ""))
    except ValueError:
        return value


def metric_value(summary: dict[str, float | str], metric: str) -> float | None:
    """The metric as a finite number, or None if it is missing or not a finite number."""
    value = summary.get(metric)
    if isinstance(value, float) and math.isfinite(value):
        return value
    return None


def last_match(text: str, pattern: str) -> str | None:
    """The group of the last line of `text` that `pattern` matches, or None."""
    compiled = re.compile(pattern)
    found = None
    for line in text.splitlines():
        match = compiled.search(line)
        if match:
            found = match.group(1)
    return found


def read_metrics(text: str, metric: str, pattern: str = "", extra: dict[str, str] | None = None) -> dict:
    """What a run reports: its summary block, and the metrics its own log lines give by pattern
    (the last match of each wins over a summary value of the same name)."""
    summary = parse_summary(text)
    for name, regex in ({metric: pattern} if pattern else {}).items() | (extra or {}).items():
        value = last_match(text, regex)
        if value is not None:
            summary[name] = _number(value)
    return summary


def pattern_failure(text: str, metric: str, pattern: str) -> str:
    """Why the metric could not be read by its pattern, said so that the fix is clear."""
    value = last_match(text, pattern)
    if value is None:
        return (f"the run never printed a line matching metric_pattern {pattern!r} for {metric}: "
                "check the pattern against the end of the log")
    return f"metric_pattern {pattern!r} matched {value!r}, which is not a finite number: put the group around it"
