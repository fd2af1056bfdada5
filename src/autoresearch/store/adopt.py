"""Adopt: an existing training repository made a workspace, without touching its code.

`autoresearch adopt` writes autoresearch.toml (from the flags, and what it finds: the script the
command runs, starting values of the knobs from its argument parser or its module constants),
a program.md to start from, the knob file for command-line flag knobs, and `.autoresearch/` in
.gitignore; commits them on the research branch `autoresearch/<tag>`; and says what it assumed.
"""

from __future__ import annotations

import ast
import fnmatch
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from autoresearch.core.errors import UserError
from autoresearch.core.knob_spec import spec_problem
from autoresearch.core.task import CONFIG_NAME, ConfigError, parse_task
from autoresearch.store import gitops
from autoresearch.store.templates import default_tag, toml_string
from autoresearch.store.workspace import SCHEMA_LINE, STATE_DIR, Workspace

IGNORED = (f"{STATE_DIR}/", "results.tsv")
KNOB_FILE = "knobs.toml"


class AdoptError(UserError):
    """A repository that cannot be adopted as asked; one line that says what to do."""


@dataclass
class AdoptOptions:
    command: str
    metric: str
    metric_pattern: str = ""
    direction: str = "minimize"
    editable: list[str] = field(default_factory=list)  # globs; default: the script the command runs
    frozen: list[str] = field(default_factory=list)  # globs
    budget: float | None = None  # seconds
    timeout: float | None = None
    tag: str | None = None
    knobs: list[str] = field(default_factory=list)  # "name spec" or "name=value spec"


@dataclass
class Plan:
    toml: str
    program: str
    knob_values: dict[str, object]
    assumed: list[str]
    branch: str


def plan(root: Path, options: AdoptOptions) -> Plan:
    """What adopting `root` would write, checked by the same parser every run uses."""
    tracked = gitops.git(root, "ls-files").splitlines()
    argv = shlex.split(options.command)
    if not argv:
        raise AdoptError("--command is empty: give the command that trains, e.g. --command 'python train.py'")
    assumed: list[str] = []
    if re.fullmatch(r"python[0-9.]*", argv[0]):
        argv[0] = "{python}"
        assumed.append("runs use the Python that runs autoresearch ({python} in the command), with its packages")
    script = next((a for a in argv if a.endswith(".py") and a in tracked), None)
    editable = _expand(options.editable, tracked, "--editable") if options.editable else ([script] if script else [])
    if not editable:
        raise AdoptError("no file to edit: the command names no tracked .py script; give --editable GLOBS")
    if not options.editable:
        assumed.append(f"the agent may edit {script} (the script the command runs): widen with --editable")
    frozen = [f for f in _expand(options.frozen, tracked, "--frozen") if f not in editable]
    knobs, values = _knobs(root, options.knobs, script, assumed)
    argv += [f"--{name}={{{name}}}" for name in knobs if not any(f"{{{name}}}" in a for a in argv)]
    if knobs:
        editable.append(KNOB_FILE)
    budget = options.budget or 300.0
    if options.budget is None:
        assumed.append("a budget of 300 s a run by the harness's wall clock (less 10 s of start-up): set --budget")
    if not options.metric_pattern:
        assumed.append(f"the run prints a summary block ('---', then '{options.metric}: <value>'); "
                       "give --metric-pattern REGEX to read its own log lines instead")
    toml = _render(root.name, options, argv, (editable, frozen), knobs, budget)
    try:
        parse_task(tomllib.loads(toml), source=CONFIG_NAME)
    except ConfigError as exc:
        raise AdoptError(str(exc)) from None
    tag = options.tag or default_tag()
    return Plan(toml, _program(options, editable, knobs), values, assumed, f"autoresearch/{tag}")


def _expand(globs: list[str], tracked: list[str], flag: str) -> list[str]:
    found = []
    for pattern in globs:
        matches = [f for f in tracked if fnmatch.fnmatch(f, pattern)]
        if not matches:
            raise AdoptError(f"{flag} {pattern!r} matches no tracked file (git ls-files)")
        found += [m for m in matches if m not in found]
    return found


def _knobs(root: Path, declared: list[str], script: str | None, assumed: list[str]) -> tuple[dict, dict]:
    """`--knob` declarations: name -> spec, and the starting values (given, or found in the script)."""
    defaults = script_defaults((root / script).read_text(errors="replace")) if script else {}
    specs, values = {}, {}
    for text in declared:
        match = re.match(r"^\s*(?P<name>[A-Za-z_]\w*)(?:=(?P<value>\S+))?\s+(?P<spec>.+)$", text)
        if not match:
            raise AdoptError(f"--knob {text!r}: expected 'NAME SPEC' or 'NAME=VALUE SPEC', e.g. 'lr float 1e-4..1e-2 log'")
        name, spec = match["name"], match["spec"].strip()
        problem = spec_problem(spec)
        if problem:
            raise AdoptError(f"--knob {name}: {problem}")
        if match["value"] is not None:
            values[name] = _literal(match["value"])
        elif name in defaults:
            values[name] = defaults[name]
            assumed.append(f"knob {name} starts at {defaults[name]!r}, the script's own default")
        else:
            raise AdoptError(f"--knob {name}: no default for it in {script or 'the script'}; give one: "
                             f"--knob '{name}=VALUE {spec}'")
        specs[name] = spec
    return specs, values


