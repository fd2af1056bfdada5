"""Task: what to run and how to score it, read from a workspace's `autoresearch.toml`.

The harness knows nothing about GPTs: a task is a command, a metric with a direction, a
budget, a hard timeout, and which files the agent may edit or must leave alone.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from autoresearch.core.abort import AbortRule
from autoresearch.core.errors import UserError
from autoresearch.core.knob_spec import spec_problem

CONFIG_NAME = "autoresearch.toml"
BUDGET_KINDS = ("seconds", "tokens", "flops")
DIRECTIONS = ("minimize", "maximize")


class ConfigError(UserError, ValueError):
    """A bad or missing `autoresearch.toml`; the message is one line that says what to fix."""


@dataclass(frozen=True)
class Budget:
    kind: str  # seconds | tokens | flops: what "the budget" counts
    value: float  # how much of it one experiment may spend on training
    timeout: float  # wall-clock seconds after which the whole process group is killed
    warmup_seconds: float = 0.0  # warm-up a run may leave uncounted; 0 = twice the baseline's (at least 5 s)
    startup_seconds: float = 10.0  # for a run without the frozen loader: wall time before training counts


@dataclass(frozen=True)
class DataSpec:
    dataset: str = ""  # "" for tasks whose data ships with the template
    vocab_size: int = 0
    seq_len: int = 0
    eval_tokens: int = 0  # 0 = every validation token


@dataclass(frozen=True)
class AgentSettings:
    """[agent]: who proposes. No model means the built-in random proposer over the knobs."""
    provider: str = ""  # openai | anthropic | local | random | tpe ("" = openai if a model is named, else random)
    model: str = ""
    base_url: str = ""
    api_key_env: str = ""  # default: OPENAI_API_KEY or ANTHROPIC_API_KEY
    temperature: float = 0.7
    context_tokens: int = 24000
    max_edit_retries: int = 2
    max_fix_attempts: int = 2
    seed: int | None = None


@dataclass(frozen=True)
class JudgeSettings:
    """[judge]: when a candidate counts as better. See judge.py."""
    rule: str = "noise"  # noise | strict (the original: strictly better after one run)
    baseline_runs: int = 3  # runs of the baseline, to measure the noise
    z: float = 2.5  # a kept gain beats z standard deviations of the difference (2.0 kept ~5 % of null edits)
    min_delta: float = 0.0  # and at least this much, in metric units
    max_reruns: int = 2  # extra runs of a candidate in the grey zone
    grey_zone: float = 1.0  # an apparent gain of at least this many sd (but under z) is run again
    max_memory_gb: float = 0.0  # 0 = no cap
    never_keep_seed_only: bool = True  # changes to seeds or comments alone are never kept
    prefer_simpler: bool = True  # as good within noise and shorter code is kept


@dataclass(frozen=True)
class EvaluationSettings:
    """[evaluation]: the trusted evaluation. With a command, the training run must hand its model
    off (to $AUTORESEARCH_HANDOFF) and the metric is what this command prints, run in a separate
    sandbox that alone may read the validation data. Without one, the metric is the one the
    training run prints (fine for your own tasks; nothing then stops a run from faking it)."""
    command: list[str] = field(default_factory=list)  # {python} and {handoff} are filled in
    timeout: float = 0.0  # seconds; 0 = the budget's timeout
    private: list[str] = field(default_factory=list)  # workspace files only the evaluation may read
    held_out: list[str] = field(default_factory=list)  # files only a verification's evaluation may read (test split)
    # the command waits for the harness's word (run/evaluation.py): start it with the run ("run") or at the
    # handoff (true); false: after the run
    early_start: bool | str = False


@dataclass(frozen=True)
class SandboxSettings:
    """[sandbox]: isolation and limits of every run (see sandbox.py)."""
    kind: str = "auto"  # auto | bwrap | none
    memory_gb: float = 0.0  # resident memory of a run's processes; 0 = 80 % of this machine's memory
    max_processes: int = 512
    network: bool = False


@dataclass(frozen=True)
class KnobDecl:
    """[knobs]: a hyperparameter declared in autoresearch.toml instead of a `# knob:` comment.
    Without `file` it is a command-line flag: its value lives in the knob file, and `{name}` in the
    command is replaced by it; with `file` it is a constant assigned in that (editable) file."""
    name: str
    spec: str  # int A..B | float A..B [log] | choice X|Y
    file: str = ""


# untracked paths of a repository that are its runs' outputs, not data: never shown to a run
DEFAULT_OUTPUTS = ("out", "outputs", "checkpoints", "ckpt", "logs", "runs", "wandb", "lightning_logs", "mlruns",
                   "__pycache__", ".venv", "venv", ".ipynb_checkpoints")


@dataclass(frozen=True)
class Task:
    name: str
    command: list[str]
    metric: str
    direction: str
    budget: Budget
    editable: list[str]
    frozen: list[str]
    program: str = "program.md"
    preset: str = ""
    data: DataSpec = field(default_factory=DataSpec)
    agents: tuple[AgentSettings, ...] = (AgentSettings(),)  # [agent], or one per [[agent]] table
    judge: JudgeSettings = field(default_factory=JudgeSettings)
    evaluation: EvaluationSettings = field(default_factory=EvaluationSettings)
    sandbox: SandboxSettings = field(default_factory=SandboxSettings)
    early_abort: AbortRule | None = AbortRule()  # stop hopeless runs (see abort.py); [early_abort] enabled = false: never
    metric_pattern: str = ""  # a regex with one group: the metric from the run's own output (last match)
    extra_patterns: dict[str, str] = field(default_factory=dict)  # more metrics recorded the same way
    knobs: tuple[KnobDecl, ...] = ()
    knob_file: str = "knobs.toml"  # where the values of command-line flag knobs live (TOML, editable)
    outputs: tuple[str, ...] = DEFAULT_OUTPUTS  # untracked paths that are outputs: not linked into runs

    @property
    def agent(self) -> AgentSettings:
        """The first (often the only) proposer's settings."""
        return self.agents[0]


