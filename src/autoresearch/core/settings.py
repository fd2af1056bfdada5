"""Settings: every table of `autoresearch.toml`, typed, with its ranges, and the JSON schema of the file.

pydantic validates them: it is made for this (types, ranges, enums, unknown keys, nested tables),
it is already installed with the model SDKs, and the same declarations give the JSON schema that
editors (Taplo / Even Better TOML) use to complete and check the file. Each table is a pydantic
*dataclass*: code builds and copies settings the way it always has (`Budget("seconds", 60, 180)`,
`dataclasses.replace`), and every construction is validated, not only the file's.

A wrong setting becomes one line that names the key and what is allowed (`config_problem`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)
from pydantic.dataclasses import dataclass

from autoresearch.core.abort import AbortRule
from autoresearch.core.knob_spec import spec_problem

TABLE = ConfigDict(extra="forbid")  # an unknown key is an error, never ignored
PROVIDERS = ("openai", "anthropic", "local", "random", "tpe")
HARNESS_PLACEHOLDERS = ("python", "seed")  # filled in by the harness: the interpreter, the run's seed
# untracked paths of a repository that are its runs' outputs, not data: never shown to a run
DEFAULT_OUTPUTS = ("out", "outputs", "checkpoints", "ckpt", "logs", "runs", "wandb", "lightning_logs", "mlruns",
                   "__pycache__", ".venv", "venv", ".ipynb_checkpoints")

def _number(value: object) -> object:
    """TOML writes 60 and 60.0 alike: both are numbers; text and true/false are not (pydantic's lax
    float would take "2.5" and True)."""
    if isinstance(value, (bool, str)):
        raise ValueError(f"must be a number, not {value!r}")
    return value


Number = Annotated[float, BeforeValidator(_number)]


def number(**bounds) -> type:
    """A Number within bounds (gt, ge, lt, le), written where the JSON schema shows them also inside
    an optional or a list (bounds after the validator would show as pydantic's own keywords)."""
    return Annotated[float, Field(**bounds), BeforeValidator(_number)]


def _inside(path: str) -> str:
    if Path(path).is_absolute() or ".." in Path(path).parts:
        raise ValueError(f"{path!r} must be a path inside the workspace")
    return path


WorkspacePath = Annotated[StrictStr, AfterValidator(_inside)]


def _regex_with_one_group(pattern: str) -> str:
    try:
        groups = re.compile(pattern).groups
    except re.error as exc:
        raise ValueError(f"{pattern!r} is not a regular expression ({exc})") from None
    if groups != 1:
        raise ValueError(f"{pattern!r} must have exactly one group around the number, e.g. 'val loss ([0-9.]+)' "
                         f"(it has {groups})")
    return pattern


MetricPattern = Annotated[StrictStr, AfterValidator(_regex_with_one_group)]


def _knob_spec(spec: str) -> str:
    problem = spec_problem(spec)
    if problem:
        raise ValueError(problem)
    return spec.strip()


KnobSpec = Annotated[StrictStr, AfterValidator(_knob_spec)]


@dataclass(frozen=True, config=TABLE)
class TaskSection:
    """[task]: what to run, what decides, which files the agent may change."""
    command: list[StrictStr] | StrictStr = Field(
        description='what trains, e.g. ["{python}", "train.py"]; {python}, {seed} and {knob} are filled in')
    name: StrictStr = "task"
    metric: StrictStr = Field("val_bpb", description="the number that decides, e.g. val_bpb or val_loss")
    direction: Literal["minimize", "maximize"] = "minimize"
    editable: list[WorkspacePath] = Field(default_factory=lambda: ["train.py"], description="files the agent may change")
    frozen: list[WorkspacePath] = Field(default_factory=list, description="files runs must leave as they are")
    program: StrictStr = Field("program.md", description="the researcher's instructions to the agent")
    preset: StrictStr = ""
    metric_pattern: MetricPattern | Literal[""] = Field(
        "", description="a regex with one group: the metric from the run's own output (the last match)")
    extra_patterns: dict[str, MetricPattern] = Field(default_factory=dict, description="more metrics, read the same way")
    knob_file: StrictStr = Field("knobs.toml", description="where command-line flag knobs keep their values")
    outputs: list[StrictStr] = Field(default_factory=lambda: list(DEFAULT_OUTPUTS),
                                     description="untracked paths that are outputs of runs: never linked into runs")

    @model_validator(mode="after")
    def _files_and_command(self):
        if isinstance(self.command, str):
            object.__setattr__(self, "command", self.command.split())
        if not self.command:
            raise ValueError('command must not be empty, e.g. ["{python}", "train.py"]')
        both = set(self.editable) & set(self.frozen)
        if both:
            raise ValueError(f"{', '.join(sorted(both))} cannot be both editable and frozen")
        return self


@dataclass(frozen=True, config=ConfigDict(extra="forbid", json_schema_extra={"required": ["value"]}))
class Budget:
    """[budget]: what one experiment may spend on training, by the harness's clock."""
    kind: Literal["seconds", "tokens", "flops"] = Field("seconds", description="what the budget counts")
    # required (a dataclass field after one with a default cannot say so itself: checked below)
    value: Number = Field(None, gt=0, description="how much of it one experiment may spend on training")
    timeout: number(gt=0) | None = Field(None, description=(
        "hard wall-clock limit in seconds: the whole process group is killed after it "
        "(default for seconds: 2 x value + 60; required otherwise)"))
    warmup_seconds: Number = Field(0.0, ge=0, description=(
        "warm-up a run may leave uncounted; 0 = twice the baseline's (at least 5 s)"))
    startup_seconds: Number = Field(10.0, ge=0, description=(
        "for a run without the frozen loader: wall time before training counts"))

    @model_validator(mode="after")
    def _timeout(self):
        if self.value is None:
            raise ValueError("value is required: how much one experiment may spend on training")
        timeout = self.timeout
        if timeout is None and self.kind != "seconds":
            raise ValueError(f"timeout (seconds) is required when the budget counts {self.kind}")
        if timeout is None:
            object.__setattr__(self, "timeout", 2 * self.value + 60)
        elif self.kind == "seconds" and timeout <= self.value:
            raise ValueError(f"timeout ({timeout:g} s) must exceed the budget ({self.value:g} s)")
        return self


@dataclass(frozen=True, config=TABLE)
class DataSpec:
    """[data]: the dataset of the llm template (prepare.py reads these; frozen with the file)."""
    dataset: StrictStr = Field("", description="shakespeare | climbmix | tinystories | a path; '' = ships with the template")
    vocab_size: StrictInt = Field(0, ge=0)
    seq_len: StrictInt = Field(0, ge=0)
    eval_tokens: StrictInt = Field(0, ge=0, description="0 = every validation token")


@dataclass(frozen=True, config=TABLE)
class AgentSettings:
    """[agent] (or one [[agent]] per proposer): who proposes. No model: the random proposer over the knobs."""
    provider: Literal["", "openai", "anthropic", "local", "random", "tpe"] = Field(
        "", description="'' = openai if a model or base_url is named, else random")
    model: StrictStr = ""
    base_url: StrictStr = Field("", description="an OpenAI-compatible server: vLLM, Ollama, llama.cpp, OpenRouter")
    api_key_env: StrictStr = Field("", description="default: OPENAI_API_KEY or ANTHROPIC_API_KEY")
    temperature: Number = Field(0.7, ge=0, le=2)
    thinking_tokens: StrictInt = Field(0, ge=0, description=(
        "Anthropic models that think: a budget of thinking tokens per answer (0: no thinking; "
        "at least 1024 when on, and the answer's max_tokens grows by it)"))
    context_tokens: StrictInt = Field(24000, ge=1000, description="how much of the model's context a request may fill")
    max_edit_retries: StrictInt = Field(2, ge=0, description="times an edit that does not apply goes back to the model")
    max_fix_attempts: StrictInt = Field(2, ge=0, description="times a crash of this proposer's goes back to it")
    seed: StrictInt | None = None
    # USD per million tokens, for a model whose price genai-prices does not know (a local server: 0)
    input_usd_per_mtok: number(ge=0) | None = None
    output_usd_per_mtok: number(ge=0) | None = None

    @model_validator(mode="after")
    def _thinking_budget(self):
        if 0 < self.thinking_tokens < 1024:
            raise ValueError(f"thinking_tokens must be 0 (off) or at least 1024 (Anthropic's minimum), "
                             f"not {self.thinking_tokens}")
        return self

    @model_validator(mode="after")
    def _both_prices_or_neither(self):
        if (self.input_usd_per_mtok is None) != (self.output_usd_per_mtok is None):
            raise ValueError("input_usd_per_mtok and output_usd_per_mtok go together: give both (USD per "
                             "million tokens; 0 and 0 for your own server) or neither (genai-prices' price)")
        return self


@dataclass(frozen=True, config=TABLE)
class JudgeSettings:
    """[judge]: when a candidate counts as better. See judge.py."""
    rule: Literal["noise", "strict"] = Field("noise", description="strict: the original, strictly better after one run")
    baseline_runs: StrictInt = Field(3, ge=1, description="runs of the baseline, on different seeds, to measure the noise")
    z: Number = Field(2.5, gt=0, description="a kept gain beats z standard deviations of the difference")
    min_delta: Number = Field(0.0, ge=0, description="and at least this much, in metric units")
    max_reruns: StrictInt = Field(2, ge=0, description="extra runs of a candidate in the grey zone")
    grey_zone: Number = Field(1.0, ge=0, description="an apparent gain of at least this many sd (under z) runs again")
    max_memory_gb: Number = Field(0.0, ge=0, description="0 = no cap")
    never_keep_seed_only: StrictBool = Field(True, description="changes to seeds or comments alone are never kept")
    prefer_simpler: StrictBool = Field(True, description="as good within noise and shorter code is kept")


@dataclass(frozen=True, config=TABLE)
class EvaluationSettings:
    """[evaluation]: the trusted evaluation. With a command, the training run hands its model off (to
    $AUTORESEARCH_HANDOFF) and the metric is what this command prints, in a separate sandbox that alone
    may read the validation data. Without one, the metric is the one the run prints of itself."""
    command: list[StrictStr] = Field(default_factory=list, description="{python} and {handoff} are filled in")
    timeout: Number = Field(0.0, ge=0, description="seconds; 0 = the budget's timeout")
    private: list[WorkspacePath] = Field(default_factory=list, description="files only the evaluation may read")
    held_out: list[WorkspacePath] = Field(default_factory=list,
                                          description="the test split: only a verification's evaluation reads it")
    early_start: StrictBool | Literal["run"] = Field(False, description=(
        "start the command with the run ('run') or at the handoff (true); false: after the run"))

    @model_validator(mode="after")
    def _handoff_named(self):
        if self.command and not any("{handoff}" in part for part in self.command):
            raise ValueError("command must name the handed-off model as {handoff}")
        return self


@dataclass(frozen=True, config=TABLE)
class SandboxSettings:
    """[sandbox]: isolation and limits of every run (see sandbox.py)."""
    kind: Literal["auto", "bwrap", "none"] = Field("auto", description="auto: bubblewrap when installed")
    memory_gb: Number = Field(0.0, ge=0, description="resident memory of a run's processes; 0 = 80 % of this machine's")
    max_processes: StrictInt = Field(512, ge=0)
    network: StrictBool = False


@dataclass(frozen=True, config=TABLE)
class EarlyAbortSettings:
    """[early_abort]: stop a candidate whose training curve cannot catch the best's (see abort.py)."""
    enabled: StrictBool = Field(True, description="on by default: benchmarks/RESULTS.md, 2026-12-02")
    checkpoints: list[number(gt=0, lt=1)] = Field(
        default_factory=lambda: list(AbortRule.checkpoints), min_length=1, description="shares of the budget at which to look")
    band_sd: Number = Field(AbortRule.band_sd, gt=0, description="trailing by more than this many spreads of repeated curves")
    headroom: Number = Field(AbortRule.headroom, ge=0, description="times what the best itself still gains by the end")
    window: Number = Field(AbortRule.window, gt=0, description="not closing the gap over this share of the budget")
    min_repeats: StrictInt = Field(AbortRule.min_repeats, ge=2, description="repeated curves needed to know the band")

    @model_validator(mode="after")
    def _window_before_first_look(self):
        if self.window >= min(self.checkpoints):
            raise ValueError(f"window ({self.window:g}) must be under the first checkpoint ({min(self.checkpoints):g})")
        return self


@dataclass(frozen=True, config=TABLE)
class KnobTable:
    """A knob assigned in an editable file rather than passed as a flag."""
    range: KnobSpec = Field(description="int A..B | float A..B [log] | int A..B pow2 | choice X|Y")
    file: StrictStr = ""


@dataclass(frozen=True, config=TABLE)
class StudySettings:
    """[study]: how `autoresearch run` goes on and when it stops (its flags override these)."""
    max_experiments: Annotated[StrictInt, Field(ge=1)] | None = Field(None, description="started by one `run`; one slot: the baseline counts")
    hours: number(gt=0) | None = None
    max_cost_usd: number(ge=0) | None = Field(None, description="model spend of one `run`")
    pipeline: StrictBool = Field(True, description="write the next proposal while the slots are busy")
    top_k: StrictInt = Field(1, ge=1, description=">1: sometimes propose from one of the k best kept commits")
    explore: Number = Field(0.3, ge=0, le=1, description="with top_k > 1: the share of proposals made from another")
    seed: StrictInt | None = Field(None, description="of those choices and of the bandit")
    failure_backoff_s: Number = Field(5.0, ge=0, description="first wait after a failed proposal; doubles, capped at 60 s")
    max_idle_proposals: StrictInt = Field(30, ge=1, description="stop after this many proposals in a row that could not run")
    stagnation_after: StrictInt = Field(8, ge=1, description="experiments without a keep before a structural change is asked")
    poll_s: Number = Field(0.5, gt=0, description="longest wait for a result before the stop rules are looked at again")


class ConfigFile(BaseModel):
    """autoresearch.toml: one table per concern."""
    model_config = ConfigDict(extra="forbid", title="autoresearch.toml")
    task: TaskSection
    budget: Budget
    data: DataSpec = Field(default_factory=DataSpec)
    agent: AgentSettings | list[AgentSettings] = Field(
        default_factory=AgentSettings, description="[agent], or one [[agent]] table per proposer")
    judge: JudgeSettings = Field(default_factory=JudgeSettings)
    evaluation: EvaluationSettings = Field(default_factory=EvaluationSettings)
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)
    early_abort: EarlyAbortSettings = Field(default_factory=EarlyAbortSettings)
    knobs: dict[str, KnobSpec | KnobTable] = Field(
        default_factory=dict, description="name = 'float A..B log' (a command-line flag) or {range, file}")
    study: StudySettings = Field(default_factory=StudySettings)

    @model_validator(mode="after")
    def _knobs_fit_the_task(self):
        task = self.task
        for name, knob in self.knobs.items():
            home = knob.file if isinstance(knob, KnobTable) and knob.file else task.knob_file
            if home not in task.editable:
                raise ValueError(f"[knobs] {name} lives in {home}, which is not in [task] editable: add it there")
            if not isinstance(knob, KnobTable) or not knob.file:
                if not any(f"{{{name}}}" in part for part in task.command):
                    raise ValueError(f"[knobs] {name} is a command-line flag but the command never uses {{{name}}}: "
                                     f"add e.g. \"--{name}={{{name}}}\" to [task] command, or give it a file")
        flags = {n for n, k in self.knobs.items() if not isinstance(k, KnobTable) or not k.file}
        for part in task.command:
            for used in re.findall(r"\{(\w+)\}", part):
                if used not in HARNESS_PLACEHOLDERS and used not in flags:
                    raise ValueError(f"[task] command uses {{{used}}} but [knobs] declares no flag {used}")
        return self

    @property
    def agents(self) -> tuple[AgentSettings, ...]:
        return tuple(self.agent) if isinstance(self.agent, list) else (self.agent,)


