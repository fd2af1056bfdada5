"""Trial: one run of a committed candidate, from start to a number the harness can trust.

1. train: the task's command in the training sandbox. It sees the workspace read-only, the
   training data but not the validation split, and may write only its scratch and handoff dirs;
2. check: frozen files and git refs are as before (put back if not: the run failed);
3. evaluate: with an `[evaluation]` command, the handed-off model is scored in a second sandbox
   that alone can read the validation data. Its number is the metric; what train.py printed is
   kept as information only. A model that looks ahead or cannot be read is invalid;
4. bind: the result carries its commit, the hashes of the frozen files and data, and the
   environment it ran in.
"""

from __future__ import annotations

import json
import os
import platform
import secrets
import shutil
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from autoresearch.store import gitops
from autoresearch.core.hashing import file_sha256
from autoresearch.run.process import RUN_MARKER, Limits, RunResult, clean_environment, record_processes, run_command
from autoresearch.run.sandbox import Policy, Sandbox, find_sandbox, gpu_visible
from autoresearch.core.summary import metric_value, parse_summary
from autoresearch.core.task import Task

STATE_DIR = ".autoresearch"
LOG_TAIL_LINES = 30
INVALID_EXIT = 3  # an evaluation's way to say "this model cannot be scored honestly"


@dataclass
class TrialResult:
    run: RunResult  # the training process
    summary: dict  # what train.py printed, with the trusted metric in place of its own
    metric: float | None
    failure: str = ""  # why the run does not count; "" when it does
    invalid: bool = False  # the model was caught cheating or could not be read
    provenance: dict = field(default_factory=dict)
    wall_seconds: float = 0.0  # training, checks and evaluation together


def run_trial(workspace: Path, task: Task, commit: str, log_path: Path, on_line=None,
              sandbox: Sandbox | None = None, extra_env: dict[str, str] | None = None,
              guard_refs: bool = True, hide: tuple[Path, ...] = ()) -> TrialResult:
    """While it runs, `pgid` beside the log names its process group and marker (for a restart after
    a kill: `runner.kill_recorded`). `guard_refs`: compare and restore git refs around the run. Off
    in a slot's worktree, where the coordinator moves refs while the run goes on (and checks the
    branch itself). `hide`: more directories the run must not see (the main workspace's state, for a
    slot inside it)."""
    pgid_file = log_path.parent / "pgid"
    try:
        return _run_trial(workspace, task, commit, log_path, on_line, sandbox, extra_env, guard_refs, hide, pgid_file)
    finally:
        pgid_file.unlink(missing_ok=True)


def _run_trial(workspace, task, commit, log_path, on_line, sandbox, extra_env, guard_refs, hide, pgid_file):
    started = time.monotonic()
    sandbox = sandbox or find_sandbox(task.sandbox.kind)
    state = workspace / STATE_DIR
    stem = log_path.stem
    scratch, handoff = log_path.with_name(f"{stem}.scratch"), log_path.with_name(f"{stem}.handoff")
    for directory in (scratch, handoff):  # fresh for each run: nothing carries over but the compile cache
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
    (state / "cache").mkdir(parents=True, exist_ok=True)
    trusted = bool(task.evaluation.command)
    data = data_dir(workspace)
    frozen_before = frozen_hashes(workspace, task)
    refs_before = gitops.ref_snapshot(workspace) if guard_refs else None
    limits = _limits(task)

    env = clean_environment({RUN_MARKER: secrets.token_hex(8), **(extra_env or {}), **_data_env(data),
                             "AUTORESEARCH_HANDOFF": str(handoff), "AUTORESEARCH_SCRATCH": str(scratch),
                             "TORCHINDUCTOR_CACHE_DIR": str(state / "cache" / "inductor"),
                             "TRITON_CACHE_DIR": str(state / "cache" / "triton")})
    empty = state / "empty"  # what private files look like to training (a device node would not open)
    empty.write_bytes(b"")
    private = {workspace / name: empty for name in task.evaluation.private if (workspace / name).exists()}
    training = Policy(workdir=workspace, hidden=(*hide, state),
                      bind_files={**_data_files(data, hide_val=trusted), **private},
                      writable=(scratch, handoff, state / "cache"), network=task.sandbox.network)
    run = run_command(sandbox.wrap(task.command, training), workspace, log_path, task.budget.timeout,
                      env=env, on_line=on_line, on_start=record_processes(pgid_file, env[RUN_MARKER]), limits=limits)
    summary = parse_summary(log_path.read_text(errors="replace"))
    failure = _training_failure(run, summary, task, trusted)

    frozen = frozen_hashes(workspace, task)
    tampered = [name for name, digest in frozen.items() if frozen_before.get(name) != digest]
    if tampered:  # put the frozen files back before anything else runs
        gitops.git(workspace, "checkout", commit, "--", *tampered)
        frozen.update({name: frozen_before[name] for name in tampered})
        failure = f"the run modified frozen file(s) {', '.join(tampered)} (restored)"
    rewritten = gitops.restore_refs(workspace, refs_before) if refs_before is not None else []
    if rewritten:
        failure = f"the run changed git refs {', '.join(rewritten)} (restored)"

    metric, invalid = metric_value(summary, task.metric), False
    if trusted:
        reported = summary.pop(task.metric, None)
        if reported is not None:
            summary[f"reported_{task.metric}"] = reported  # information only: never what decides
        metric = None
        if not failure:
            marker = {RUN_MARKER: env[RUN_MARKER]}  # a restart finds the evaluation too
            metric, failure, invalid, scores = _evaluate(workspace, task, sandbox, handoff, data, log_path, limits, marker,
                                                         hide)
            summary.update({k: v for k, v in scores.items() if k != task.metric})
    if metric is not None:
        summary[task.metric] = metric
    shutil.rmtree(scratch, ignore_errors=True)
    provenance = bind(commit, data, frozen, sandbox)
    return TrialResult(run, summary, None if failure else metric, failure, invalid, provenance,
                       time.monotonic() - started)