def load_task(workspace: Path) -> Task:
    path = Path(workspace) / CONFIG_NAME
    if not path.exists():
        raise ConfigError(f"no {CONFIG_NAME} in {workspace}: run `autoresearch init DIR` first, or cd into a workspace")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    return parse_task(raw, source=str(path))


def parse_task(raw: dict, source: str = CONFIG_NAME) -> Task:
    task = _table(raw, "task", source)
    budget = _table(raw, "budget", source)
    data = raw.get("data", {})

    command = task.get("command")
    if isinstance(command, str):
        command = command.split()
    if not command or not all(isinstance(part, str) for part in command):
        raise ConfigError(f"{source}: [task] command must be a non-empty list of strings, e.g. [\"{{python}}\", \"train.py\"]")
    direction = task.get("direction", "minimize")
    if direction not in DIRECTIONS:
        raise ConfigError(f"{source}: [task] direction must be one of {', '.join(DIRECTIONS)}, not {direction!r}")
    budget = _budget(budget, source)
    editable, frozen = _task_files(task, source)

    patterns = _patterns(task, source)
    knob_file = str(task.get("knob_file", "knobs.toml"))
    knobs = _knobs(raw.get("knobs", {}), command, editable, knob_file, source)
    outputs = task.get("outputs", list(DEFAULT_OUTPUTS))
    if not isinstance(outputs, list) or not all(isinstance(o, str) for o in outputs):
        raise ConfigError(f"{source}: [task] outputs must be a list of paths (untracked outputs of runs)")
    return Task(
        name=str(task.get("name", "task")),
        command=list(command),
        metric=str(task.get("metric", "val_bpb")),
        direction=direction,
        budget=budget,
        editable=editable,
        frozen=frozen,
        program=str(task.get("program", "program.md")),
        preset=str(task.get("preset", "")),
        data=DataSpec(
            dataset=str(data.get("dataset", "")),
            vocab_size=int(data.get("vocab_size", 0)),
            seq_len=int(data.get("seq_len", 0)),
            eval_tokens=int(data.get("eval_tokens", 0)),
        ),
        agents=_agents(raw.get("agent", {}), source),
        judge=_judge(raw.get("judge", {}), source),
        evaluation=_evaluation(raw.get("evaluation", {}), source),
        sandbox=_sandbox(raw.get("sandbox", {}), source),
        early_abort=_early_abort(raw.get("early_abort", {}), source),
        metric_pattern=patterns.get("", ""),
        extra_patterns={k: v for k, v in patterns.items() if k},
        knobs=knobs,
        knob_file=knob_file,
        outputs=tuple(outputs),
    )


def _budget(budget: dict, source: str) -> Budget:
    """[budget]: what it counts, how much, the hard timeout, and the allowances."""
    kind = budget.get("kind", "seconds")
    if kind not in BUDGET_KINDS:
        raise ConfigError(f"{source}: [budget] kind must be one of {', '.join(BUDGET_KINDS)}, not {kind!r}")
    value = _positive_number(budget, "value", source)
    default_timeout = 2 * value + 60 if kind == "seconds" else None
    timeout = budget.get("timeout", default_timeout)
    if timeout is None:
        raise ConfigError(f"{source}: [budget] timeout (seconds) is required when the budget counts {kind}")
    timeout = _positive_number({"timeout": timeout}, "timeout", source)
    if kind == "seconds" and timeout <= value:
        raise ConfigError(f"{source}: [budget] timeout ({timeout:g} s) must exceed the budget ({value:g} s)")
    return Budget(kind=kind, value=value, timeout=timeout, warmup_seconds=_seconds(budget, "warmup_seconds", 0.0, source),
                  startup_seconds=_seconds(budget, "startup_seconds", 10.0, source))