def json_schema() -> dict:
    """The JSON schema of autoresearch.toml (`autoresearch schema`): what editors complete and check."""
    schema = ConfigFile.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"  # no $id: Taplo refuses a relative one
    return schema


# -- one line per problem ---------------------------------------------------------------------------
_KINDS = {"float": "a number", "int": "a whole number", "bool": "true or false", "string": "text",
          "list": "a list", "dict": "a table", "dataclass": "a table", "model": "a table", "literal": "one of"}
_BOUNDS = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}
_WRONG_SHAPE = ("list_type", "dataclass_type", "dataclass_exact_type", "model_type", "dict_type")


def config_problem(exc: ValidationError, name=None) -> str:
    """The first problem of a validation, as one line naming the key and what is allowed. `name`: how
    to call the key instead of "[table] key" (a command-line flag)."""
    errors = exc.errors()
    fitting = [e for e in errors if e["type"] not in _WRONG_SHAPE] or errors  # the branch of a union that fits
    error = max(fitting, key=lambda e: len(e["loc"]))  # the most precise; the first of equals
    where = name(error["loc"]) if name else _where(error["loc"])
    kind, ctx, given = error["type"], error.get("ctx") or {}, error.get("input")
    if kind in ("unexpected_keyword_argument", "extra_forbidden"):
        what = "table" if len(error["loc"]) == 1 else "setting"
        return f"{where}: unknown {what}; known: {', '.join(_known(error['loc']))}"
    if kind in ("missing", "missing_argument"):
        return f"{where} is missing (required)"
    if kind == "value_error":
        return f"{where}: {str(ctx.get('error', error['msg']))}"
    if kind == "literal_error":
        return f"{where} must be one of {ctx['expected']}, not {given!r}"
    if kind in _BOUNDS:
        bound = next(iter(ctx.values()))
        return f"{where} must be {_BOUNDS[kind]} {bound:g}, not {given!r}"
    if kind in ("too_short", "too_long"):
        return f"{where}: {error['msg'].replace('Value', 'the list').replace('List', 'the list')}"
    prefix = kind.split("_")[0]
    if prefix in _KINDS:
        return f"{where} must be {_KINDS[prefix]}, not {given!r}"
    return f"{where}: {error['msg']}"


