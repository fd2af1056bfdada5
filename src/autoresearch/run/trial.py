"""Trial: one run of a committed candidate, from a plain spec to a number the harness can trust.

1. train: the task's command in the training sandbox. It sees its checkout read-only, the
   training data but neither the validation nor the test split, and may write only its scratch
   and handoff dirs. The frozen loader tells the harness's clock what it serves (run/clock.py):
   the training time that counts is the harness's, never the run's own;
2. check: frozen files and git refs are as before (put back if not: the run failed), and the
   handed-off model has not changed since its handoff;
3. evaluate: with an `[evaluation]` command, the handed-off model is scored in a second sandbox
   that alone can read the validation data (and, for a verification, the held-out test split).
   Its number is the metric; what train.py printed is kept as information only. A model that
   looks ahead or cannot be read is invalid. Where the task allows it, the evaluation's process
   starts at the handoff and waits at a gate until this step (run/evaluation.py);
4. bind: the result carries its commit, the hashes of the frozen files and data, and the
   environment it ran in.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import re
import secrets
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from autoresearch.core.budget import BudgetReading, measure, past_any_allowance, wall_parts
from autoresearch.core.errors import one_line
from autoresearch.core.hashing import directory_sha256, file_sha256
from autoresearch.core.knobs import KnobError, flag_values
from autoresearch.core.summary import metric_value, pattern_failure, read_metrics
from autoresearch.core.task import Task
from autoresearch.run.clock import ClockChannel, Timeline
from autoresearch.run.evaluation import GATE, Evaluation, Evaluator, early_start_point, interpret
from autoresearch.run.process import (
    RUN_MARKER,
    Command,
    Limits,
    RunResult,
    clean_environment,
    record_processes,
    run_command,
)
from autoresearch.run.sandbox import Policy, Sandbox, find_sandbox, gpu_visible
from autoresearch.store import gitops
from autoresearch.store.workspace import RunPaths, Workspace

LOG_TAIL_LINES = 30
SEED = "AUTORESEARCH_SEED"  # the run's seed, the harness's: the frozen loader's data order and train.py's initialisation
SCORE_TEST = "AUTORESEARCH_SCORE_TEST"  # tells a verification's evaluation to score the test split too
# glibc hands every large tensor's memory back to the OS and faults it in again on the next batch:
# with these, training and evaluation keep it (the trusted evaluation of the cpu preset: 19.9 s ->
# 15.5 s of scoring, system time 7.6 s -> 0.6 s). Settings of the harness's own environment win.
ALLOCATOR = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(2**30), "MALLOC_TOP_PAD_": str(2**28)}


@dataclass(frozen=True)
class RunSpec:
    """One run of a committed candidate, as plain data."""
    checkout: Workspace  # where the command runs: a slot's worktree or a worker's clone, at `commit`
    task: Task
    commit: str
    paths: RunPaths  # where its log, handoff and scratch go
    env: dict[str, str] = field(default_factory=dict)  # what pins it to its device (a slot's share)
    hide: tuple[Path, ...] = ()  # more directories the run must not see (the main workspace: its state, its private files)
    shared: tuple[Path, ...] = ()  # paths outside the checkout it may read (data the repository prepared inside itself)
    guard_refs: bool = True  # compare git refs before and after; put back what the run changed
    coordinator_refs: tuple[str, ...] = ()  # ref prefixes a coordinator moves meanwhile: not the run's doing
    score_test: bool = False  # a verification: the evaluation also scores the held-out test split
    seed: int | None = None  # the harness's seed (AUTORESEARCH_SEED): data order and initialisation; None: the task's own


@dataclass
class TrialResult:
    run: RunResult  # the training process
    summary: dict  # what train.py printed, with the trusted metric in place of its own
    metric: float | None
    failure: str = ""  # why the run does not count; "" when it does
    invalid: bool = False  # the model was caught cheating or could not be read
    provenance: dict = field(default_factory=dict)
    wall_seconds: float = 0.0  # training, checks and evaluation together
    budget: BudgetReading | None = None  # the harness's own figures of the training it measured

    @classmethod
    def never_ran(cls, log_path: Path, reason: str) -> TrialResult:
        """A run that could not happen (a broken slot, a Ray task out of retries): a crash that says why."""
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "a") as log:
            log.write(f"[autoresearch] {reason}\n")
        run = RunResult(exit_code=None, wall_seconds=0.0, timed_out=False, log_path=log_path, log_truncated=False)
        return cls(run, {}, None, reason)


@dataclass(frozen=True)
class _Before:
    """What a run must leave as it found it."""
    frozen: dict[str, str]
    refs: dict[str, str] | None


def run_trial(spec: RunSpec, on_line=None, sandbox: Sandbox | None = None) -> TrialResult:
    """While it runs, the `pgid` file beside its log names its process group and marker (for a
    restart after a kill of the harness: `process.kill_recorded`)."""
    started = time.monotonic()
    sandbox = sandbox or find_sandbox(spec.task.sandbox.kind)
    marker = spec.env.get(RUN_MARKER) or secrets.token_hex(8)  # in every process of the run, to find them all
    try:
        # {seed}: the harness's seed for a command that takes one as a flag (a flag knob of that name wins)
        seed = {"seed": str(spec.seed)} if spec.seed is not None else {}
        argv = fill_flags(spec.task.command, {**seed, **_flag_values(spec)})
    except KnobError as exc:  # the candidate's knob file cannot give the command its flags
        return TrialResult.never_ran(spec.paths.log, str(exc))
    trusted = bool(spec.task.evaluation.command)
    evaluator = Evaluator(lambda: evaluation_command(spec, sandbox, marker), wait_bound=spec.task.budget.timeout,
                          start_at=early_start_point(spec.task, sandbox) if trusted else "")
    try:
        _fresh_dirs(spec)
        # in a sandbox the repository (.git) is read-only in the checkout: its refs cannot change
        guard_refs = spec.guard_refs and not sandbox.isolates
        before = _Before(frozen_hashes(spec.checkout, spec.task),
                         gitops.ref_snapshot(spec.checkout.root, spec.coordinator_refs) if guard_refs else None)
        evaluator.run_started()
        run, timeline = train(spec, sandbox, marker, argv, on_line, on_handoff=evaluator.handed_off)
        task = spec.task
        summary = read_metrics(spec.paths.log.read_text(errors="replace"), task.metric, task.metric_pattern,
                               task.extra_patterns)
        failure = (check(spec, before) or _handoff_changed(spec, timeline)
                   or _training_failure(run, summary, spec.task, trusted))
        reading = measure(timeline, spec.task.budget.startup_seconds)
        summary.update(reading.as_metrics())  # beside what the run says of itself (training_seconds)
        summary.update(wall_parts(timeline))
        if spec.seed is not None:
            summary["seed"] = spec.seed  # the harness's, recorded with the run
        metric, invalid = metric_value(summary, spec.task.metric), False
        if trusted:
            metric, failure, invalid = _trusted_metric(spec, sandbox, summary, failure, evaluator)
        if metric is not None:
            summary[spec.task.metric] = metric
        # the wall parts above, the checks and the evaluation together
        summary["wall_total_seconds"] = round(time.monotonic() - started, 2)
        provenance = bind(spec.commit, spec.checkout.data_dir(), before.frozen, sandbox)
    finally:
        evaluator.cancel()  # an early evaluation of a run that failed first: it exits having read nothing
        spec.paths.pgid.unlink(missing_ok=True)
        shutil.rmtree(spec.paths.scratch, ignore_errors=True)
    return TrialResult(run, summary, None if failure else metric, failure, invalid, provenance,
                       time.monotonic() - started, reading)


def _fresh_dirs(spec: RunSpec) -> None:
    """Scratch and handoff start empty for each run: nothing carries over but the compile cache."""
    for directory in (spec.paths.scratch, spec.paths.handoff):
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
    spec.checkout.cache_dir.mkdir(parents=True, exist_ok=True)
    spec.checkout.empty_file.write_bytes(b"")


def train(spec: RunSpec, sandbox: Sandbox, marker: str, argv: list[str], on_line=None,
          on_handoff=None) -> tuple[RunResult, Timeline]:
    """The task's command (`argv`, its flag knobs filled in) in the training sandbox, followed by
    the harness's clock (`on_handoff` is called from its thread when training hands off)."""
    ws, task, paths = spec.checkout, spec.task, spec.paths
    data = ws.data_dir()
    trusted = bool(task.evaluation.command)
    clock = ClockChannel(on_handed_off=lambda: directory_sha256(paths.handoff), on_handoff=on_handoff)
    env = clean_environment({**_allocator(), **spec.env, RUN_MARKER: marker, **_data_env(data), **clock.env(),
                             "AUTORESEARCH_HANDOFF": str(paths.handoff), "AUTORESEARCH_SCRATCH": str(paths.scratch),
                             **_seed_env(spec.seed), "TORCHINDUCTOR_CACHE_DIR": str(ws.cache_dir / "inductor"),
                             "TRITON_CACHE_DIR": str(ws.cache_dir / "triton")})
    private = _unseen(ws, [*task.evaluation.private, *task.evaluation.held_out])
    frozen = [ws.root / name for name in task.frozen]
    policy = Policy(workdir=ws.root, hidden=(*spec.hide, ws.state), readable=spec.shared,
                    bind_files={**_data_files(data, hide=("val", "test") if trusted else ("test",)), **private},
                    writable=(paths.scratch, paths.handoff, ws.cache_dir), network=task.sandbox.network,
                    workdir_writable=True, protected=tuple(p for p in (ws.root / ".git", *frozen) if p.exists()))
    budget = task.budget  # a run past anything its budget could allow is stopped there, not at its timeout
    over = lambda: past_any_allowance(clock.timeline, time.monotonic(), budget.kind, budget.value)  # noqa: E731
    command = Command(sandbox.wrap(argv, policy), ws.root, paths.log, budget.timeout, env=env, limits=_limits(task),
                      find_strays=not sandbox.isolates, pass_fds=(clock.child_fd,), stop_check=over)
    recorded = record_processes(paths.pgid, marker)

    def on_start(pgid: int) -> None:
        recorded(pgid)
        clock.started()

    try:
        run = run_command(command, on_line=on_line, on_start=on_start)
    finally:
        timeline = clock.finish()
    return run, timeline


