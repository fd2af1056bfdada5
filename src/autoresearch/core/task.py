"""Task: what to run and how to score it, read from a workspace's `autoresearch.toml`.

The harness knows nothing about GPTs: a task is a command, a metric with a direction, a
budget, a hard timeout, and which files the agent may edit or must leave alone. The file's
tables and their rules are typed in settings.py; this is the task they make.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from autoresearch.core.abort import AbortRule
from autoresearch.core.errors import UserError
from autoresearch.core.settings import (
    DEFAULT_OUTPUTS,
    AgentSettings,
    Budget,
    ConfigFile,
    DataSpec,
    EarlyAbortSettings,
    EvaluationSettings,
    JudgeSettings,
    KnobTable,
    SandboxSettings,
    StudySettings,
    config_problem,
)

CONFIG_NAME = "autoresearch.toml"


class ConfigError(UserError, ValueError):
    """A bad or missing `autoresearch.toml`; the message is one line that says what to fix."""


@dataclass(frozen=True)
class KnobDecl:
    """[knobs]: a hyperparameter declared in autoresearch.toml instead of a `# knob:` comment.
    Without `file` it is a command-line flag: its value lives in the knob file, and `{name}` in the
    command is replaced by it; with `file` it is a constant assigned in that (editable) file."""
    name: str
    spec: str  # int A..B | float A..B [log] | choice X|Y
    file: str = ""


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
    study: StudySettings = field(default_factory=StudySettings)  # [study]: how `run` goes on and stops
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
    """The task of a parsed autoresearch.toml; a wrong setting is one line naming the key."""
    try:
        config = ConfigFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {config_problem(exc)}") from None
    task = config.task
    patterns = {"": task.metric_pattern, **task.extra_patterns}
    return Task(
        name=task.name, command=list(task.command), metric=task.metric, direction=task.direction,
        budget=config.budget, editable=list(task.editable), frozen=list(task.frozen), program=task.program,
        preset=task.preset, data=config.data, agents=config.agents, judge=config.judge,
        evaluation=config.evaluation, sandbox=config.sandbox, early_abort=_abort_rule(config.early_abort),
        metric_pattern=patterns.pop(""), extra_patterns=patterns, knobs=_knob_decls(config),
        knob_file=task.knob_file, outputs=tuple(task.outputs), study=config.study)


def _abort_rule(settings: EarlyAbortSettings) -> AbortRule | None:
    if not settings.enabled:
        return None
    return AbortRule(tuple(sorted(float(p) for p in settings.checkpoints)), settings.band_sd, settings.headroom,
                     settings.window, settings.min_repeats)


def _knob_decls(config: ConfigFile) -> tuple[KnobDecl, ...]:
    return tuple(KnobDecl(name, knob.range, knob.file) if isinstance(knob, KnobTable) else KnobDecl(name, knob)
                 for name, knob in config.knobs.items())
