"""Knob specs: the type and range of a hyperparameter, as `# knob:` comments and `[knobs]` write them.

    int 2..24           float 0.005..0.2 log           int 64..1024 pow2           choice L|SL|SSL
"""

from __future__ import annotations

import re

RANGE = re.compile(r"^(?P<kind>int|float)\s+(?P<low>[-+0-9.e]+)\s*\.\.\s*(?P<high>[-+0-9.e]+)(?:\s+(?P<scale>log|pow2)\b)?")
CHOICE = re.compile(r"^choice\s+(?P<choices>\S+)")
EXAMPLE = "'int A..B', 'float A..B [log]' or 'choice X|Y'"


def spec_problem(spec: str) -> str:
    """Why `spec` is not a knob spec, or "" when it is one."""
    if not isinstance(spec, str):
        return f"a knob spec is text ({EXAMPLE}), not {spec!r}"
    spec = spec.strip()
    if m := RANGE.match(spec):
        try:
            low, high = float(m["low"]), float(m["high"])
        except ValueError:
            return f"cannot read the range of {spec!r} ({EXAMPLE})"
        if low > high:
            return f"empty range {m['low']}..{m['high']}"
        if m["scale"] in ("log", "pow2") and low <= 0:
            return f"a {m['scale']} range must start above 0, not at {m['low']}"
        return ""
    if CHOICE.match(spec):
        return ""
    return f"cannot read {spec!r} (expected {EXAMPLE})"