def _evaluate(workspace: Path, task: Task, sandbox: Sandbox, handoff: Path, data: Path | None, log_path: Path,
              limits: Limits, marker: dict[str, str], hide: tuple[Path, ...]):
    """Run the trusted evaluation; returns (metric, failure, invalid, its summary)."""
    eval_log = log_path.with_name(log_path.stem.replace("run", "eval") + ".log")
    command = [part.replace("{handoff}", str(handoff)) for part in task.evaluation.command]
    policy = Policy(workdir=workspace, hidden=(*hide, workspace / STATE_DIR), readable=(handoff,),
                    bind_files=_data_files(data, hide_val=False))
    env = clean_environment({**marker, **_data_env(data)})
    run = run_command(sandbox.wrap(command, policy), workspace, eval_log, task.evaluation.timeout or task.budget.timeout,
                      env=env, limits=limits)
    text = eval_log.read_text(errors="replace")
    with open(log_path, "a") as log:  # one log tells the whole story; the last summary block is the trusted one
        log.write(f"\n[autoresearch] trusted evaluation ({sandbox.name} sandbox):\n{text}")
    scores = parse_summary(text)
    invalid_lines = [line for line in text.splitlines() if line.startswith("invalid: ")]
    if run.exit_code == INVALID_EXIT and invalid_lines:
        return None, invalid_lines[-1], True, {}
    if run.timed_out or run.exit_code != 0:
        why = run.killed_for or ("timed out" if run.timed_out else f"exit code {run.exit_code}")
        last = next((line for line in reversed(text.splitlines()) if line.strip()), "no output")
        return None, f"the evaluation failed ({why}): {last[:200]}", False, {}
    metric = metric_value(scores, task.metric)
    if metric is None:
        return None, f"the evaluation printed no valid {task.metric}", False, {}
    return metric, "", False, scores


def _training_failure(run: RunResult, summary: dict, task: Task, trusted: bool) -> str:
    if run.killed_for:
        return run.killed_for
    if run.timed_out:
        return f"timed out after {task.budget.timeout:g} s"
    if run.exit_code != 0:
        return f"exit code {run.exit_code}: {last_line(run.log_path)}"
    if not summary:
        return "exited without a summary block"
    if not trusted and metric_value(summary, task.metric) is None:
        return f"summary has no valid {task.metric} ({summary.get(task.metric, 'missing')})"
    return ""


def log_tail(log_path: Path, n_lines: int = LOG_TAIL_LINES) -> str:
    try:
        return "\n".join(log_path.read_text(errors="replace").splitlines()[-n_lines:])
    except OSError:
        return ""


def last_line(log_path: Path) -> str:
    lines = [line for line in log_tail(log_path, 5).splitlines() if line.strip()]
    return lines[-1][:200] if lines else "no output"


def _limits(task: Task) -> Limits:
    memory_gb = task.sandbox.memory_gb or 0.8 * _machine_memory_gb()
    return Limits(memory_bytes=int(memory_gb * 2**30), max_processes=task.sandbox.max_processes,
                  address_space=not gpu_visible())


def _machine_memory_gb() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return 0.0


def data_dir(workspace: Path) -> Path | None:
    data = workspace / STATE_DIR / "data"
    return data if data.exists() else None


def _data_env(data: Path | None) -> dict[str, str]:
    return {"AUTORESEARCH_DATA_DIR": str(data)} if data else {}


def _data_files(data: Path | None, hide_val: bool) -> dict[Path, Path]:
    """Prepared data files, placed at the workspace's data path; the validation split left out
    of the training sandbox when an evaluation scores it."""
    if data is None:
        return {}
    real = data.resolve()
    return {data / item.name: item for item in sorted(real.iterdir())
            if not (hide_val and item.name.startswith("val"))}


def frozen_hashes(workspace: Path, task: Task) -> dict[str, str]:
    hashes = {}
    for name in task.frozen:
        path = workspace / name
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
    def version(package: str) -> str:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return ""
    return {"python": platform.python_version(), "platform": platform.platform(), "machine": platform.node(),
            "autoresearch": version("autoresearch"), "torch": version("torch"), "numpy": version("numpy"),
            "sandbox": sandbox.name, "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES", ""),
            "executable": sys.executable}
