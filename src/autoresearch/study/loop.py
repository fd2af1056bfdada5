"""Loop: propose -> apply -> run -> judge -> keep or revert -> record, until stopped.

The model only proposes; the harness does everything else. State lives in git and the ledger,
so the loop resumes after a kill at any point: an experiment left running is closed as
interrupted (never run again), and a proposal made but not yet run is used, not asked for twice.

With pipelining on, the next proposal is written while the current experiment trains, against
the incumbent's files; if the current one is kept and the proposal no longer applies to the new
best, it is marked stale and a fresh one is asked for. With `top_k` > 1 the loop sometimes
proposes from another of the k best kept commits (a small tree, as in AIDE); it then proposes
synchronously, since the base of the next proposal is only chosen when it is needed.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from autoresearch.store import gitops
from autoresearch.propose.edits import Edit, EditError, Proposal, apply_to_texts
from autoresearch.study.experiment import (ExperimentResult, ledger_for, log_tail, recover_interrupted, run_experiment,
                                     workspace_lock)
from autoresearch.propose.proposers import Draft, Proposer, Request
from autoresearch.core.task import Task, load_task

MAX_FAILURE_BACKOFF_S = 60.0


@dataclass
class LoopOptions:
    max_experiments: int | None = None  # experiments run by this invocation (fix attempts included)
    hours: float | None = None
    pipeline: bool = True
    max_fix_attempts: int = 2
    stop_file: Path | None = None  # default: <workspace>/.autoresearch/stop
    top_k: int = 1  # >1: sometimes branch from one of the k best kept commits, not only the best (a small tree)
    explore: float = 0.3  # with top_k > 1: the share of proposals made from a commit other than the best
    seed: int | None = None  # of that choice
    failure_backoff_s: float = 5.0  # first wait after a proposal that could not run; doubles, capped at 60 s
    max_idle_proposals: int = 30  # stop after this many proposals in a row that could not run
    on_line: Callable[[str], None] | None = None  # training output, line by line
    on_result: Callable[[ExperimentResult], None] | None = None  # after each experiment (exports, ...)


@dataclass
class LoopSummary:
    experiments: list[ExperimentResult] = field(default_factory=list)
    proposals_failed: int = 0
    duplicates: int = 0
    stop_reason: str = ""


class _Background:
    """A proposal being written in a daemon thread (a hung model call never blocks exit)."""

    def __init__(self, fn: Callable[[], tuple[Draft, str]]):
        self.draft: tuple[Draft, str] | None = None
        self.error: BaseException | None = None
        self.started = time.monotonic()
        self.thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self.thread.start()

    def _run(self, fn) -> None:
        try:
            self.draft = fn()
        except BaseException as exc:  # handed to the loop's thread
            self.error = exc

    def result(self) -> tuple[Draft, str]:
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.draft


def run_loop(workspace: Path, proposer: Proposer, options: LoopOptions | None = None,
             on_event: Callable[[str], None] = print) -> LoopSummary:
    workspace = Path(workspace).resolve()
    options = options or LoopOptions()
    task = load_task(workspace)
    stop_file = options.stop_file or workspace / ".autoresearch" / "stop"
    summary = LoopSummary()
    started = time.monotonic()
    background: _Background | None = None
    idle = 0  # proposals in a row that could not run (failed, stale, duplicate)
    ledger = ledger_for(workspace)
    try:
        with workspace_lock(workspace):
            closed = recover_interrupted(workspace, ledger)
        if closed:
            on_event(f"closed {len(closed)} experiment(s) interrupted by the last stop: {closed}")
        branch = gitops.current_branch(workspace)
        tried = _tried_contents(workspace, ledger, branch, task)
        rng = random.Random(options.seed)
        _back_to_best(workspace, ledger, branch)  # a stop in the middle of an exploration left it elsewhere

        def stop_reason() -> str:
            if idle >= options.max_idle_proposals:
                return f"{idle} proposals in a row could not run (failed, stale or duplicate); see `autoresearch history`"
            return limit_reached(len(summary.experiments), "ran", options.max_experiments, options.hours, started,
                                 stop_file)

        def request(in_flight: list[str]) -> Request:
            """Made in this thread (SQLite connections stay in theirs), from the incumbent's files."""
            head = gitops.head(workspace)
            return Request(workspace, task, ledger.experiments(branch), _files_at(workspace, head, task), in_flight, head)

        def wait_after(message: str) -> None:
            """A proposal that could not run: wait longer each time, so a stuck model costs little."""
            nonlocal idle
            idle += 1
            pause = min(options.failure_backoff_s * 2 ** (idle - 1), MAX_FAILURE_BACKOFF_S)
            on_event(f"{message}; next proposal in {pause:g} s")
            time.sleep(pause)

        if ledger.incumbent(branch) is None:
            on_event("running the baseline (the code as it is)")
            result = run_experiment(workspace, "baseline", allow_empty=True, on_line=options.on_line, task=task)
            summary.experiments.append(result)
            on_event(result_line(result))
            if result.status != "keep":
                summary.stop_reason = f"the baseline crashed ({result.reason}); fix the task and run again"
                return summary
            tried.add(_content_key(_head_files(workspace, task)))

        while not (reason := stop_reason()):
            if background is not None:
                (draft, parent), background = background.result(), None
            else:
                _maybe_explore(workspace, ledger, branch, options, rng, on_event)
                parent = gitops.head(workspace)
                draft = _pending_draft(ledger, branch, parent) or proposer.propose(request([]))
            proposal_id = draft.ledger_id
            if proposal_id is None:
                proposal_id = ledger.add_proposal({**draft.record(), "kind": "propose", "branch": branch,
                                                   "parent": parent, "status": "pending" if draft.proposal else "failed"})
            if draft.proposal is None:
                summary.proposals_failed += 1
                wait_after(f"proposal failed ({draft.error})")
                continue
            current = _head_files(workspace, task)
            try:
                new_files = {**current, **apply_to_texts(current, draft.proposal.edits, task.editable)}
            except EditError as exc:
                ledger.set_proposal_status(proposal_id, "stale", f"no longer applies to the best: {exc}")
                on_event(f"proposal '{draft.proposal.description}' no longer applies to the new best ({exc})")
                if parent == gitops.head(workspace):  # not a pipelining race: count it
                    wait_after("it was written against the current best")
                continue
            key = _content_key(new_files)
            if new_files == current or key in tried:
                ledger.set_proposal_status(proposal_id, "duplicate", "this exact code was already run")
                summary.duplicates += 1
                wait_after(f"skipped a duplicate: '{draft.proposal.description}' gives code already run")
                continue
            idle = 0
            for path, text in new_files.items():
                (workspace / path).write_text(text)
            if options.pipeline and options.top_k <= 1:  # write the next proposal while this one trains
                next_request = request([draft.proposal.description])
                background = _Background(lambda: (proposer.propose(next_request), next_request.parent))
            on_event(f"experiment: {draft.proposal.description}")
            result = run_experiment(workspace, draft.proposal.description, on_line=options.on_line, task=task,
                                    proposal_id=proposal_id)
            tried.add(key)
            summary.experiments.append(result)
            on_event(result_line(result))
            if result.status == "crash":
                _fix_crash(workspace, task, ledger, branch, proposer, result, options, summary, tried, on_event)
            if options.top_k > 1:  # only an exploration leaves the branch away from the best
                _back_to_best(workspace, ledger, branch)
            if options.on_result is not None:
                options.on_result(result)
        summary.stop_reason = reason
        return summary
    except KeyboardInterrupt:
        return interrupted(workspace, ledger, summary)
    finally:
        ledger.close()