def _handoff_changed(spec: RunSpec, timeline: Timeline) -> str:
    """A model written again after its handoff was trained on after the budget: it does not count."""
    if timeline.handoff_digest and directory_sha256(spec.paths.handoff) != timeline.handoff_digest:
        return "over budget: the handed-off model changed after its handoff (training went on)"
    return ""


def check(spec: RunSpec, before: _Before) -> str:
    """Frozen files and git refs as the run found them; what it changed is put back. Returns why it failed, or ""."""
    ws = spec.checkout
    frozen = frozen_hashes(ws, spec.task)
    tampered = [name for name, digest in frozen.items() if before.frozen.get(name) != digest]
    failure = ""
    if tampered:  # put the frozen files back before anything else runs
        gitops.git(ws.root, "checkout", spec.commit, "--", *tampered)
        failure = f"the run modified frozen file(s) {', '.join(tampered)} (restored)"
    if before.refs is not None:
        rewritten = gitops.restore_refs(ws.root, before.refs, spec.coordinator_refs)
        if rewritten:
            failure = f"the run changed git refs {', '.join(rewritten)} (restored)"
    return failure


def _trusted_metric(spec: RunSpec, sandbox: Sandbox, summary: dict, failure: str,
                    evaluator: Evaluator) -> tuple[float | None, str, bool]:
    """What train.py printed stays as `reported_<metric>`; the evaluation's number is the metric."""
    reported = summary.pop(spec.task.metric, None)
    if reported is not None:
        summary[f"reported_{spec.task.metric}"] = reported  # information only: never what decides
    if failure:
        return None, failure, False
    evaluation = evaluate(spec, sandbox, evaluator)
    summary.update({k: v for k, v in evaluation.scores.items() if k != spec.task.metric})
    return evaluation.metric, evaluation.failure, evaluation.invalid


