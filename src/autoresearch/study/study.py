"""Study: the one research loop, ask / start / tell, for one slot or many. It coordinates; the work
lives in the collaborators it holds, each testable alone:

    Proposals  where the next draft comes from (pending, written in the background, asked now)
    Fixes      crashes sent back to their proposer
    Replays    a gain measured on a best that moved on, started again on the new best
    Runs       candidates on the executor's slots until each has a decision (reruns, early abort)
    Recorder   what the ledger keeps of each candidate
    StopRules  when to stop, and how fast to ask

`ask` turns the next draft into a Launch (its files on top of its parent, not a duplicate); `start`
commits it without moving the branch and hands it to a slot; `tell` takes a run's result and, once
the candidate is decided, moves the branch on a keep, replays a gain measured on an older best,
queues a fix of a crash, and records. One slot is capacity 1: pipelining is asking while the run
is in flight. State lives in git and the ledger, so a study resumes after a kill at any point.
"""

from __future__ import annotations

import time

from pydantic.dataclasses import dataclass as pydantic_dataclass

from autoresearch.core.abort import AbortRule
from autoresearch.core.events import EventBus, ExperimentFinished, Note, StudyStopped
from autoresearch.core.judge import Decision
from autoresearch.core.results import ExperimentResult, StudySummary
from autoresearch.core.settings import StudySettings
from autoresearch.core.status import ProposalStatus, Status
from autoresearch.execute.base import Executor, JobResult
from autoresearch.propose.base import Proposer
from autoresearch.propose.edits import EditError, Proposal, with_edits
from autoresearch.store.workspace import Workspace, WorkspaceError
from autoresearch.study.candidate import Candidate, CandidateState, Launch
from autoresearch.study.curves import CurveWatch
from autoresearch.study.fixes import Fixes
from autoresearch.study.proposals import Choices, Proposals, Request
from autoresearch.study.records import Recorder
from autoresearch.study.recovery import recover_interrupted
from autoresearch.study.replays import Replays, Tried
from autoresearch.study.runs import Runs
from autoresearch.study.snapshot import Snapshots
from autoresearch.study.stops import StopRules


@pydantic_dataclass(frozen=True)
class StudyOptions(StudySettings):
    """[study] with the command line's word on top, and what only a command line says."""
    early_abort: bool | None = None  # None: as [early_abort] says (on by default); True: on; False: off


