"""The study's collaborators, each built and tested alone: fixes (per [[agent]]), replays, the stop
rules and their pace, where proposals are made from, and the bandit that shares asks."""

from __future__ import annotations

import time
from collections import Counter

from conftest import git

from autoresearch.core.records import Experiment, Outcome
from autoresearch.core.status import Status
from autoresearch.propose.bandit import Bandit
from autoresearch.propose.base import Draft
from autoresearch.propose.edits import Edit, Proposal
from autoresearch.store.ledger import Ledger
from autoresearch.store.workspace import Workspace
from autoresearch.study.candidate import Candidate
from autoresearch.study.fixes import Fixes
from autoresearch.study.proposals import Choices, Proposals
from autoresearch.study.replays import Replays, Tried
from autoresearch.study.snapshot import Snapshots
from autoresearch.study.stops import MAX_BACKOFF_S, StopRules

DIFF = "--- a/train.py\n+++ b/train.py\n@@ -1 +1 @@\n-LR = 1\n+LR = 2\n"


class Fixer:
    """A proposer that answers a crash with a fixed edit, or leaves it (None)."""

    def __init__(self, name: str, max_fix_attempts: int, edit: Edit | None):
        self.name, self.max_fix_attempts, self.edit, self.shown = name, max_fix_attempts, edit, []

    def propose(self, snapshot):
        raise AssertionError("a fix is asked, not a proposal")

    def fix(self, snapshot, crashed, log_tail):
        self.shown.append((snapshot.files, crashed.id, log_tail))
        return Draft(Proposal("fixed", "", [self.edit]), self.name) if self.edit else None


def crashed_experiment(exp_id: int, commit: str, proposer: str) -> Experiment:
    return Experiment(exp_id, "b", "p0", commit, "try", Status.CRASH, None, None, log_path=f"runs/{exp_id}.log",
                      proposer=proposer)


def candidate_of(proposer: str, fix_attempt: int = 0, commit: str = "c1") -> Candidate:
    return Candidate(3, commit, "p0", "try", DIFF, None, [], proposer=proposer, fix_attempt=fix_attempt,
                     proposal=Proposal("try", "", [Edit("train.py", "LR = 1", "LR = 2")]))


def test_each_agent_bounds_its_own_fixes():
    """[[agent]] max_fix_attempts is each proposer's: 0 never fixes, 1 fixes once, a missing proposer never."""
    never, once = Fixer("a", 0, None), Fixer("b", 1, None)
    fixes = Fixes(None, {"a": never, "b": once}, None)
    fixes.add(candidate_of("a"), crashed_experiment(3, "c1", "a"))
    assert not fixes
    fixes.add(candidate_of("b"), crashed_experiment(3, "c1", "b"))
    assert [(f.proposer, f.attempt) for f in fixes.queue] == [("b", 1)]
    fixes.add(candidate_of("b", fix_attempt=1), crashed_experiment(4, "c1", "b"))  # its fix crashed too
    fixes.add(candidate_of("gone"), crashed_experiment(5, "c1", "gone"))
    assert [(f.proposer, f.attempt) for f in fixes.queue] == [("b", 1)]
    assert fixes.queue[0].edits == [Edit("train.py", "LR = 1", "LR = 2")]  # to replay the fix elsewhere


def test_a_fix_is_asked_on_the_crashed_files_with_its_log(tiny_workspace):
    ws = Workspace(tiny_workspace)
    head = ws.head()
    (tiny_workspace / "runs").mkdir()
    (tiny_workspace / "runs" / "3.log").write_text("Traceback\nNameError: nope\n")
    fixer, quiet = Fixer("b", 2, Edit("train.py", "a", "b")), Fixer("q", 2, None)
    fixes = Fixes(ws, {"b": fixer, "q": quiet}, Snapshots(ws, ws.task()))
    fixes.add(candidate_of("b", commit=head), crashed_experiment(3, head, "b"))
    request = fixes.next([], [], ["a note"])
    assert (request.kind, request.proposer, request.parent, request.fix.attempt) == ("fix", "b", "p0", 1)
    files, crashed_id, log = fixer.shown[0]
    assert crashed_id == 3 and "NameError: nope" in log and files["train.py"] == ws.files_at(head, ["train.py"])["train.py"]
    fixes.add(candidate_of("q", commit=head), crashed_experiment(3, head, "q"))
    assert fixes.next([], [], []) is None and fixes.notes == ["q gave up on the crash of #3: the idea goes no further"]


def test_a_replay_puts_the_edit_on_the_new_best_once(tiny_workspace):
    ws = Workspace(tiny_workspace)
    best_commit = ws.head()
    train = ws.files_at(best_commit, ["train.py"])["train.py"]
    line = next(line for line in train.splitlines() if line.strip() and not line.startswith(("#", '"')))
    best = Experiment(7, "b", "p0", best_commit, "the new best", Status.KEEP, 1.0, 1.1)
    tried = Tried()
    replays = Replays(Snapshots(ws, ws.task()), ["train.py"], tried)
    candidate = Candidate(5, "c5", "p0", "lower lr", DIFF, None, [], proposer="b",
                          proposal=Proposal("lower lr", "", [Edit("train.py", line, line + "  # replayed")]))
    launch = replays.of(candidate, best)
    assert (launch.parent, launch.against, launch.replay_of, launch.proposer) == (best_commit, best, 5, "b")
    assert launch.description == "replay of #5 on #7: lower lr" and "# replayed" in launch.files["train.py"]
    tried.add(launch.files)
    assert replays.of(candidate, best) is None  # that code already ran
    stale = Candidate(6, "c6", "p0", "x", DIFF, None, [], proposal=Proposal("x", "", [Edit("train.py", "nowhere", "y")]))
    assert replays.of(stale, best) is None and replays.of(Candidate(8, "c", "p", "d", DIFF, None, []), best) is None


