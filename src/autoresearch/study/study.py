"""Study: the one research loop, ask / tell, for one slot or many.

`ask` gets the next candidate: a crash fix if one is due, else a proposal (written in the
background while the slots were busy, left over from a stop, or asked for now), from the proposer
the bandit picks, on top of the best kept commit or, with `top_k` > 1, sometimes another of the k
best (a small tree, as in AIDE). The candidate becomes a commit on top of its parent without
moving the branch and runs on a free slot of the executor. `tell` takes each run's result: the
judge decides (keep, discard, crash, or run it again), the ledger records, and a keep moves the
branch. A gain measured against a best that has moved on meanwhile (another slot's keep) is not
kept but replayed on the new best, and kept only if it confirms there. A crash goes back to its
proposer for a fix, a bounded number of times.

One slot is the same code with capacity 1: pipelining is asking while the run is in flight.
State lives in git and the ledger, so a study resumes after a kill at any point.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic.dataclasses import dataclass as pydantic_dataclass

from autoresearch.core.abort import AbortRule, Verdict
from autoresearch.core.curve import parse_progress
from autoresearch.core.events import EventBus, ExperimentFinished, Note, Progress, RunOutput, RunStarted, StudyStopped
from autoresearch.core.judge import Decision
from autoresearch.core.records import Experiment, ProposalRecord
from autoresearch.core.results import ExperimentResult, StudySummary
from autoresearch.core.settings import AgentSettings, StudySettings
from autoresearch.core.status import ProposalStatus, Status
from autoresearch.execute.base import Executor, Job, JobResult
from autoresearch.propose.bandit import Bandit
from autoresearch.propose.base import Draft, Proposer
from autoresearch.propose.briefing import briefing, curves_wanted
from autoresearch.propose.edits import Edit, EditError, Proposal, apply_to_texts
from autoresearch.run.trial import log_tail
from autoresearch.store.workspace import Workspace, WorkspaceError
from autoresearch.study.curves import CurveWatch
from autoresearch.study.records import Candidate, close, next_run, register, stopped_early, weigh
from autoresearch.study.recovery import recover_interrupted
from autoresearch.study.snapshot import Snapshots
from autoresearch.study.stops import StopRules

MAX_BACKOFF_S = 60.0


@pydantic_dataclass(frozen=True)
class StudyOptions(StudySettings):
    """[study] with the command line's word on top, and what only a command line says."""
    early_abort: bool | None = None  # None: as [early_abort] says (on by default); True: on; False: off


@dataclass
class InFlight:
    candidate: Candidate
    proposal: Proposal | None  # its edits, to replay them on a newer best
    replay_of: int | None = None
    fix_attempt: int = 0  # 0 for a proposal, n for the n-th fix of a crash


@dataclass
class Launch:
    """A candidate ready to run: its files, where it goes, and who proposed it."""
    files: dict[str, str]
    parent: str
    description: str
    proposal: Proposal | None
    proposal_id: int | None
    proposer: str
    against: Experiment | None  # the incumbent it is judged against
    replay_of: int | None = None
    fix_attempt: int = 0


@dataclass
class _Request:
    """A draft, and what it was written against."""
    draft: Draft
    parent: str
    proposer: str
    kind: str = "propose"  # propose | fix
    explored: bool = False  # written on purpose from a kept commit other than the best
    pipelined: bool = False  # written while the previous candidates ran (the best may have moved since)
    fix: _Fix | None = None
    asked_at: float = field(default_factory=time.time)


@dataclass
class _Fix:
    crashed: Experiment
    proposer: str
    attempt: int  # this fix's number
    against: Experiment | None
    edits: list[Edit] = field(default_factory=list)  # of the crashed candidate, to replay a fix elsewhere