def evaluation_command(spec: RunSpec, sandbox: Sandbox, marker: str) -> Command:
    """The trusted evaluation of the handed-off model, in a sandbox that alone sees the validation data."""
    ws, task, paths = spec.checkout, spec.task, spec.paths
    data = ws.data_dir()
    argv = [part.replace("{handoff}", str(paths.handoff)) for part in task.evaluation.command]
    held_out = {} if spec.score_test else _unseen(ws, task.evaluation.held_out)
    policy = Policy(workdir=ws.root, hidden=(*spec.hide, ws.state), readable=(paths.handoff, *spec.shared),
                    bind_files={**_data_files(data, hide=() if spec.score_test else ("test",)), **held_out})
    scoring = {SCORE_TEST: "1"} if spec.score_test else {}
    # RUN_MARKER: a restart of the harness finds it
    env = clean_environment({**_allocator(), RUN_MARKER: marker, **_data_env(data), **scoring})
    env.pop(GATE, None)  # only an early start opens a gate (run/evaluation.py)
    return Command(sandbox.wrap(argv, policy), ws.root, paths.eval_log, task.evaluation.timeout or task.budget.timeout,
                   env=env, limits=_limits(task), find_strays=not sandbox.isolates)


def evaluate(spec: RunSpec, sandbox: Sandbox, evaluator: Evaluator) -> Evaluation:
    run, added_seconds = evaluator.run()
    text = spec.paths.eval_log.read_text(errors="replace") if spec.paths.eval_log.exists() else ""
    with open(spec.paths.log, "a") as log:  # one log tells the whole story; the last summary block is the trusted one
        log.write(f"\n[autoresearch] trusted evaluation ({sandbox.name} sandbox):\n{text}")
    return interpret(run, text, spec.task, added_seconds)


