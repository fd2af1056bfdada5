"""Knobs: the hyperparameters a training script declares for search tools.

A knob is a module-level assignment with a `# knob:` comment that gives its type and range:

    DEPTH = 8                 # knob: int 2..24
    MATRIX_LR = 0.04          # knob: float 0.005..0.2 log
    WINDOW_PATTERN = "SSSL"   # knob: choice L|SL|SSL|SSSL

Proposers that need no model (random search, TPE) and small models under constrained decoding
change knobs only (propose/edits.py `knob_edit` turns a new value into a search/replace edit); presets
narrow their ranges; a run's command takes flag knobs' values. Reading them is a rule of the task, so
it lives here, with no disk and no git: callers hand over the files' text.
"""

from __future__ import annotations

import ast
import math
import random
import re
import tomllib
from dataclasses import dataclass, replace

from autoresearch.core.knob_spec import CHOICE, RANGE

KNOB_LINE = re.compile(r"^(?P<name>[A-Z][A-Z0-9_]*)\s*=\s*(?P<value>[^#\n]+?)\s*#\s*knob:\s*(?P<spec>.*)$", re.MULTILINE)


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
    path: str = ""  # the file it lives in ("" = the main editable file)

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
    for match in KNOB_LINE.finditer(source):
        name = match["name"]
        try:
            current = ast.literal_eval(match["value"])
        except (ValueError, SyntaxError):
            raise KnobError(f"knob {name}: its value {match['value']!r} is not a literal") from None
        knobs.append(knob_from_spec(name, current, match["spec"].strip(), match.group(0)))
    return knobs


def knob_from_spec(name: str, current: object, spec: str, line: str, path: str = "") -> Knob:
    """A knob of `spec` ('int A..B', 'float A..B log', 'choice X|Y') whose source line is `line`."""
    if m := RANGE.match(spec):
        low, high = float(m["low"]), float(m["high"])
        if low > high:
            raise KnobError(f"knob {name}: empty range {m['low']}..{m['high']}")
        return Knob(name, m["kind"], current, line, low, high, m["scale"] or "linear", path=path)
    if m := CHOICE.match(spec):
        choices = tuple(_literal_or_text(choice) for choice in m["choices"].split("|"))
        return Knob(name, "choice", current, line, choices=choices, path=path)
    raise KnobError(f"knob {name}: cannot read {spec!r} (expected 'int A..B', 'float A..B [log]' or 'choice X|Y')")


def _literal_or_text(text: str) -> object:
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
    return value if isinstance(value, (int, float)) else text


def assignment(name: str) -> re.Pattern:
    """`name = value` (Python, TOML) or `name: value` (YAML), with an optional comment after it."""
    return re.compile(rf"^[ \t]*{re.escape(name)}[ \t]*[=:][ \t]*(?P<value>[^#\n]*?)[ \t]*(?:#.*)?$", re.MULTILINE)


def declared_knobs(files: dict[str, str], task) -> list[Knob]:
    """The knobs `[knobs]` declares, with their current values read from the files they live in."""
    knobs = []
    for decl in task.knobs:
        path = decl.file or task.knob_file
        match = assignment(decl.name).search(files.get(path, ""))
        if match is None:
            raise KnobError(f"[knobs] {decl.name}: {path} assigns no value to it (e.g. '{decl.name} = 0.001')")
        knobs.append(knob_from_spec(decl.name, _literal_or_text(match["value"].strip()), decl.spec, match.group(0),
                                    path))
    return knobs


def task_knobs(files: dict[str, str], task) -> list[Knob]:
    """Every knob of a task: `# knob:` comments in the main editable file, and `[knobs]`."""
    main = task.editable[0]
    commented = [k for k in parse_knobs(files.get(main, "")) if k.name not in {d.name for d in task.knobs}]
    return [replace(k, path=main) for k in commented] + declared_knobs(files, task)


def set_knob_ranges(source: str, ranges: dict[str, str]) -> str:
    """Replace the declared type and range of knobs (`{"DEPTH": "int 2..8"}`), keeping the rest of
    each comment: presets narrow ranges to what fits their machine and budget."""
    for name, spec in ranges.items():
        if not (RANGE.match(spec) or CHOICE.match(spec)):
            raise KnobError(f"bad knob range for {name}: {spec!r} (e.g. 'int 2..8', 'float 0.01..1 log', 'choice A|B')")
        line = re.search(rf"^{re.escape(name)}\s*=.*#\s*knob:\s*(?P<spec>.*)$", source, re.MULTILINE)
        if not line:
            raise KnobError(f"train.py declares no knob {name}")
        old = line.group("spec")
        match = RANGE.match(old) or CHOICE.match(old)
        rest = old[match.end():] if match else ""
        width = len(match.group(0)) if match else 0
        new = spec.ljust(width) + rest if len(spec) <= width else spec + (" " + rest.lstrip() if rest.strip() else "")
        source = source[:line.start("spec")] + new.rstrip() + source[line.end("spec"):]
    return source


def knob_paths(task) -> list[str]:
    """The files a task's knobs live in: the main editable file and those `[knobs]` names."""
    return sorted({task.editable[0], *(d.file or task.knob_file for d in task.knobs)})


def knob_values(files: dict[str, str], task) -> dict[str, object]:
    """The current value of each knob of `task` in `files` ({} if they cannot be read)."""
    try:
        return {k.name: k.current for k in task_knobs(files, task)}
    except KnobError:
        return {}


def flag_values(knob_file_text: str, task) -> dict[str, str]:
    """The command-line flag knobs' values, from the knob file's text (for `{name}` in the command)."""
    flags = [k.name for k in task.knobs if not k.file]
    if not flags:
        return {}
    try:
        values = tomllib.loads(knob_file_text)
    except tomllib.TOMLDecodeError as exc:
        raise KnobError(f"{task.knob_file} cannot be read as TOML ({exc})") from None
    missing = [name for name in flags if name not in values]
    if missing:
        raise KnobError(f"{task.knob_file} has no value for {', '.join(missing)} (e.g. '{missing[0]} = 0.001')")
    return {name: str(values[name]) for name in flags}
