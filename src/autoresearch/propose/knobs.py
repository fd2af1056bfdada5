"""Knobs: the hyperparameters a training script declares for search tools.

A knob is a module-level assignment with a `# knob:` comment that gives its type and range:

    DEPTH = 8                 # knob: int 2..24
    MATRIX_LR = 0.04          # knob: float 0.005..0.2 log
    WINDOW_PATTERN = "SSSL"   # knob: choice L|SL|SSL|SSSL

Proposers that need no model (random search, TPE) and small models under constrained decoding
change knobs only; `knob_edit` turns a new value into an ordinary search/replace edit.
"""

from __future__ import annotations

import ast
import math
import random
import re
from dataclasses import dataclass

from autoresearch.propose.edits import Edit
from autoresearch.store import gitops

_KNOB_LINE = re.compile(r"^(?P<name>[A-Z][A-Z0-9_]*)\s*=\s*(?P<value>[^#\n]+?)\s*#\s*knob:\s*(?P<spec>.*)$", re.MULTILINE)
_RANGE = re.compile(r"^(?P<kind>int|float)\s+(?P<low>[-+0-9.e]+)\s*\.\.\s*(?P<high>[-+0-9.e]+)(?:\s+(?P<scale>log|pow2)\b)?")
_CHOICE = re.compile(r"^choice\s+(?P<choices>\S+)")


class KnobError(ValueError):
    """A knob declaration or value that cannot be used; one line."""


@dataclass(frozen=True)
class Knob:
    name: str
    kind: str  # int | float | choice
    current: object
    line: str  # the whole source line, for the edit
    low: float = 0.0
    high: float = 0.0
    scale: str = "linear"  # linear | log | pow2 (powers of two only)
    choices: tuple = ()  # typed: numbers stay numbers

    def check(self, value: object) -> object:
        """`value` as this knob's type if it lies in range; KnobError otherwise (small models ignore ranges)."""
        if self.kind == "choice":
            for choice in self.choices:
                if str(choice) == str(value):
                    return choice
            raise KnobError(f"{self.name} must be one of {'|'.join(map(str, self.choices))}, not {value!r}")
        if isinstance(value, str):  # small models quote numbers
            try:
                value = float(value)
            except ValueError:
                raise KnobError(f"{self.name} must be a number, not {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise KnobError(f"{self.name} must be a number, not {value!r}")
        if not self.low <= value <= self.high:
            raise KnobError(f"{self.name} must lie in {self.low:g}..{self.high:g}, not {value!r}")
        if self.kind == "int":
            if value != int(value):
                raise KnobError(f"{self.name} must be an integer, not {value!r}")
            if self.scale == "pow2" and int(value) & (int(value) - 1):
                raise KnobError(f"{self.name} must be a power of two, not {value!r}")
            return int(value)
        return float(value)

    def sample(self, rng: random.Random, near: object | None = None, spread: float = 1.0) -> object:
        """A value in range, different from `near` where the range allows. With `near`, a step of
        up to `spread` octaves (log, pow2) or `spread`/4 of the range (linear) around it; else uniform."""
        for _ in range(20):
            value = self._draw(rng, near, spread)
            if value != near:
                return value
        return value

    def _draw(self, rng: random.Random, near: object | None, spread: float) -> object:
        if self.kind == "choice":
            return rng.choice(self.choices)
        low, high = self.low, self.high
        if self.scale in ("log", "pow2") and low > 0:
            if near is None or not isinstance(near, (int, float)) or near <= 0:
                value = math.exp(rng.uniform(math.log(low), math.log(high)))
            else:
                value = near * 2 ** rng.uniform(-spread, spread)
            if self.scale == "pow2":
                value = 2 ** round(math.log2(value))
        else:
            center = near if isinstance(near, (int, float)) else rng.uniform(low, high)
            value = center + rng.uniform(-spread, spread) * (high - low) / 4 if near is not None else center
        value = min(max(value, low), high)
        if self.kind == "int":
            return int(round(value))
        return float(f"{value:.3g}")


def parse_knobs(source: str) -> list[Knob]:
    knobs = []
    for match in _KNOB_LINE.finditer(source):
        name, spec = match["name"], match["spec"].strip()
        try:
            current = ast.literal_eval(match["value"])
        except (ValueError, SyntaxError):
            raise KnobError(f"knob {name}: its value {match['value']!r} is not a literal") from None
        if m := _RANGE.match(spec):
            low, high = float(m["low"]), float(m["high"])
            if low > high:
                raise KnobError(f"knob {name}: empty range {m['low']}..{m['high']}")
            knobs.append(Knob(name, m["kind"], current, match.group(0), low, high, m["scale"] or "linear"))
        elif m := _CHOICE.match(spec):
            choices = tuple(_literal_or_text(choice) for choice in m["choices"].split("|"))
            knobs.append(Knob(name, "choice", current, match.group(0), choices=choices))
        else:
            raise KnobError(f"knob {name}: cannot read {spec!r} (expected 'int A..B', 'float A..B [log]' or 'choice X|Y')")
    return knobs


def _literal_or_text(text: str) -> object:
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
    return value if isinstance(value, (int, float)) else text


def knob_edit(path: str, knob: Knob, value: object) -> Edit:
    """A search/replace edit that sets `knob` to `value` (checked), keeping its comment."""
    value = knob.check(value)
    literal = f'"{value}"' if isinstance(value, str) else repr(value)
    prefix, comment = knob.line.split("#", 1)
    code = f"{knob.name} = {literal}"
    return Edit(path=path, search=knob.line, replace=f"{code.ljust(len(prefix) - 1)} #{comment}")


def set_knob_ranges(source: str, ranges: dict[str, str]) -> str:
    """Replace the declared type and range of knobs (`{"DEPTH": "int 2..8"}`), keeping the rest of
    each comment: presets narrow ranges to what fits their machine and budget."""
    for name, spec in ranges.items():
        if not (_RANGE.match(spec) or _CHOICE.match(spec)):
            raise KnobError(f"bad knob range for {name}: {spec!r} (e.g. 'int 2..8', 'float 0.01..1 log', 'choice A|B')")
        line = re.search(rf"^{re.escape(name)}\s*=.*#\s*knob:\s*(?P<spec>.*)$", source, re.MULTILINE)
        if not line:
            raise KnobError(f"train.py declares no knob {name}")
        old = line.group("spec")
        match = _RANGE.match(old) or _CHOICE.match(old)
        rest = old[match.end():] if match else ""
        width = len(match.group(0)) if match else 0
        new = spec.ljust(width) + rest if len(spec) <= width else spec + (" " + rest.lstrip() if rest.strip() else "")
        source = source[:line.start("spec")] + new.rstrip() + source[line.end("spec"):]
    return source


def knob_values_at(workspace, commit: str | None, path: str) -> dict[str, object]:
    """The knob values `path` declares at `commit` ({} if it is missing or its knobs cannot be read)."""
    if not commit:
        return {}
    try:
        return {k.name: k.current for k in parse_knobs((gitops.file_at(workspace, commit, path) or b"").decode())}
    except KnobError:
        return {}
