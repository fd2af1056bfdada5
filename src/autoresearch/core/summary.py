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