def _training_failure(run: RunResult, summary: dict, task: Task, trusted: bool) -> str:
    if run.killed_for:
        return run.killed_for
    if run.timed_out:
        return f"timed out after {task.budget.timeout:g} s"
    if run.exit_code != 0:
        forbidden = _forbidden_write(log_tail(run.log_path, 40))
        if forbidden:
            return (f"the run may not write {forbidden}: a run writes in its own checkout, $AUTORESEARCH_SCRATCH "
                    "or its handoff dir (frozen files, .git and everything outside are read-only)")
        return f"exit code {run.exit_code}: {last_line(run.log_path)}"
    if not trusted and task.metric_pattern and metric_value(summary, task.metric) is None:
        return pattern_failure(run.log_path.read_text(errors="replace"), task.metric, task.metric_pattern)
    if not summary:
        return "exited without a summary block"
    if not trusted and metric_value(summary, task.metric) is None:
        return f"summary has no valid {task.metric} ({summary.get(task.metric, 'missing')})"
    return ""


_FORBIDDEN = re.compile(r"\[Errno (?:30|13)\] (?P<why>Read-only file system|Permission denied): '(?P<path>[^']+)'")


def _forbidden_write(tail: str) -> str:
    """The path a crashed run was refused writing (and why), if that is how it crashed."""
    found = list(_FORBIDDEN.finditer(tail))
    return f"{found[-1]['path']} ({found[-1]['why']})" if found else ""


def fill_flags(command: list[str], values: dict[str, str]) -> list[str]:
    """`{name}` in the command replaced by the flag knob's value in the checkout."""
    for name, value in values.items():
        command = [part.replace(f"{{{name}}}", value) for part in command]
    return command


def log_tail(log_path: Path, n_lines: int = LOG_TAIL_LINES) -> str:
    try:
        return "\n".join(log_path.read_text(errors="replace").splitlines()[-n_lines:])
    except OSError:
        return ""