class _Background:
    """A proposal being written in a daemon thread (a hung model call never blocks exit)."""

    def __init__(self, fn: Callable[[], Draft], parent: str, proposer: str, explored: bool):
        self.parent, self.proposer, self.explored = parent, proposer, explored
        self.asked_at = time.time()
        self.draft: Draft | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self.thread.start()

    def _run(self, fn) -> None:
        try:
            self.draft = fn()
        except BaseException as exc:  # handed to the study's thread
            self.error = exc

    def request(self) -> _Request:
        self.thread.join()
        if self.error is not None:
            raise self.error
        return _Request(self.draft, self.parent, self.proposer, explored=self.explored, pipelined=True,
                        asked_at=self.asked_at)


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
        self.curves = CurveWatch(self.task, self.ledger, self.branch, abort_rule(self.task, self.options.early_abort))
        self.stopped: dict[int, Verdict] = {}  # runs stopped early, until their result comes back
        self.bandit, self.rng = Bandit(self.options.seed), random.Random(self.options.seed)
        one_slot = executor.capacity == 1
        self.verb = "ran" if one_slot else "started"  # with several slots the last ones still run at the stop
        self.baseline_counts = one_slot  # one slot: the baseline is one of --max-experiments (as always)
        self.rules = StopRules(self.ws.stop_file, self.options.max_experiments, self.options.hours,
                               self.options.max_cost_usd, self.options.max_idle_proposals)
        self.summary = StudySummary()
        self.flying: dict[int, InFlight] = {}
        self.fixes: deque[_Fix] = deque()
        self.tried: set[str] = set()
        self.pending: list[Draft] = []  # proposals made but never run: a restart uses them
        self.background: _Background | None = None
        self.started = self.idle = 0
        self.next_ask_at = 0.0
        self.stopping = self.gave_up = ""
        listen = getattr(executor, "listen", None)
        if listen is not None:
            listen(self._on_output)

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
            self._recover()
            self._check_working_tree()
            if self.ledger.incumbent(self.branch) is None and not self._baseline():
                return
            self.tried = {content_key(self.snapshots.files_at(e.commit))
                          for e in self.ledger.experiments(self.branch) if e.commit}
            self.pending = self._pending_drafts()
            self._loop()
        except KeyboardInterrupt:  # close the experiments in flight as interrupted, so the record is whole
            self.summary.stop_reason = "interrupted (Ctrl-C)"
            self.executor.close()
            recover_interrupted(self.ws, self.ledger, self.task.metric)

    def _loop(self) -> None:
        if not self.proposers:
            self.gave_up = "no proposer to ask"
        while True:
            self.stopping = self.stopping or self.rules.limit(self.started, self.summary.spent_usd, self.verb)
            if self._may_ask():
                self._fill_slots()
            if not self.flying:
                if not self._may_ask():
                    break
                time.sleep(min(max(self.next_ask_at - time.monotonic(), 0.0), self.options.poll_s))
                continue
            if self._may_ask():
                self._pipeline()
            self._watch()
            result = self.executor.next_result(timeout=self.options.poll_s)
            if result is not None:
                self.tell(result)
        self._keep_background()
        self.summary.stop_reason = self.stopping or self.gave_up or self.rules.exhausted(self.idle)

    def _may_ask(self) -> bool:
        return not (self.stopping or self.gave_up or self.rules.exhausted(self.idle)) and bool(self.proposers)

    def _fill_slots(self) -> None:
        while self._may_ask() and len(self.flying) < self.executor.capacity and time.monotonic() >= self.next_ask_at:
            launch = self.ask()
            if launch is not None:
                self.start(launch)
                self.stopping = self.stopping or self.rules.limit(self.started, self.summary.spent_usd, self.verb)

    def _recover(self) -> None:
        closed = recover_interrupted(self.ws, self.ledger, self.task.metric)
        if closed:
            self.bus.publish(Note(f"closed {len(closed)} experiment(s) interrupted by the last stop: {closed}"))

    def _check_working_tree(self) -> None:
        """The study commits candidates itself and moves the branch on a keep: edits it would not see
        (or would overwrite) must be committed or undone first."""
        dirty = self.ws.changed([*self.task.editable, *self.task.frozen])
        if dirty:
            raise WorkspaceError(f"uncommitted changes to {', '.join(dirty)}: commit them (git commit -am ...) "
                                 f"or undo them (git checkout -- {' '.join(dirty)}) before a study")

    def _baseline(self) -> bool:
        """The code as it is, run alone first: it is what everything else is judged against."""
        self.bus.publish(Note("running the baseline (the code as it is)"))
        head = self.ws.head()
        exp_id = self.ledger.start(self.branch, head, "baseline", commit=head)
        result = self.evaluate(exp_id, head, against=None)
        self.started += self.baseline_counts
        if result.status != Status.KEEP:
            self.summary.stop_reason = f"the baseline crashed ({result.reason}); fix the task and run again"
            return False
        self.tried.add(content_key(self.snapshots.files_at(head)))
        return True

    def evaluate(self, exp_id: int, commit: str, against: Experiment | None) -> ExperimentResult:
        """Run one registered experiment to its decision, alone (the baseline, or `autoresearch exp`)."""
        candidate = register(self.ws, self.ledger, exp_id, commit, against)
        self._submit(InFlight(candidate, None))
        while exp_id in self.flying:
            self.curves.flush()
            result = self.executor.next_result(timeout=self.options.poll_s)
            if result is not None:
                self.tell(result)
        return next(r for r in reversed(self.summary.experiments) if r.id == exp_id)

    # -- ask --------------------------------------------------------------------------------------
    def ask(self) -> Launch | None:
        """The next candidate to run, or None when the proposal cannot run (recorded and counted)."""
        request = self._next_request()
        if request is None:
            return None
        draft = request.draft
        proposal_id = self._record(request)
        if draft.proposal is None:
            self._failed(request)
            return None
        best = self.ledger.incumbent(self.branch)
        parent = request.parent if request.explored or request.kind == "fix" else best.commit
        base = self.snapshots.files_at(request.fix.crashed.commit) if request.fix else self.snapshots.files_at(parent)
        try:
            files = {**base, **apply_to_texts(base, draft.proposal.edits, self.task.editable)}
        except EditError as exc:
            self.ledger.set_proposal_status(proposal_id, ProposalStatus.STALE, f"no longer applies to the best: {exc}")
            message = f"proposal '{draft.proposal.description}' no longer applies to the new best ({exc})"
            if request.pipelined and request.parent != parent:  # the best moved while it was written: no fault
                self._note(message)
            else:
                self._idle(message)
            return None
        if files == self.snapshots.files_at(parent) or content_key(files) in self.tried:
            self.ledger.set_proposal_status(proposal_id, ProposalStatus.DUPLICATE, "this exact code was already run")
            self.summary.duplicates += 1
            self._idle(f"skipped a duplicate: '{draft.proposal.description}' gives code already run")
            return None
        self.idle = 0
        return self._launch_for(request, files, parent, proposal_id, best)

    def _launch_for(self, request: _Request, files: dict[str, str], parent: str, proposal_id: int,
                    best: Experiment) -> Launch:
        proposal = request.draft.proposal
        if request.fix is None:
            return Launch(files, parent, proposal.description, proposal, proposal_id, request.proposer, best)
        fix = request.fix
        description = f"{fix.crashed.description} (fix {fix.attempt}: {proposal.description})"[:200]
        combined = Proposal(description, proposal.reasoning, [*fix.edits, *proposal.edits])  # replayable elsewhere
        return Launch(files, parent, description, combined, proposal_id, request.proposer, fix.against,
                      fix_attempt=fix.attempt)

    def _next_request(self) -> _Request | None:
        if self.fixes:
            return self._fix_request(self.fixes.popleft())
        if self.background is not None:
            background, self.background = self.background, None
            return background.request()
        best = self.ledger.incumbent(self.branch)
        if self.pending:
            draft = self.pending.pop(0)
            return _Request(draft, best.commit, draft.proposer)
        name = self.bandit.choose(list(self.proposers), self.ledger.proposer_records(self.branch))
        parent, explored = self._choose_parent(best)
        snapshot = self._snapshot(parent)
        asked_at = time.time()
        return _Request(self.proposers[name].propose(snapshot), parent, name, explored=explored, asked_at=asked_at)

    def _snapshot(self, parent: str):
        """What a proposer is shown: the snapshot of `parent`, with the harness's briefing as notes."""
        history = self.ledger.experiments(self.branch)
        curves = self.ledger.curves(curves_wanted(history))
        notes = briefing(history, curves, self.task.metric, self.options.stagnation_after)
        return self.snapshots.take(parent, history, self._in_flight(), notes=notes)

    def _fix_request(self, fix: _Fix) -> _Request | None:
        proposer = self.proposers.get(fix.proposer)
        if proposer is None:
            return None
        crashed = fix.crashed
        snapshot = self.snapshots.take(crashed.parent, self.ledger.experiments(self.branch), self._in_flight(),
                                       files=self.snapshots.files_at(crashed.commit))
        draft = proposer.fix(snapshot, crashed, log_tail(self.ws.root / crashed.log_path, 60))
        if draft is None:
            self._note(f"{fix.proposer} left the crash of #{crashed.id} unfixed")
            return None
        return _Request(draft, crashed.parent, fix.proposer, kind="fix", fix=fix)

    def _choose_parent(self, best: Experiment) -> tuple[str, bool]:
        """The best kept commit, or with top_k > 1 sometimes another of the k best (by the task's direction)."""
        if self.options.top_k <= 1 or self.rng.random() >= self.options.explore:
            return best.commit, False
        kept = [e for e in self.ledger.experiments(self.branch) if e.status == Status.KEEP and e.metric is not None]
        kept.sort(key=lambda e: e.metric, reverse=self.task.direction == "maximize")
        others = [e for e in kept[:self.options.top_k] if e.commit != best.commit]
        if not others:
            return best.commit, False
        choice = self.rng.choice(others)
        self._note(f"exploring from #{choice.id} ({choice.metric:.6f}: {choice.description})")
        return choice.commit, True

    def _pipeline(self) -> None:
        """While every slot is busy, the next proposal is written in the background."""
        if (not self.options.pipeline or self.background is not None or self.fixes or self.pending
                or len(self.flying) < self.executor.capacity):
            return
        best = self.ledger.incumbent(self.branch)
        name = self.bandit.choose(list(self.proposers), self.ledger.proposer_records(self.branch))
        parent, explored = self._choose_parent(best)
        snapshot = self._snapshot(parent)
        proposer = self.proposers[name]
        self.background = _Background(lambda: proposer.propose(snapshot), parent, name, explored)

    def _record(self, request: _Request) -> int:
        draft = request.draft
        self.summary.spent_usd += draft.cost_usd or 0.0
        if draft.ledger_id is None:
            status = ProposalStatus.PENDING if draft.proposal else ProposalStatus.FAILED
            draft.ledger_id = self.ledger.add_proposal(ProposalRecord(**{
                **draft.record(), "created_at": request.asked_at, "proposer": request.proposer, "kind": request.kind,
                "branch": self.branch,
                "parent": request.parent, "status": status,
                "fix_of": request.fix.crashed.id if request.fix else None}))
        return draft.ledger_id

    def _failed(self, request: _Request) -> None:
        draft = request.draft
        self.summary.proposals_failed += 1
        if not draft.fatal:
            self._idle(f"proposal failed ({draft.error})", wait=True)
            return
        self.proposers.pop(request.proposer, None)  # it can never succeed: no retries
        self._note(f"{request.proposer} stops proposing: {draft.error}")
        if not self.proposers:
            self.gave_up = f"{request.proposer}: {draft.error}"
            self.summary.gave_up = True

    def _idle(self, message: str, wait: bool = False) -> None:
        """A proposal that could not run. After a failure the next ask waits longer each time, so a
        stuck model costs little (also while other slots are busy); a duplicate or a proposal that no
        longer applies is asked again at once. Either way they count towards the idle stop."""
        self.idle += 1
        if not wait:
            self._note(message)
            return
        pause = min(self.options.failure_backoff_s * 2 ** (self.idle - 1), MAX_BACKOFF_S)
        self.next_ask_at = time.monotonic() + pause
        self._note(f"{message}; next proposal in {pause:g} s")

    def _pending_drafts(self) -> list[Draft]:
        """Proposals recorded but never run (the study was stopped in between): used, not asked again."""
        best = self.ledger.incumbent(self.branch)
        drafts = []
        for row in self.ledger.proposals(status=ProposalStatus.PENDING, branch=self.branch):
            if row.kind != "propose" or row.parent != best.commit:
                self.ledger.set_proposal_status(row.id, ProposalStatus.STALE, "written against an older best")
                continue
            edits = [Edit(**e) for e in json.loads(row.edits_json)]
            drafts.append(Draft(Proposal(row.description, row.reasoning, edits), row.proposer,
                                model=row.model, ledger_id=row.id))
        return drafts

    def _keep_background(self) -> None:
        """A proposal written in the background but not used: recorded, so the next start runs it."""
        background, self.background = self.background, None
        if background is not None and not background.thread.is_alive() and background.error is None:
            request = background.request()
            if request.draft.proposal is not None:
                self._record(request)

    # -- launch and tell --------------------------------------------------------------------------
    def start(self, launch: Launch) -> int:
        """Commit the candidate on top of its parent (the branch stays) and hand it to a free slot."""
        commit = self.ws.commit_candidate(launch.parent, launch.files, launch.description)
        exp_id = self.ledger.start(self.branch, launch.parent, launch.description, launch.proposal_id,
                                   launch.proposer, commit=commit)
        candidate = register(self.ws, self.ledger, exp_id, commit, launch.against)
        self.tried.add(content_key(launch.files))
        self._submit(InFlight(candidate, launch.proposal, launch.replay_of, launch.fix_attempt))
        self.started += 1
        return exp_id

    def _submit(self, entry: InFlight) -> None:
        candidate = entry.candidate
        self.flying[candidate.exp_id] = entry
        paths = next_run(self.ws, candidate)
        self.curves.started(candidate.exp_id, candidate.runs + 1)
        run = candidate.runs + 1
        self.executor.submit(Job(candidate.exp_id, run, candidate.commit, paths.log, seed=candidate.seed(run)))
        self.bus.publish(RunStarted(candidate.exp_id, candidate.runs + 1, candidate.description, candidate.parent))

    def tell(self, result: JobResult) -> ExperimentResult | None:
        """One run's result: judged, recorded; returns the experiment once it is decided."""
        entry = self.flying[result.job.exp_id]
        candidate = entry.candidate
        candidate.slot = result.slot
        self.curves.finished(candidate.exp_id, result.job.run, result.job.log_path)
        verdict = self.stopped.pop(candidate.exp_id, None)
        if verdict is not None and result.trial.metric is None:
            decision = stopped_early(self.ws, self.ledger, candidate, result.trial, verdict)
        else:  # not stopped, or it finished before the stop reached it: judged as usual
            decision = weigh(self.ws, self.task, self.ledger, candidate, result.trial)
        head = self._keep_branch_on_best()
        if decision.status == Status.RERUN:
            self._note(f"experiment {candidate.exp_id}: {decision.reason}: running it again")
            self._submit(entry)
            return None
        del self.flying[candidate.exp_id]
        decision, replay = self._settle(entry, decision, head)
        finished = close(self.ws, self.ledger, candidate, decision, self.task.metric)
        self.summary.experiments.append(finished)
        self.bus.publish(ExperimentFinished(finished))
        if finished.status == Status.CRASH:
            self._queue_fix(entry, finished)
        if replay is not None:
            self.start(replay)
        return finished

    def _settle(self, entry: InFlight, decision: Decision, head: str) -> tuple[Decision, Launch | None]:
        """A keep moves the branch, unless it was measured against a best that has moved on: then it is
        replayed on the new best, where it must confirm its gain."""
        candidate = entry.candidate
        if decision.status != Status.KEEP:
            return decision, None
        best = self.ledger.incumbent(self.branch)
        if candidate.against is None or best is None or best.commit == candidate.against.commit:
            if head != candidate.commit:
                self.ws.move_branch(self.branch, candidate.commit)
            return decision, None
        replay = None if self.stopping else self._replay(entry, best)
        what = ("replayed there" if replay is not None else
                "not replayed (stopping)" if self.stopping else "its edit does not apply there")
        reason = f"{decision.reason}, but on an older parent: the best moved on to #{best.id}; {what}"
        return Decision(Status.DISCARD, reason, decision.margin), replay

    def _replay(self, entry: InFlight, best: Experiment) -> Launch | None:
        if entry.proposal is None:
            return None
        best_files = self.snapshots.files_at(best.commit)
        try:
            files = {**best_files, **apply_to_texts(best_files, entry.proposal.edits, self.task.editable)}
        except EditError:
            return None
        if files == best_files or content_key(files) in self.tried:
            return None
        first = entry.replay_of or entry.candidate.exp_id  # a replay of a replay names the first
        description = f"replay of #{first} on #{best.id}: {entry.proposal.description}"[:200]
        return Launch(files, best.commit, description, entry.proposal, None, entry.candidate.proposer, best,
                      replay_of=first)

    def _queue_fix(self, entry: InFlight, finished: ExperimentResult) -> None:
        attempt = entry.fix_attempt + 1
        proposer = entry.candidate.proposer
        if proposer not in self.proposers or attempt > getattr(self.proposers[proposer], "max_fix_attempts",
                                                                AgentSettings.max_fix_attempts):
            return
        edits = entry.proposal.edits if entry.proposal else []
        self.fixes.append(_Fix(self.ledger.get(finished.id), proposer, attempt, entry.candidate.against, edits))

    def _keep_branch_on_best(self) -> str:
        """Slots share the repository: if a run outside a sandbox moved the branch, put it back.
        Returns the commit the branch stands on."""
        best = self.ledger.incumbent(self.branch)
        head = self.ws.branch_commit(self.branch)
        if best is None or not best.commit:
            return head
        if head != best.commit and head not in {e.candidate.commit for e in self.flying.values()}:
            self.ws.move_branch(self.branch, best.commit)
            self._note(f"the branch had moved to {head[:7]}: put back on the best, {best.commit[:7]}")
            return best.commit
        return head

    def _watch(self) -> None:
        """Curves into the ledger; a candidate's first run that cannot catch the best is stopped
        (never the baseline, never a rerun: those measure the noise the rule relies on)."""
        self.curves.flush()
        stop = getattr(self.executor, "stop", None)
        if stop is None or self.curves.rule is None:
            return
        watched = {exp_id for exp_id, entry in self.flying.items()
                   if entry.candidate.against is not None and entry.candidate.runs == 0 and exp_id not in self.stopped}
        for exp_id, verdict in self.curves.verdicts(watched).items():
            self.stopped[exp_id] = verdict
            stop(exp_id)
            self._note(f"experiment {exp_id}: {verdict.reason}")

    # -- events -----------------------------------------------------------------------------------
    def _in_flight(self) -> list[str]:
        return [e.candidate.description for e in self.flying.values()]

    def _note(self, text: str) -> None:
        self.bus.publish(Note(text))

    def _on_output(self, job: Job, line: str) -> None:
        self.bus.publish(RunOutput(job.exp_id, line))
        point = parse_progress(line)
        if point is not None:
            point = self.curves.heard(job.exp_id, point) or point
            self.bus.publish(Progress(job.exp_id, point.step, point.fraction, point.loss, point.tokens_per_second))


def abort_rule(task, wanted: bool | None) -> AbortRule | None:
    """The early-abort rule of a study: the task's, unless the command line turned it on or off."""
    if wanted is None:
        return task.early_abort
    return (task.early_abort or AbortRule()) if wanted else None


def content_key(files: dict[str, str]) -> str:
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(path.encode() + b"\0" + files[path].encode() + b"\0")
    return digest.hexdigest()


def run_study(workspace: Workspace, proposers: list[Proposer], options: StudyOptions | None = None, *,
              executor: Executor | None = None, bus: EventBus | None = None) -> StudySummary:
    """A study of `proposers` on one local slot (or on `executor`): `autoresearch run` for programs."""
    from autoresearch.execute.local import LocalExecutor, plan_slots

    ws = Workspace.of(workspace)
    task = ws.task()
    executor = executor or LocalExecutor(ws, task, plan_slots(1))
    return Study(ws, proposers, executor, options, bus).run()