def limit_reached(count: int, verb: str, max_experiments: int | None, hours: float | None, started: float,
                  stop_file: Path) -> str:
    """The stops every loop shares: a number of experiments, hours, the stop file (removed once seen)."""
    if max_experiments is not None and count >= max_experiments:
        return f"{verb} {count} experiments (--max-experiments)"
    if hours is not None and time.monotonic() - started >= hours * 3600:
        return f"{hours:g} hours passed (--hours)"
    if stop_file.exists():
        stop_file.unlink()
        return f"stop file {stop_file} found (removed)"
    return ""


def interrupted(workspace: Path, ledger, summary: LoopSummary) -> LoopSummary:
    """Ctrl-C: close the experiments in flight as interrupted, so the record is whole."""
    summary.stop_reason = "interrupted (Ctrl-C)"
    with workspace_lock(workspace):
        recover_interrupted(workspace, ledger)
    return summary


def _fix_crash(workspace: Path, task: Task, ledger, branch: str, proposer: Proposer, crashed: ExperimentResult,
               options: LoopOptions, summary: LoopSummary, tried: set, on_event) -> None:
    """Give the log tail back to the proposer a bounded number of times."""
    for attempt in range(1, options.max_fix_attempts + 1):
        if options.max_experiments is not None and len(summary.experiments) >= options.max_experiments:
            return
        crashed_files = _files_at(workspace, crashed.commit, task)
        record = ledger.get(crashed.id)
        draft = proposer.fix(Request(workspace, task, ledger.experiments(branch), crashed_files), record,
                             log_tail(crashed.log_path, 60))
        if draft is None:
            return
        proposal_id = ledger.add_proposal({**draft.record(), "kind": "fix", "fix_of": crashed.id, "branch": branch,
                                           "parent": crashed.commit, "status": "pending" if draft.proposal else "failed"})
        if draft.proposal is None:
            on_event(f"fix attempt {attempt} failed: {draft.error}")
            continue
        try:
            fixed = {**crashed_files, **apply_to_texts(crashed_files, draft.proposal.edits, task.editable)}
        except EditError as exc:
            ledger.set_proposal_status(proposal_id, "failed", str(exc))
            continue
        for path, text in fixed.items():
            (workspace / path).write_text(text)
        description = f"{crashed.description} (fix {attempt}: {draft.proposal.description})"[:200]
        on_event(f"fix attempt {attempt}: {draft.proposal.description}")
        crashed = run_experiment(workspace, description, on_line=options.on_line, task=task, proposal_id=proposal_id)
        tried.add(_content_key(fixed))
        summary.experiments.append(crashed)
        on_event(result_line(crashed))
        if crashed.status != "crash":
            return