def last_line(log_path: Path) -> str:
    return one_line(log_tail(log_path, 5), default="no output")


def _limits(task: Task) -> Limits:
    memory_gb = task.sandbox.memory_gb or 0.8 * _machine_memory_gb()
    return Limits(memory_bytes=int(memory_gb * 2**30), max_processes=task.sandbox.max_processes,
                  address_space=not gpu_visible())


def _machine_memory_gb() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return 0.0


def _allocator() -> dict[str, str]:
    return {name: value for name, value in ALLOCATOR.items() if name not in os.environ}


def _seed_env(seed: int | None) -> dict[str, str]:
    return {SEED: str(seed)} if seed is not None else {}


def _data_env(data: Path | None) -> dict[str, str]:
    return {"AUTORESEARCH_DATA_DIR": str(data)} if data else {}


def _unseen(ws: Workspace, names: list[str]) -> dict[Path, Path]:
    """Files a run must find empty: at their path in the checkout and, where that is a link (data the
    repository prepared inside itself), at the path it leads to as well."""
    unseen = {}
    for name in names:
        path = ws.root / name
        if path.exists():
            unseen[path] = unseen[path.resolve()] = ws.empty_file
    return unseen


def _data_files(data: Path | None, hide: tuple[str, ...]) -> dict[Path, Path]:
    """Prepared data files, placed at the workspace's data path, but for the splits named in `hide`
    (training sees neither validation nor test; the normal evaluation does not see test)."""
    if data is None:
        return {}
    real = data.resolve()
    return {data / item.name: item for item in sorted(real.iterdir()) if not (hide and item.name.startswith(hide))}


def frozen_hashes(ws: Workspace, task: Task) -> dict[str, str]:
    hashes = {}
    for name in task.frozen:
        path = ws.root / name
        hashes[name] = file_sha256(path) if path.is_file() else "missing"
    return hashes


def bind(commit: str, data: Path | None, frozen: dict[str, str], sandbox: Sandbox) -> dict:
    """What a result is bound to: the code, the frozen files, the data, the environment."""
    return {"commit": commit, "frozen": frozen, "data": data_hashes(data), "environment": environment(sandbox)}


def data_hashes(data: Path | None) -> dict[str, str]:
    """sha256 of every prepared data file. `autoresearch prepare` recorded those of the large files in
    meta.json; they are used while the file is no newer than that record, so no run re-reads gigabytes."""
    if data is None:
        return {}
    real = data.resolve()
    try:
        recorded = json.loads((real / "meta.json").read_text()).get("sha256", {})
        recorded_at = (real / "meta.json").stat().st_mtime_ns
    except (OSError, ValueError, AttributeError):
        recorded, recorded_at = {}, 0
    hashes = {}
    for item in sorted(real.iterdir()):
        if item.is_file():
            fresh = item.name in recorded and item.stat().st_mtime_ns <= recorded_at
            hashes[item.name] = recorded[item.name] if fresh else file_sha256(item)
    return hashes


def environment(sandbox: Sandbox) -> dict[str, str]:
    return {**_installed(), "sandbox": sandbox.name, "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES", ""),
            "executable": sys.executable}


@functools.cache
def _installed() -> dict[str, str]:
    """The interpreter, the machine and the packages' versions: the same for every run of this process."""
    from importlib import metadata  # a costly import, needed only here
    
    def version(package: str) -> str:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return ""
    return {"python": platform.python_version(), "platform": platform.platform(), "machine": platform.node(),
            "autoresearch": version("autoresearch"), "torch": version("torch"), "numpy": version("numpy")}


def _flag_values(spec: RunSpec) -> dict[str, str]:
    """The candidate's command-line flag knobs, as its checkout's knob file holds them."""
    if not any(not k.file for k in spec.task.knobs):
        return {}
    try:
        text = (spec.checkout.root / spec.task.knob_file).read_text()
    except OSError as exc:
        raise KnobError(f"{spec.task.knob_file} cannot be read ({exc})") from None
    return flag_values(text, spec.task)
