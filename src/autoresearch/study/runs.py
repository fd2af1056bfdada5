"""Runs: candidates on the executor's slots until each has a decision.

A candidate is submitted as a job; each result is recorded and judged with the candidate's runs
so far; a rerun goes straight back to a slot; anything else leaves with its decision. Curves are
followed while runs train, and a first run that cannot catch the best is stopped (never the
baseline, never a rerun: those measure the noise the rule relies on). A study uses it for all its
candidates; `exp` and a study's baseline use it for one candidate alone (`alone`).
"""

from __future__ import annotations

from autoresearch.core.abort import Verdict
from autoresearch.core.curve import parse_progress
from autoresearch.core.events import EventBus, Note, Progress, RunOutput, RunStarted
from autoresearch.core.status import Status
from autoresearch.execute.base import Executor, Job, JobResult
from autoresearch.study.candidate import Candidate, CandidateState
from autoresearch.study.curves import CurveWatch
from autoresearch.study.records import Recorder


class Runs:
    def __init__(self, executor: Executor, recorder: Recorder, curves: CurveWatch, bus: EventBus):
        self.executor, self.recorder, self.curves, self.bus = executor, recorder, curves, bus
        self.flying: dict[int, Candidate] = {}
        self.stopped: dict[int, Verdict] = {}  # runs stopped early, until their result comes back
        listen = getattr(executor, "listen", None)
        if listen is not None:
            listen(self._on_output)

    def submit(self, candidate: Candidate) -> None:
        """Its next run, to a free slot."""
        self.flying[candidate.exp_id] = candidate
        run = candidate.runs + 1
        self.curves.started(candidate.exp_id, run)
        log = self.recorder.next_run(candidate).log
        self.executor.submit(Job(candidate.exp_id, run, candidate.commit, log, seed=candidate.seed(run)))
        self.bus.publish(RunStarted(candidate.exp_id, run, candidate.description, candidate.parent))

    def receive(self, result: JobResult) -> Candidate | None:
        """One run's result, recorded and judged: the candidate with its decision, or None while it reruns."""
        candidate = self.flying[result.job.exp_id]
        candidate.slot = result.slot
        self.curves.finished(candidate.exp_id, result.job.run, result.job.log_path)
        verdict = self.stopped.pop(candidate.exp_id, None)
        if verdict is not None and result.trial.metric is None:
            candidate.decision = self.recorder.stopped_early(candidate, result.trial, verdict)
        else:  # not stopped, or it finished before the stop reached it: judged as usual
            candidate.decision = self.recorder.weigh(candidate, result.trial)
        if candidate.decision.status == Status.RERUN:
            candidate.state = CandidateState.RERUNNING
            self.bus.publish(Note(f"experiment {candidate.exp_id}: {candidate.decision.reason}: running it again"))
            self.submit(candidate)
            return None
        del self.flying[candidate.exp_id]
        return candidate

    def alone(self, candidate: Candidate, poll_s: float) -> Candidate:
        """Run one candidate, the only one in flight, to its decision."""
        self.submit(candidate)
        while True:
            self.curves.flush()
            result = self.executor.next_result(timeout=poll_s)
            decided = self.receive(result) if result is not None else None
            if decided is not None:
                return decided

    def watch(self) -> None:
        """Curves into the ledger; a candidate's first run that cannot catch the best is stopped."""
        self.curves.flush()
        stop = getattr(self.executor, "stop", None)
        if stop is None or self.curves.rule is None:
            return
        watched = {i for i, c in self.flying.items() if c.first_run and i not in self.stopped}
        for exp_id, verdict in self.curves.verdicts(watched).items():
            self.stopped[exp_id] = verdict
            stop(exp_id)
            self.bus.publish(Note(f"experiment {exp_id}: {verdict.reason}"))

    def descriptions(self) -> list[str]:
        """What is running now (proposers are told, so they do not propose it again)."""
        return [c.description for c in self.flying.values()]

    def commits(self) -> set[str]:
        return {c.commit for c in self.flying.values()}

    def _on_output(self, job: Job, line: str) -> None:
        self.bus.publish(RunOutput(job.exp_id, line))
        point = parse_progress(line)
        if point is not None:
            point = self.curves.heard(job.exp_id, point) or point
            self.bus.publish(Progress(job.exp_id, point.step, point.fraction, point.loss, point.tokens_per_second))