def test_stop_rules_count_and_pace(tmp_path):
    rules = StopRules(tmp_path / "stop", max_experiments=2, max_idle_proposals=3, failure_backoff_s=5.0, verb="ran")
    assert rules.limit(0.0) == "" and rules.ready()
    rules.started = 2
    assert rules.limit(0.0) == "ran 2 experiments (--max-experiments)"
    pauses = [rules.could_not_run(failed=True) for _ in range(2)]
    assert pauses == [5.0, 10.0] and not rules.ready() and 9 < rules.wait_s() <= 10
    assert rules.could_not_run(failed=False) == 0.0 and rules.exhausted().startswith("3 proposals in a row")
    rules.idle = 10
    assert rules.could_not_run(failed=True) == MAX_BACKOFF_S
    spend = StopRules(tmp_path / "stop", max_cost_usd=1.0)
    assert spend.limit(0.99) == "" and "reached --max-cost $1" in spend.limit(1.0)
    (tmp_path / "stop").touch()
    assert "stop file" in spend.limit(0.0) and not (tmp_path / "stop").exists()
    late = StopRules(tmp_path / "stop", hours=1 / 3600, started_at=time.monotonic() - 2)
    assert late.limit(0.0) == "0.000277778 hours passed (--hours)"


def kept_ledger(tmp_path, metrics: list[float]) -> Ledger:
    ledger = Ledger(tmp_path / "ledger.sqlite")
    for i, metric in enumerate(metrics):
        exp_id = ledger.start("b", f"c{i - 1}", f"#{i}", commit=f"c{i}")
        ledger.finish(exp_id, Outcome(Status.KEEP, metric, None if i == 0 else metrics[0], {}, ""))
    return ledger


def test_proposals_explore_from_another_of_the_k_best(tmp_path):
    """With top_k > 1 and explore 1.0, a proposal is made from the better of the others, by the task's
    direction; with top_k 1 always from the best (the latest keep)."""
    from autoresearch.core.task import parse_task

    task = parse_task({"task": {"command": ["x"]}, "budget": {"value": 60}})
    ledger = kept_ledger(tmp_path, [1.0, 0.9, 0.95])  # the latest keep is the incumbent: c2
    best = ledger.incumbent("b")
    explore = Proposals({}, ledger, task, "b", None, Choices(top_k=2, explore=1.0, seed=1))
    assert explore._choose_parent(best) == ("c1", True) and explore.notes == ["exploring from #2 (0.900000: #1)"]
    greedy = Proposals({}, ledger, task, "b", None, Choices(top_k=1, explore=1.0, seed=1))
    assert greedy._choose_parent(best) == ("c2", False)
    maximize = parse_task({"task": {"command": ["x"], "direction": "maximize"}, "budget": {"value": 60}})
    upward = Proposals({}, ledger, maximize, "b", None, Choices(top_k=2, explore=1.0, seed=1))
    assert upward._choose_parent(best) == ("c0", True)  # 1.0 is the best of the others when more is better
    ledger.close()


def test_the_bandit_gives_most_asks_to_the_proposer_that_keeps():
    bandit = Bandit(seed=3)
    records = {"keeps": (9, 10), "never": (0, 10)}
    asks = Counter(bandit.choose(["keeps", "never", "new"], records) for _ in range(3000))
    assert asks["keeps"] / 3000 > 0.75
    assert 0.05 < asks["new"] / 3000 < 0.25  # a new proposer's wide belief still wins now and then
    assert asks["never"] / 3000 < 0.02
    weak = Counter(bandit.choose(["some", "never"], {"some": (2, 10), "never": (0, 10)}) for _ in range(3000))
    assert 0.05 < weak["never"] / 3000 < 0.2  # one that has not kept yet still gets an occasional ask
    assert Bandit(seed=1).choose(["only"], {}) == "only"
    assert [Bandit(seed=7).choose(["a", "b"], {}) for _ in range(3)] == [Bandit(seed=7).choose(["a", "b"], {})] * 3


def test_a_commit_of_the_workspace_is_what_snapshots_read(tiny_workspace):
    """Snapshots read git once per commit: a later edit of the working tree does not leak in."""
    ws = Workspace(tiny_workspace)
    snapshots = Snapshots(ws, ws.task())
    head = ws.head()
    before = snapshots.files_at(head)["train.py"]
    (tiny_workspace / "train.py").write_text(before + "\n# edited, not committed\n")
    assert snapshots.files_at(head)["train.py"] == before == git(tiny_workspace, "show", f"{head}:train.py") + "\n"