def script_defaults(source: str) -> dict[str, object]:
    """Defaults a script declares: `add_argument("--name", default=...)` and module-level `name = literal`."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return {}
    found: dict[str, object] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            value = _constant(node.value)
            if value is not None:
                found[node.targets[0].id] = value
            elif isinstance(node.value, ast.Dict):  # config = {"lr": 3e-4, ...}: a parser of its own reads it
                for key, item in zip(node.value.keys, node.value.values):
                    name, value = _constant(key) if key else None, _constant(item)
                    if isinstance(name, str) and value is not None:
                        found.setdefault(name, value)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument" and node.args:
            flag = _constant(node.args[0])
            default = next((_constant(k.value) for k in node.keywords if k.arg == "default"), None)
            if isinstance(flag, str) and flag.startswith("--") and default is not None:
                found[flag[2:].replace("-", "_")] = default
    return found


def _constant(node: ast.AST) -> object | None:
    try:
        value = ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError):
        return None
    return value if isinstance(value, (int, float, str)) and not isinstance(value, bool) else None


def _literal(text: str) -> object:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _render(name: str, options: AdoptOptions, argv: list[str], files: tuple[list[str], list[str]], knobs: dict,
            budget: float) -> str:
    editable, frozen = files
    listed = lambda items: "[" + ", ".join(toml_string(i) for i in items) + "]"  # noqa: E731
    lines = [SCHEMA_LINE, "# autoresearch task of an adopted repository: what to run and how to score it. Frozen.", "[task]",
             f"name = {toml_string(name)}", f"command = {listed(argv)}",
             f"metric = {toml_string(options.metric)}", f"direction = {toml_string(options.direction)}",
             f"editable = {listed(editable)}", f"frozen = {listed([*frozen, CONFIG_NAME])}"]
    if options.metric_pattern:
        lines.append(f"metric_pattern = {toml_string(options.metric_pattern)}")
    timeout = options.timeout or 2 * budget + 60
    lines += ["", "[budget]   # by the harness's wall clock, less start-up: the script's own count is not used",
              'kind = "seconds"', f"value = {budget:g}", f"timeout = {timeout:g}"]
    if knobs:
        lines += ["", f"[knobs]   # command-line flags: their values live in {KNOB_FILE}, {{name}} in the command"]
        lines += [f"{name} = {toml_string(spec)}" for name, spec in knobs.items()]
    lines += ["", "# no [evaluation] command: the metric is what each run reports of itself, marked 'not verified'",
              "# in every view. README, 'Your own repository', shows how to score the saved checkpoint instead.",
              "", "[sandbox]", 'kind = "auto"', ""]
    return "\n".join(lines)


def _program(options: AdoptOptions, editable: list[str], knobs: dict) -> str:
    better = "lower" if options.direction == "minimize" else "higher"
    knob_lines = "".join(f"- `{name}` ({spec}), in {KNOB_FILE}\n" for name, spec in knobs.items())
    return (f"# Research program\n\nGoal: the {better} `{options.metric}` within the fixed budget of each run.\n\n"
            f"You may change: {', '.join(editable)}. Everything else is fixed.\n\n"
            + (f"Declared knobs (the search proposers move these; you may too):\n{knob_lines}\n" if knobs else "")
            + "Think about what limits the model in this budget: throughput, optimisation, capacity, data.\n"
              "Prefer simple changes; a change that does not beat the noise is discarded.\n")


def write(root: Path, adopted: Plan) -> list[str]:
    """Write the plan, commit it on the research branch; returns the files written."""
    if gitops.git(root, "status", "--porcelain", "--untracked-files=no"):
        raise AdoptError("the repository has uncommitted changes: commit or stash them first, so that the "
                         "baseline is the code as committed")
    files = {CONFIG_NAME: adopted.toml, "program.md": adopted.program}
    if adopted.knob_values:
        files[KNOB_FILE] = "".join(f"{k} = {_toml_value(v)}\n" for k, v in adopted.knob_values.items())
    for name in files:
        if (root / name).exists():
            raise AdoptError(f"{root / name} exists already: this repository was adopted before, or remove it")
    if gitops.git(root, "branch", "--list", adopted.branch):
        raise AdoptError(f"the branch {adopted.branch} exists already: choose another --tag")
    gitops.git(root, "checkout", "-q", "-b", adopted.branch)
    for name, text in files.items():
        (root / name).write_text(text)
    ignore = root / ".gitignore"
    present = ignore.read_text().splitlines() if ignore.exists() else []
    missing = [line for line in IGNORED if line not in present]
    if missing:
        with open(ignore, "a") as f:
            f.write(("\n" if present and present[-1] else "") + "# autoresearch: run state and results\n"
                    + "\n".join(missing) + "\n")
    gitops.git(root, "add", *files, ".gitignore")
    gitops.git(root, "commit", "-q", "-m", "autoresearch: adopt this repository")
    Workspace(root).write_schema()
    return [*files, ".gitignore"]


def _toml_value(value: object) -> str:
    return toml_string(value) if isinstance(value, str) else repr(value)