def _task_files(task: dict, source: str) -> tuple[list[str], list[str]]:
    """[task] editable and frozen: paths inside the workspace, none of them both."""
    editable = _string_list(task, "editable", source, default=["train.py"])
    frozen = _string_list(task, "frozen", source, default=[])
    overlap = set(editable) & set(frozen)
    if overlap:
        raise ConfigError(f"{source}: {', '.join(sorted(overlap))} cannot be both editable and frozen")
    for name in editable + frozen:
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise ConfigError(f"{source}: file {name!r} must be a path inside the workspace")
    return editable, frozen


def _patterns(task: dict, source: str) -> dict[str, str]:
    """`metric_pattern` (under the key "") and `extra_patterns`, each a regex with one group."""
    found = {}
    extra = task.get("extra_patterns", {})
    if not isinstance(extra, dict):
        raise ConfigError(f"{source}: [task] extra_patterns must be a table of name = 'regex'")
    for name, pattern in {"": task.get("metric_pattern", ""), **extra}.items():
        if pattern == "" and name == "":
            continue
        where = "metric_pattern" if name == "" else f"extra_patterns.{name}"
        if not isinstance(pattern, str) or not pattern:
            raise ConfigError(f"{source}: [task] {where} must be a regular expression")
        try:
            groups = re.compile(pattern).groups
        except re.error as exc:
            raise ConfigError(f"{source}: [task] {where} {pattern!r} is not a regular expression ({exc})") from None
        if groups != 1:
            raise ConfigError(f"{source}: [task] {where} {pattern!r} must have exactly one group around the number, "
                              f"e.g. 'val loss ([0-9.]+)' (it has {groups})")
        found[name] = pattern
    return found


def _knobs(table: dict, command: list[str], editable: list[str], knob_file: str, source: str) -> tuple[KnobDecl, ...]:
    """[knobs]: `name = "float A..B log"` (a command-line flag) or `name = {range = "...", file = "config.py"}`."""
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: [knobs] must be a table of name = 'int A..B' or name = {{range = ..., file = ...}}")
    knobs = []
    for name, value in table.items():
        spec, file = (value, "") if not isinstance(value, dict) else (value.get("range"), value.get("file", ""))
        if isinstance(value, dict) and set(value) - {"range", "file"}:
            raise ConfigError(f"{source}: [knobs] {name}: only range and file may be given, not "
                              f"{', '.join(sorted(set(value) - {'range', 'file'}))}")
        problem = spec_problem(spec)
        if problem:
            raise ConfigError(f"{source}: [knobs] {name}: {problem}")
        home = file or knob_file
        if home not in editable:
            raise ConfigError(f"{source}: [knobs] {name} lives in {home}, which is not in [task] editable: add it there")
        if not file and not any(f"{{{name}}}" in part for part in command):
            raise ConfigError(f"{source}: [knobs] {name} is a command-line flag but the command never uses "
                              f"{{{name}}}: add e.g. \"--{name}={{{name}}}\" to [task] command, or give it a file")
        knobs.append(KnobDecl(str(name), spec.strip(), str(file)))
    flags = {k.name for k in knobs if not k.file}
    for part in command:
        for used in re.findall(r"\{(\w+)\}", part):
            if used not in HARNESS_PLACEHOLDERS and used not in flags:
                raise ConfigError(f"{source}: [task] command uses {{{used}}} but [knobs] declares no flag {used}")
    return tuple(knobs)


HARNESS_PLACEHOLDERS = ("python", "seed")  # filled in by the harness: the interpreter, the run's seed


def _settings(cls, table: dict, name: str, source: str):
    known = set(cls.__dataclass_fields__)
    unknown = set(table) - known
    if unknown:
        raise ConfigError(f"{source}: unknown [{name}] setting(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}")
    try:
        return cls(**table)
    except TypeError as exc:
        raise ConfigError(f"{source}: bad [{name}] table ({exc})") from None


def _evaluation(table: dict, source: str) -> EvaluationSettings:
    settings = _settings(EvaluationSettings, table, "evaluation", source)
    command = settings.command
    if not isinstance(command, list) or not all(isinstance(part, str) for part in command):
        raise ConfigError(f"{source}: [evaluation] command must be a list of strings")
    if command and not any("{handoff}" in part for part in command):
        raise ConfigError(f"{source}: [evaluation] command must name the handed-off model as {{handoff}}")
    for name in ("private", "held_out"):
        files = getattr(settings, name)
        if not isinstance(files, list) or not all(isinstance(p, str) and not Path(p).is_absolute()
                                                  and ".." not in Path(p).parts for p in files):
            raise ConfigError(f"{source}: [evaluation] {name} must be a list of file names inside the workspace")
    if not isinstance(settings.timeout, (int, float)) or settings.timeout < 0:
        raise ConfigError(f"{source}: [evaluation] timeout must be a number of seconds >= 0")
    if not isinstance(settings.early_start, bool) and settings.early_start != "run":
        raise ConfigError(f'{source}: [evaluation] early_start must be "run", true or false')
    return settings