class Study:
    def __init__(self, workspace: Workspace, proposers: list[Proposer], executor: Executor,
                 options: StudyOptions | None = None, bus: EventBus | None = None, ledger=None):
        self.ws = Workspace.of(workspace)
        self.task = self.ws.task()
        self.proposers = {p.name: p for p in proposers}
        if len(self.proposers) != len(proposers):
            raise WorkspaceError("two proposers share a name: give each its own (e.g. openai:gpt-4.1, tpe)")
        self.executor, self.options = executor, options or StudyOptions()
        self.bus = bus or EventBus()
        self._own_ledger = ledger is None
        self.ledger = ledger or self.ws.open_ledger()
        self.branch = self.ws.branch()
        self.snapshots = Snapshots(self.ws, self.task)
        self.recorder = Recorder(self.ws, self.ledger, self.task)
        curves = CurveWatch(self.task, self.ledger, self.branch, abort_rule(self.task, self.options.early_abort))
        self.runs = Runs(executor, self.recorder, curves, self.bus)
        options = self.options
        self.proposals = Proposals(self.proposers, self.ledger, self.task, self.branch, self.snapshots,
                                   Choices(options.top_k, options.explore, options.stagnation_after, options.seed))
        self.fixes = Fixes(self.ws, self.proposers, self.snapshots)
        self.tried = Tried()  # the code of every candidate run on this branch
        self.replays = Replays(self.snapshots, self.task.editable, self.tried)
        one_slot = executor.capacity == 1
        self.rules = StopRules(self.ws.stop_file, options.max_experiments, options.hours, options.max_cost_usd,
                               options.max_idle_proposals, options.failure_backoff_s,
                               verb="ran" if one_slot else "started")  # several slots: the last ones still run
        self.baseline_counts = one_slot  # one slot: the baseline is one of --max-experiments (as always)
        self.summary = StudySummary()
        self.stopping = self.gave_up = ""

    # -- the loop ------------------------------------------------------------------------------------
    def run(self) -> StudySummary:
        try:
            with self.ws.lock():
                self._run_locked()
        finally:
            self.executor.close()
            if self._own_ledger:
                self.ledger.close()
        self.bus.publish(StudyStopped(self.summary))
        return self.summary

    def _run_locked(self) -> None:
        try:
            closed = recover_interrupted(self.ws, self.ledger, self.task.metric)
            if closed:
                self._note(f"closed {len(closed)} experiment(s) interrupted by the last stop: {closed}")
            self._check_working_tree()
            if self.ledger.incumbent(self.branch) is None and not self._baseline():
                return
            for exp in self.ledger.experiments(self.branch):
                if exp.commit:
                    self.tried.add(self.snapshots.files_at(exp.commit))
            self.proposals.load_pending()
            self._loop()
        except KeyboardInterrupt:  # close the experiments in flight as interrupted, so the record is whole
            self.summary.stop_reason = "interrupted (Ctrl-C)"
            self.executor.close()
            recover_interrupted(self.ws, self.ledger, self.task.metric)

    def _loop(self) -> None:
        if not self.proposers:
            self.gave_up = "no proposer to ask"
        while True:
            self.stopping = self.stopping or self.rules.limit(self.summary.spent_usd)
            if self._may_ask():
                self._fill_slots()
            if not self.runs.flying:
                if not self._may_ask():
                    break
                time.sleep(min(self.rules.wait_s(), self.options.poll_s))
                continue
            if self._may_ask() and self.options.pipeline and not self.fixes and self._slots_full():
                self.proposals.write_ahead(self.runs.descriptions())
                self._say(self.proposals.notes)
            self.runs.watch()
            result = self.executor.next_result(timeout=self.options.poll_s)
            if result is not None:
                self.tell(result)
        self.summary.spent_usd += self.proposals.keep_background()
        self.summary.stop_reason = self.stopping or self.gave_up or self.rules.exhausted()

    def _may_ask(self) -> bool:
        return not (self.stopping or self.gave_up or self.rules.exhausted()) and bool(self.proposers)

    def _slots_full(self) -> bool:
        return len(self.runs.flying) >= self.executor.capacity

    def _fill_slots(self) -> None:
        while self._may_ask() and not self._slots_full() and self.rules.ready():
            launch = self.ask()
            if launch is not None:
                self.start(launch)
                self.stopping = self.stopping or self.rules.limit(self.summary.spent_usd)

    def _check_working_tree(self) -> None:
        """The study commits candidates itself and moves the branch on a keep: edits it would not see
        (or would overwrite) must be committed or undone first."""
        dirty = self.ws.changed([*self.task.editable, *self.task.frozen])
        if dirty:
            raise WorkspaceError(f"uncommitted changes to {', '.join(dirty)}: commit them (git commit -am ...) "
                                 f"or undo them (git checkout -- {' '.join(dirty)}) before a study")

    def _baseline(self) -> bool:
        """The code as it is, run alone first: it is what everything else is judged against."""
        self._note("running the baseline (the code as it is)")
        head = self.ws.head()
        exp_id = self.ledger.start(self.branch, head, "baseline", commit=head)
        decided = self.runs.alone(self.recorder.register(exp_id, head, None), self.options.poll_s)
        result = self._finish(decided, self._keep_branch_on_best())
        self.rules.started += self.baseline_counts
        if result.status != Status.KEEP:
            self.summary.stop_reason = f"the baseline crashed ({result.reason}); fix the task and run again"
            return False
        self.tried.add(self.snapshots.files_at(head))
        return True

    # -- ask --------------------------------------------------------------------------------------
    def ask(self) -> Launch | None:
        """The next candidate to run, or None when the proposal cannot run (recorded and counted)."""
        request = self._next_request()
        if request is None:
            return None
        self.summary.spent_usd += request.draft.cost_usd or 0.0
        proposal_id = self.proposals.record(request)
        if request.draft.proposal is None:
            self._failed(request)
            return None
        return self._launch(request, proposal_id)

    def _next_request(self) -> Request | None:
        in_flight = self.runs.descriptions()
        if self.fixes:
            history = self.ledger.experiments(self.branch)
            request = self.fixes.next(history, in_flight, self.proposals.briefing(history))
            self._say(self.fixes.notes)
            return request
        request = self.proposals.next(in_flight)
        self._say(self.proposals.notes)
        return request

    def _launch(self, request: Request, proposal_id: int) -> Launch | None:
        """The draft applied to its parent's files: a Launch, or None (stale or a duplicate)."""
        draft, fix = request.draft, request.fix
        best = self.ledger.incumbent(self.branch)
        parent = request.parent if request.explored or fix else best.commit
        base = self.snapshots.files_at(fix.crashed.commit if fix else parent)
        try:
            files = with_edits(base, draft.proposal.edits, self.task.editable)
        except EditError as exc:
            self.ledger.set_proposal_status(proposal_id, ProposalStatus.STALE, f"no longer applies to the best: {exc}")
            message = f"proposal '{draft.proposal.description}' no longer applies to the new best ({exc})"
            if request.pipelined and request.parent != parent:  # the best moved while it was written: no fault
                self._note(message)
            else:
                self._could_not_run(message)
            return None
        if self.tried.ran(files, self.snapshots.files_at(parent)):
            self.ledger.set_proposal_status(proposal_id, ProposalStatus.DUPLICATE, "this exact code was already run")
            self.summary.duplicates += 1
            self._could_not_run(f"skipped a duplicate: '{draft.proposal.description}' gives code already run")
            return None
        self.rules.idle = 0
        proposal = draft.proposal
        if fix is None:
            return Launch(files, parent, proposal.description, proposal, proposal_id, request.proposer, best)
        description = f"{fix.crashed.description} (fix {fix.attempt}: {proposal.description})"[:200]
        combined = Proposal(description, proposal.reasoning, [*fix.edits, *proposal.edits])  # replayable elsewhere
        return Launch(files, parent, description, combined, proposal_id, request.proposer, fix.against,
                      fix_attempt=fix.attempt)

    def _failed(self, request: Request) -> None:
        draft = request.draft
        self.summary.proposals_failed += 1
        if not draft.fatal:
            self._could_not_run(f"proposal failed ({draft.error})", failed=True)
            return
        self.proposers.pop(request.proposer, None)  # it can never succeed: no retries
        self._note(f"{request.proposer} stops proposing: {draft.error}")
        if not self.proposers:
            self.gave_up = f"{request.proposer}: {draft.error}"
            self.summary.gave_up = True

    def _could_not_run(self, message: str, failed: bool = False) -> None:
        """Counted towards the idle stop; after a failure the next ask waits (also while other slots are busy)."""
        pause = self.rules.could_not_run(failed)
        self._note(f"{message}; next proposal in {pause:g} s" if failed else message)

    # -- start and tell ---------------------------------------------------------------------------
    def start(self, launch: Launch) -> int:
        """Commit the candidate on top of its parent (the branch stays) and hand it to a free slot."""
        commit = self.ws.commit_candidate(launch.parent, launch.files, launch.description)
        exp_id = self.ledger.start(self.branch, launch.parent, launch.description, launch.proposal_id,
                                   launch.proposer, commit=commit)
        self.tried.add(launch.files)
        self.runs.submit(self.recorder.register(exp_id, commit, launch.against, launch))
        self.rules.started += 1
        return exp_id

    def tell(self, result: JobResult) -> ExperimentResult | None:
        """One run's result: judged, recorded; returns the experiment once it is decided."""
        decided = self.runs.receive(result)
        head = self._keep_branch_on_best()
        return None if decided is None else self._finish(decided, head)

    def _finish(self, candidate: Candidate, head: str) -> ExperimentResult:
        """A decided candidate: kept (the branch moves), replayed, or not; recorded; a crash queues a fix."""
        decision, replay = self._settle(candidate, head)
        finished = self.recorder.close(candidate, decision)
        self.summary.experiments.append(finished)
        self.bus.publish(ExperimentFinished(finished))
        if finished.status == Status.CRASH:
            candidate.state = CandidateState.CRASHED
            self.fixes.add(candidate, self.ledger.get(finished.id))
        if replay is not None:
            self.start(replay)
        return finished

    def _settle(self, candidate: Candidate, head: str) -> tuple[Decision, Launch | None]:
        """A keep moves the branch, unless it was measured against a best that has moved on: then it is
        replayed on the new best, where it must confirm its gain."""
        decision = candidate.decision
        if decision.status != Status.KEEP:
            candidate.state = CandidateState.DISCARDED
            return decision, None
        best = self.ledger.incumbent(self.branch)
        if candidate.against is None or best is None or best.commit == candidate.against.commit:
            if head != candidate.commit:
                self.ws.move_branch(self.branch, candidate.commit)
            candidate.state = CandidateState.KEPT
            return decision, None
        replay = None if self.stopping else self.replays.of(candidate, best)
        candidate.state = CandidateState.REPLAYED if replay else CandidateState.DISCARDED
        what = ("replayed there" if replay is not None else
                "not replayed (stopping)" if self.stopping else "its edit does not apply there")
        reason = f"{decision.reason}, but on an older parent: the best moved on to #{best.id}; {what}"
        return Decision(Status.DISCARD, reason, decision.margin), replay

    def _keep_branch_on_best(self) -> str:
        """Slots share the repository: if a run outside a sandbox moved the branch, put it back.
        Returns the commit the branch stands on."""
        best = self.ledger.incumbent(self.branch)
        head = self.ws.branch_commit(self.branch)
        if best is None or not best.commit:
            return head
        if head != best.commit and head not in self.runs.commits():
            self.ws.move_branch(self.branch, best.commit)
            self._note(f"the branch had moved to {head[:7]}: put back on the best, {best.commit[:7]}")
            return best.commit
        return head

    # -- events -----------------------------------------------------------------------------------
    def _note(self, text: str) -> None:
        self.bus.publish(Note(text))

    def _say(self, notes: list[str]) -> None:
        """A collaborator's notes, published and cleared."""
        for text in notes:
            self._note(text)
        notes.clear()


def abort_rule(task, wanted: bool | None) -> AbortRule | None:
    """The early-abort rule of a study: the task's, unless the command line turned it on or off."""
    if wanted is None:
        return task.early_abort
    return (task.early_abort or AbortRule()) if wanted else None


def run_study(workspace: Workspace, proposers: list[Proposer], options: StudyOptions | None = None, *,
              executor: Executor | None = None, bus: EventBus | None = None) -> StudySummary:
    """A study of `proposers` on one local slot (or on `executor`): `autoresearch run` for programs."""
    from autoresearch.execute.local import LocalExecutor, plan_slots

    ws = Workspace.of(workspace)
    task = ws.task()
    executor = executor or LocalExecutor(ws, task, plan_slots(1))
    return Study(ws, proposers, executor, options, bus).run()
