"""Parallel loop: several candidates in flight on an executor's slots, one coordinator.

The coordinator alone writes the ledger and moves the research branch. It keeps every slot busy
with a candidate made from the current best (a commit on top of it; the branch does not move),
and as results come back in any order it judges each one against its own parent:

- not better, or crashed: recorded, nothing moves;
- better and its parent is still the best: kept, the branch moves to it;
- better, but the best moved on while it ran (another candidate was kept): its gain was measured
  on an older parent, so it is recorded as not kept and its edit is replayed on the newest best as
  a new experiment, which is kept only if it confirms the gain there.

Ideas in flight are shown to the proposer so it does not propose them twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from autoresearch.store import gitops
from autoresearch.propose.edits import EditError, Proposal, apply_to_texts
from autoresearch.execute.local import Executor, Job
from autoresearch.study.experiment import (Candidate, ExperimentResult, close, ledger_for, recover_interrupted, register,
                                     run_experiment, weigh, workspace_lock)
from autoresearch.core.judge import Decision
from autoresearch.study.loop import (LoopSummary, _content_key, _files_at, _tried_contents, interrupted, limit_reached,
                               result_line)
from autoresearch.propose.proposers import Proposer, Request
from autoresearch.core.task import load_task


@dataclass
class ParallelOptions:
    max_experiments: int | None = None  # experiments started by this invocation (replays included)
    hours: float | None = None
    stop_file: Path | None = None
    max_idle_proposals: int = 30  # stop after this many proposals in a row that could not run
    on_result: Callable[[ExperimentResult], None] | None = None
    poll_s: float = 0.5


@dataclass
class InFlight:
    candidate: Candidate
    proposal: Proposal | None  # its edits, to replay them on a newer best
    replay_of: int | None = None


def run_parallel(workspace: Path, proposer: Proposer, executor: Executor, options: ParallelOptions | None = None,
                 on_event: Callable[[str], None] = print) -> LoopSummary:
    workspace = Path(workspace).resolve()
    options = options or ParallelOptions()
    task = load_task(workspace)
    stop_file = options.stop_file or workspace / ".autoresearch" / "stop"
    summary, started, idle, stopping = LoopSummary(), time.monotonic(), 0, ""
    ledger = ledger_for(workspace)
    branch = gitops.current_branch(workspace)
    try:
        with workspace_lock(workspace):
            closed = recover_interrupted(workspace, ledger)
        if closed:
            on_event(f"closed {len(closed)} experiment(s) interrupted by the last stop: {closed}")
        if ledger.incumbent(branch) is None:  # the baseline (and the noise) first, on its own
            on_event("running the baseline (the code as it is)")
            result = run_experiment(workspace, "baseline", allow_empty=True, task=task)
            summary.experiments.append(result)
            on_event(result_line(result))
            if result.status != "keep":
                summary.stop_reason = f"the baseline crashed ({result.reason}); fix the task and run again"
                return summary
        tried = _tried_contents(workspace, ledger, branch, task)
        flying: dict[int, InFlight] = {}
        n_started = 0

        def exhausted() -> str:  # no new ideas; replays of pending gains still run
            return f"{idle} proposals in a row could not run (failed or duplicate)" if idle >= options.max_idle_proposals else ""

        def stop_reason() -> str:
            return limit_reached(n_started, "started", options.max_experiments, options.hours, started, stop_file)

        def launch(incumbent, files: dict[str, str], description: str, proposal: Proposal | None,
                   proposal_id: int | None, replay_of: int | None = None) -> None:
            """Commit `files` on top of the best (`incumbent`, the experiment the candidate is judged against)."""
            nonlocal n_started
            parent = incumbent.commit
            exp_id = ledger.start(branch, parent, description, proposal_id)
            commit = gitops.commit_files(workspace, parent, files, description)
            candidate = register(workspace, ledger, exp_id, commit, parent, description, incumbent)
            flying[exp_id] = InFlight(candidate, proposal, replay_of)
            tried.add(_content_key(files))
            executor.submit(Job(exp_id, 1, commit, candidate.next_log_path()))
            n_started += 1
            on_event(f"experiment {exp_id} started on top of {parent[:7]}: {description}")

        with workspace_lock(workspace):
            while True:
                stopping = stopping or stop_reason()
                while not stopping and not exhausted() and len(flying) < executor.capacity:  # keep every slot busy
                    best = ledger.incumbent(branch)
                    files = _files_at(workspace, best.commit, task)
                    in_flight = [f.candidate.description for f in flying.values()]
                    draft = proposer.propose(Request(workspace, task, ledger.experiments(branch), files, in_flight,
                                                     best.commit))
                    proposal_id = ledger.add_proposal({**draft.record(), "kind": "propose", "branch": branch,
                                                       "parent": best.commit,
                                                       "status": "used" if draft.proposal else "failed"})
                    new_files = _apply(draft.proposal, files, task.editable)
                    if new_files is None or new_files == files or _content_key(new_files) in tried:
                        idle += 1
                        if draft.proposal is None:
                            summary.proposals_failed += 1
                        else:
                            duplicate = new_files is not None
                            summary.duplicates += duplicate
                            ledger.set_proposal_status(proposal_id, "duplicate" if duplicate else "failed",
                                                       "this exact code was already run or is running" if duplicate
                                                       else "its edits do not apply to the best")
                        stopping = stop_reason()
                        if not flying and not stopping and not exhausted():
                            time.sleep(min(0.5 * idle, 10))  # nothing running: back off before asking again
                        continue
                    idle = 0
                    launch(best, new_files, draft.proposal.description, draft.proposal, proposal_id)
                    stopping = stop_reason()
                if not flying:
                    if stopping or exhausted():
                        break
                    continue
                result = executor.next_result(timeout=options.poll_s)
                if result is None:
                    continue
                entry = flying[result.job.exp_id]
                candidate = entry.candidate
                decision = weigh(workspace, task, ledger, candidate, result.trial)
                _keep_branch_on_best(workspace, ledger, branch)
                if decision.status == "rerun":
                    executor.submit(Job(candidate.exp_id, candidate.runs + 1, candidate.commit, candidate.next_log_path()))
                    continue
                del flying[candidate.exp_id]
                best = ledger.incumbent(branch)
                replayed = None
                if decision.status == "keep" and best.commit != candidate.parent:  # measured on an older parent
                    best_files = _files_at(workspace, best.commit, task)
                    replayed = None if stopping else _apply(entry.proposal, best_files, task.editable)
                    if replayed is not None and (replayed == best_files or _content_key(replayed) in tried):
                        replayed = None
                    what = ("replayed there" if replayed is not None else
                            "not replayed (stopping)" if stopping else "its edit does not apply there")
                    decision = Decision("discard", f"{decision.reason}, but on an older parent: the best moved on "
                                        f"to #{best.id}; {what}", decision.margin)
                elif decision.status == "keep":
                    gitops.move_branch(workspace, branch, candidate.commit)
                finished = close(workspace, ledger, candidate, decision)
                summary.experiments.append(finished)
                on_event(result_line(finished) + f" | {result.slot}")
                if options.on_result is not None:
                    options.on_result(finished)
                if replayed is not None:
                    first = entry.replay_of or candidate.exp_id  # a replay of a replay names the first
                    launch(best, replayed, f"replay of #{first} on #{best.id}: {entry.proposal.description}"[:200],
                           entry.proposal, None, first)
        summary.stop_reason = stopping or exhausted()
        return summary
    except KeyboardInterrupt:
        return interrupted(workspace, ledger, summary)
    finally:
        executor.close()
        ledger.close()


def _apply(proposal: Proposal | None, files: dict[str, str], editable: list[str]) -> dict[str, str] | None:
    if proposal is None:
        return None
    try:
        return {**files, **apply_to_texts(files, proposal.edits, editable)}
    except EditError:
        return None


def _keep_branch_on_best(workspace: Path, ledger, branch: str) -> None:
    """Slots share the repository: if a run outside a sandbox moved the branch, put it back."""
    best = ledger.incumbent(branch)
    if best is not None and best.commit and gitops.git(workspace, "rev-parse", f"refs/heads/{branch}") != best.commit:
        gitops.move_branch(workspace, branch, best.commit)