def _maybe_explore(workspace: Path, ledger, branch: str, options: LoopOptions, rng: random.Random, on_event) -> None:
    """With top_k > 1, sometimes move the branch to another of the k best kept commits to propose
    from there (AIDE-style tree search). The candidate is still judged against the best."""
    if options.top_k <= 1 or rng.random() >= options.explore:
        return
    kept = sorted((e for e in ledger.experiments(branch) if e.status == "keep" and e.metric is not None),
                  key=lambda e: e.metric)
    best = ledger.incumbent(branch)
    others = [e for e in kept[:options.top_k] if best is None or e.commit != best.commit]
    if others:
        choice = rng.choice(others)
        gitops.reset_branch(workspace, choice.commit)
        on_event(f"exploring from #{choice.id} ({choice.metric:.6f}: {choice.description})")


def _back_to_best(workspace: Path, ledger, branch: str) -> None:
    """Between experiments the branch stands on the best kept commit. Only a branch left on another
    kept commit (an exploration) is moved: a commit of the researcher's own is never dropped."""
    best = ledger.incumbent(branch)
    head = gitops.head(workspace)
    if best is None or not best.commit or head == best.commit:
        return
    if head in {e.commit for e in ledger.experiments(branch) if e.status == "keep"}:
        gitops.reset_branch(workspace, best.commit)


def _pending_draft(ledger, branch: str, head: str) -> Draft | None:
    """A proposal recorded but never run (the loop was stopped in between): use it, don't ask again."""
    for row in reversed(ledger.proposals(status="pending", branch=branch)):
        if row["kind"] != "propose":
            continue
        if row["parent"] != head:
            ledger.set_proposal_status(row["id"], "stale", "written against an older best")
            continue
        edits = [Edit(**e) for e in json.loads(row["edits_json"])]
        return Draft(Proposal(row["description"], row["reasoning"], edits), row["proposer"], model=row["model"],
                     ledger_id=row["id"])
    return None


def _files_at(workspace: Path, commit: str, task: Task) -> dict[str, str]:
    return {p: (gitops.file_at(workspace, commit, p) or b"").decode() for p in task.editable}


def _head_files(workspace: Path, task: Task) -> dict[str, str]:
    return _files_at(workspace, gitops.head(workspace), task)


def _content_key(files: dict[str, str]) -> str:
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(path.encode() + b"\0" + files[path].encode() + b"\0")
    return digest.hexdigest()


def _tried_contents(workspace: Path, ledger, branch: str, task: Task) -> set[str]:
    """Content keys of the editable files of every experiment already run on this branch."""
    keys = set()
    for exp in ledger.experiments(branch):
        if exp.commit:
            keys.add(_content_key(_files_at(workspace, exp.commit, task)))
    return keys


def result_line(result: ExperimentResult) -> str:
    value = f"{result.metric:.6f}" if result.metric is not None else "-"
    return f"experiment {result.id}: {result.status.upper()} {value} | {result.reason} | {result.wall_seconds:.1f} s"