_UNION_TAG = re.compile(r"^[A-Z]\w*$|^list\[|^function-|^str$|^int$|^float$|^bool$|^literal\[|^constrained-")


def _where(loc: tuple) -> str:
    """('judge', 'z') -> "[judge] z"; ('agent', 1, 'temperature') -> "[[agent]] 2: temperature"."""
    parts = [p for p in loc if not (isinstance(p, str) and _UNION_TAG.match(p))]
    if not parts:
        return "autoresearch.toml"
    section, rest = parts[0], parts[1:]
    if rest and isinstance(rest[0], int) and section == "agent":
        head, rest = f"[[agent]] {rest[0] + 1}", rest[1:]
    else:
        head = f"[{section}]"
    key = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in rest).replace(".[", "[")
    return f"{head} {key}".strip()


def _known(loc: tuple) -> list[str]:
    """The keys allowed where an unknown one was found."""
    parts = [p for p in loc if not isinstance(p, int) and not (isinstance(p, str) and _UNION_TAG.match(p))]
    table = (KnobTable if parts[0] == "knobs" else SECTIONS.get(parts[0])) if len(parts) > 1 else ConfigFile
    names = getattr(table, "__dataclass_fields__", None) or getattr(table, "model_fields", {})
    return sorted(names)


SECTIONS = {"task": TaskSection, "budget": Budget, "data": DataSpec, "agent": AgentSettings, "judge": JudgeSettings,
            "evaluation": EvaluationSettings, "sandbox": SandboxSettings, "early_abort": EarlyAbortSettings,
            "study": StudySettings}