def _sandbox(table: dict, source: str) -> SandboxSettings:
    settings = _settings(SandboxSettings, table, "sandbox", source)
    if settings.kind not in ("auto", "bwrap", "none"):
        raise ConfigError(f"{source}: [sandbox] kind must be auto, bwrap or none, not {settings.kind!r}")
    if not isinstance(settings.memory_gb, (int, float)) or settings.memory_gb < 0:
        raise ConfigError(f"{source}: [sandbox] memory_gb must be a number >= 0")
    if not isinstance(settings.max_processes, int) or settings.max_processes < 0:
        raise ConfigError(f"{source}: [sandbox] max_processes must be a whole number >= 0")
    return settings


def _judge(table: dict, source: str) -> JudgeSettings:
    settings = _settings(JudgeSettings, table, "judge", source)
    if settings.rule not in ("noise", "strict"):
        raise ConfigError(f"{source}: [judge] rule must be noise or strict, not {settings.rule!r}")
    if settings.baseline_runs < 1 or settings.max_reruns < 0 or settings.z <= 0:
        raise ConfigError(f"{source}: [judge] needs baseline_runs >= 1, max_reruns >= 0 and z > 0")
    return settings


def _early_abort(table: dict, source: str) -> AbortRule | None:
    """[early_abort]: `enabled` (on by default: benchmarks/RESULTS.md, 2026-12-02) and the rule's settings."""
    table = dict(table)
    enabled = table.pop("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError(f"{source}: [early_abort] enabled must be true or false, not {enabled!r}")
    if "checkpoints" in table:
        points = table["checkpoints"]
        if not isinstance(points, list) or not points or not all(
                isinstance(p, (int, float)) and not isinstance(p, bool) and 0 < p < 1 for p in points):
            raise ConfigError(f"{source}: [early_abort] checkpoints must be shares of the budget between 0 and 1, "
                              f"e.g. [0.3, 0.5, 0.7], not {points!r}")
        table["checkpoints"] = tuple(sorted(float(p) for p in points))
    rule = _settings(AbortRule, table, "early_abort", source)
    numbers = {"band_sd": rule.band_sd, "headroom": rule.headroom, "window": rule.window}
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in numbers.values()) \
            or rule.band_sd <= 0 or not 0 < rule.window < rule.checkpoints[0]:
        raise ConfigError(f"{source}: [early_abort] needs band_sd > 0, headroom >= 0 and 0 < window < the first "
                          f"checkpoint ({rule.checkpoints[0]:g})")
    if not isinstance(rule.min_repeats, int) or rule.min_repeats < 2:
        raise ConfigError(f"{source}: [early_abort] min_repeats must be a whole number >= 2 (curves of repeated "
                          f"runs that measure the band)")
    return rule if enabled else None


PROVIDERS = ("openai", "anthropic", "local", "random", "tpe")


def _agents(value: dict | list, source: str) -> tuple[AgentSettings, ...]:
    """`[agent]` (one proposer) or `[[agent]]` tables (several in one study)."""
    tables = value if isinstance(value, list) else [value]
    if not tables or not all(isinstance(t, dict) for t in tables):
        raise ConfigError(f"{source}: [agent] must be a table, or [[agent]] one table per proposer")
    return tuple(_agent(table, source) for table in tables)


def _agent(table: dict, source: str) -> AgentSettings:
    settings = _settings(AgentSettings, table, "agent", source)
    if settings.provider not in ("", *PROVIDERS):
        raise ConfigError(f"{source}: [agent] provider must be one of {', '.join(PROVIDERS)}, not {settings.provider!r}")
    return settings


def _table(raw: dict, name: str, source: str) -> dict:
    table = raw.get(name)
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: missing [{name}] table")
    return table


def _seconds(table: dict, key: str, default: float, source: str) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ConfigError(f"{source}: [budget] {key} must be a number of seconds >= 0, not {value!r}")
    return float(value)


def _positive_number(table: dict, key: str, source: str) -> float:
    value = table.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigError(f"{source}: {key} must be a positive number, not {value!r}")
    return float(value)


def _string_list(table: dict, key: str, source: str, default: list[str]) -> list[str]:
    value = table.get(key, default)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f"{source}: [task] {key} must be a list of file names")
    return list(value)
