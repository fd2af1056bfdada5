"""Ledger: the durable record of every experiment.

The source of truth is an SQLite database in the workspace's state directory (every attempt with
its diff, metrics, timings and log path, every run, every proposal). `results.tsv`, in the
original autoresearch's format, is a view of it (store/results_tsv.py), rewritten atomically after
each experiment, so the two can never disagree. Readers (dashboard, report, MCP, history, exports) open it with
`readonly=True`: an SQLite connection in read-only mode, whose write methods refuse.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from pathlib import Path

from autoresearch.core.best import running_best
from autoresearch.core.curve import Point
from autoresearch.core.records import Experiment, Outcome, ProposalRecord, RunRecord
from autoresearch.core.status import FINISHED, ProposalStatus, Status

_SCHEMA = """
CREATE TABLE IF NOT EXISTS experiments (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    branch        TEXT NOT NULL,
    parent        TEXT NOT NULL,
    commit_sha    TEXT,
    description   TEXT NOT NULL,
    status        TEXT NOT NULL,
    metric        REAL,
    incumbent     REAL,
    metrics_json  TEXT NOT NULL DEFAULT '{}',
    reason        TEXT NOT NULL DEFAULT '',
    diff          TEXT NOT NULL DEFAULT '',
    log_path      TEXT NOT NULL DEFAULT '',
    attempt_ref   TEXT NOT NULL DEFAULT '',
    exit_code     INTEGER,
    timed_out     INTEGER NOT NULL DEFAULT 0,
    wall_seconds  REAL,
    started_at    REAL NOT NULL,
    finished_at   REAL
);
CREATE INDEX IF NOT EXISTS experiments_branch ON experiments (branch, id);
CREATE TABLE IF NOT EXISTS runs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    experiment_id INTEGER NOT NULL,
    n             INTEGER NOT NULL,           -- 1 for the first run, 2.. for reruns of the same commit
    metric        REAL,
    metrics_json  TEXT NOT NULL DEFAULT '{}',
    exit_code     INTEGER,
    timed_out     INTEGER NOT NULL DEFAULT 0,
    wall_seconds  REAL,
    log_path      TEXT NOT NULL DEFAULT '',
    finished_at   REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_experiment ON runs (experiment_id, n);
CREATE TABLE IF NOT EXISTS proposals (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    kind          TEXT NOT NULL,              -- propose | fix
    status        TEXT NOT NULL,              -- pending | used | failed | duplicate | stale
    proposer      TEXT NOT NULL,
    model         TEXT NOT NULL DEFAULT '',
    branch        TEXT NOT NULL,
    parent        TEXT NOT NULL,              -- the commit it was written against
    description   TEXT NOT NULL DEFAULT '',
    reasoning     TEXT NOT NULL DEFAULT '',
    edits_json    TEXT NOT NULL DEFAULT '[]',
    prompt        TEXT NOT NULL DEFAULT '',
    response      TEXT NOT NULL DEFAULT '',
    tokens_in     INTEGER NOT NULL DEFAULT 0,
    tokens_out    INTEGER NOT NULL DEFAULT 0,
    cost_usd      REAL,
    latency_s     REAL NOT NULL DEFAULT 0,
    attempts      INTEGER NOT NULL DEFAULT 1,
    error         TEXT NOT NULL DEFAULT '',
    experiment_id INTEGER,
    fix_of        INTEGER,                    -- the crashed experiment a fix is for
    created_at    REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS curves (
    experiment_id INTEGER NOT NULL,
    n             INTEGER NOT NULL,           -- the run, as in runs.n
    step          INTEGER NOT NULL,
    fraction      REAL NOT NULL,              -- of the budget
    loss          REAL,                       -- smoothed training loss (NULL: not finite)
    tokens_per_second REAL,
    seconds       REAL                        -- harness clock since the run's first progress line
);
CREATE INDEX IF NOT EXISTS curves_run ON curves (experiment_id, n);
CREATE TABLE IF NOT EXISTS verifications (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    branch        TEXT NOT NULL,
    baseline      TEXT NOT NULL,              -- the two commits re-measured against each other
    best          TEXT NOT NULL,
    result_json   TEXT NOT NULL DEFAULT '{}', -- runs, gains with their intervals, record checks, ablation
    created_at    REAL NOT NULL,
    finished_at   REAL
);
"""

# Columns added after the first ledgers were written, (table, column, declaration): applied to a
# ledger that lacks them, in this order. Add to the end; never change a line once released.
_MIGRATIONS = (
    ("experiments", "proposal_id", "INTEGER"),
    ("experiments", "proposer", "TEXT NOT NULL DEFAULT ''"),
    ("proposals", "tokens_cached", "INTEGER NOT NULL DEFAULT 0"),  # input tokens the API served from its cache
)

_PROPOSAL_COLUMNS = ("kind", "status", "proposer", "model", "branch", "parent", "description", "reasoning",
                     "edits_json", "prompt", "response", "tokens_in", "tokens_out", "tokens_cached", "cost_usd", "latency_s",
                     "attempts", "error", "experiment_id", "fix_of", "created_at")


def _create(db: sqlite3.Connection) -> None:
    """The schema, then the migrations a ledger made before them still needs."""
    db.executescript(_SCHEMA)
    for table, column, declaration in _MIGRATIONS:
        if column not in {row[1] for row in db.execute(f"PRAGMA table_info({table})")}:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")


class LedgerError(RuntimeError):
    """A write to a ledger opened read-only, or a record that cannot be read."""


class Ledger:
    def __init__(self, path: Path, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        if not readonly:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._open()

    def _open(self) -> None:
        self._rows: dict[int, Experiment] | None = None  # the writer's copy of every experiment, read once
        self._runs: dict[int, list[float]] | None = None  # valid run metrics by experiment (a writer's)
        if self.readonly and not self.path.exists():  # nothing recorded yet: an empty record, written nowhere
            self.db = sqlite3.connect(":memory:", isolation_level=None)
            self.db.row_factory = sqlite3.Row
            _create(self.db)
            self._identity = None
            return
        if self.readonly:  # a reader never changes the file, not even its journal mode
            self.db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30, isolation_level=None)
            self.db.row_factory = sqlite3.Row
            self._identity = _file_identity(self.path)
            return
        self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)  # autocommit; WAL keeps writes atomic
        self.db.row_factory = sqlite3.Row  # rows know their column names
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        _create(self.db)
        self._identity = _file_identity(self.path)

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _write(self, sql: str, args: tuple = ()):
        if self.readonly:
            raise LedgerError(f"the ledger {self.path} was opened read-only")
        return self.db.execute(sql, args)

    def _write_many(self, sql: str, rows: list[tuple]) -> None:
        """Many rows in one transaction: one sync to disk, not one per row (autocommit would)."""
        self._write("BEGIN IMMEDIATE")
        try:
            self.db.executemany(sql, rows)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def _cached(self) -> dict[int, Experiment] | None:
        """Every experiment by id, for a writable ledger: a study holds the workspace's lock, so it is
        the only writer, and each of its writes refreshes the row it changed (no re-reading per ask)."""
        if self.readonly:
            return None
        if self._rows is None:
            self._rows = {row["id"]: self._experiment(row)
                          for row in self.db.execute("SELECT * FROM experiments ORDER BY id")}
        return self._rows

    def _refresh(self, exp_id: int) -> None:
        if self._rows is not None:
            row = self.db.execute("SELECT * FROM experiments WHERE id = ?", (exp_id,)).fetchone()
            self._rows[exp_id] = self._experiment(row)

    def guard(self) -> bool:
        """If the file was deleted or replaced behind our back (a run without a sandbox can),
        write what this open connection still holds back to the path. True if it had to."""
        if self.readonly or _file_identity(self.path) == self._identity:
            return False
        for suffix in ("", "-wal", "-shm"):
            Path(str(self.path) + suffix).unlink(missing_ok=True)
        restored = sqlite3.connect(self.path)
        with restored:
            self.db.backup(restored)
        restored.close()
        self.db.close()
        self._open()
        return True

    def close(self) -> None:
        self.db.close()

    def start(self, branch: str, parent: str, description: str, proposal_id: int | None = None,
              proposer: str = "", commit: str | None = None) -> int:
        """A new experiment, running. `commit` when it exists already (a study's candidates do)."""
        self._write("BEGIN IMMEDIATE")  # the experiment and the use of its proposal are recorded together
        try:
            cur = self.db.execute(
                "INSERT INTO experiments (branch, parent, commit_sha, description, status, started_at, proposal_id,"
                " proposer) VALUES (?, ?, ?, ?, 'running', ?, ?, ?)",
                (branch, parent, commit, description, time.time(), proposal_id, proposer))
            if proposal_id is not None:
                self.db.execute("UPDATE proposals SET status = 'used', experiment_id = ? WHERE id = ?",
                                (cur.lastrowid, proposal_id))
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self._refresh(int(cur.lastrowid))
        return int(cur.lastrowid)

    def add_run(self, exp_id: int, n: int, run: RunRecord) -> None:
        self._write(
            "INSERT INTO runs (experiment_id, n, metric, metrics_json, exit_code, timed_out, wall_seconds, log_path,"
            " finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (exp_id, n, run.metric, json.dumps(_finite(run.metrics)), run.exit_code, int(run.timed_out),
             run.wall_seconds, run.log_path, time.time()))
        if self._runs is not None and run.metric is not None:
            self._runs.setdefault(exp_id, []).append(run.metric)

    def _run_values(self) -> dict[int, list[float]]:
        if self._runs is not None:
            return self._runs
        runs: dict[int, list[float]] = {}
        for exp_id, metric in self.db.execute(
                "SELECT experiment_id, metric FROM runs WHERE metric IS NOT NULL ORDER BY experiment_id, n"):
            runs.setdefault(exp_id, []).append(metric)
        if not self.readonly:
            self._runs = runs
        return runs

    def baseline_warmups(self, branch: str) -> list[float]:
        """The warm-up the harness measured in each run of the branch's baseline (what bounds the others')."""
        ids = [e.id for e in self.experiments(branch) if e.incumbent is None and e.status == Status.KEEP]
        if not ids:
            return []
        rows = self.db.execute(f"SELECT metrics_json FROM runs WHERE experiment_id IN ({', '.join('?' * len(ids))})",
                               ids)
        values = [json.loads(row[0] or "{}").get("harness_warmup_seconds") for row in rows]
        return [v for v in values if isinstance(v, (int, float))]

    def run_metrics(self, exp_id: int) -> list[float]:
        """The valid metric of every run of one experiment, in order."""
        return list(self._run_values().get(exp_id, []))

    def run_groups(self) -> list[list[float]]:
        """Valid metrics of repeated runs of the same code, one list per code that ran more than once
        (for the noise). An experiment that changed only seeds or comments counts as a repeat of its
        parent: that is exactly run-to-run noise, measured for free."""
        first_with_commit: dict[str, int] = {}
        same_code_as: dict[int, int] = {}
        for exp in self.experiments():
            if exp.commit:
                first_with_commit.setdefault(exp.commit, exp.id)
            change = exp.metrics.get("change")
            same_code_as[exp.id] = first_with_commit.get(exp.parent, exp.id) if change else exp.id
        groups: dict[int, list[float]] = {}
        for exp_id, metrics in sorted(self._run_values().items()):
            groups.setdefault(same_code_as.get(exp_id, exp_id), []).extend(metrics)
        return [g for g in groups.values() if len(g) >= 2]

    def add_proposal(self, record: ProposalRecord) -> int:
        """A new proposal (its `id` is the ledger's to give: the one returned)."""
        cur = self._write(f"INSERT INTO proposals ({', '.join(_PROPOSAL_COLUMNS)})"
                          f" VALUES ({', '.join('?' * len(_PROPOSAL_COLUMNS))})",
                          tuple(getattr(record, name) for name in _PROPOSAL_COLUMNS))
        return int(cur.lastrowid)

    def set_proposal_status(self, proposal_id: int, status: str, error: str = "") -> None:
        self._write("UPDATE proposals SET status = ?, error = CASE WHEN ? = '' THEN error ELSE ? END WHERE id = ?",
                    (status, error, error, proposal_id))

    def proposals(self, status: str | None = None, branch: str | None = None) -> list[ProposalRecord]:
        query, args = "SELECT * FROM proposals WHERE 1=1", []
        if status:
            query, args = query + " AND status = ?", [*args, status]
        if branch:
            query, args = query + " AND branch = ?", [*args, branch]
        return [ProposalRecord(**{**dict(row), "status": ProposalStatus(row["status"])})
                for row in self.db.execute(query + " ORDER BY id", args)]

    def runs(self, exp_id: int) -> list[dict]:
        """Every run of one experiment: n, metric, metrics, log path, exit code."""
        rows = self.db.execute("SELECT n, metric, metrics_json, log_path, exit_code, wall_seconds FROM runs"
                               " WHERE experiment_id = ? ORDER BY n", (exp_id,))
        return [{**dict(row), "metrics": json.loads(row["metrics_json"] or "{}")} for row in rows]

    def add_curve(self, exp_id: int, n: int, points: list[Point]) -> None:
        """Points of one run's training curve, appended (a live run's arrive a few at a time)."""
        rows = [(exp_id, n, p.step, p.fraction, p.loss if math.isfinite(p.loss) else None, p.tokens_per_second,
                 p.seconds) for p in points]
        if rows:
            self._write_many("INSERT INTO curves (experiment_id, n, step, fraction, loss, tokens_per_second, seconds)"
                             " VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

    def curves(self, exp_ids: list[int] | None = None) -> dict[int, dict[int, list[Point]]]:
        """Training curves by experiment, then by run (all of them, or those of `exp_ids`)."""
        if not self._has_table("curves"):
            return {}
        query, args = "SELECT * FROM curves", ()
        if exp_ids is not None:
            query += f" WHERE experiment_id IN ({','.join('?' * len(exp_ids))})"
            args = tuple(exp_ids)
        found: dict[int, dict[int, list[Point]]] = {}
        for row in self.db.execute(query + " ORDER BY experiment_id, n, rowid", args):
            loss = row["loss"] if row["loss"] is not None else math.inf
            point = Point(row["step"], row["fraction"], loss, row["tokens_per_second"], row["seconds"])
            found.setdefault(row["experiment_id"], {}).setdefault(row["n"], []).append(point)
        return found

    def start_verification(self, branch: str, baseline: str, best: str) -> int:
        cur = self._write("INSERT INTO verifications (branch, baseline, best, created_at) VALUES (?, ?, ?, ?)",
                          (branch, baseline, best, time.time()))
        return int(cur.lastrowid)

    def finish_verification(self, verification: int, result: dict) -> None:
        self._write("UPDATE verifications SET result_json = ?, finished_at = ? WHERE id = ?",
                    (json.dumps(result), time.time(), verification))

    def verifications(self, branch: str | None = None) -> list[dict]:
        """Finished verifications, oldest first, with their results."""
        if not self._has_table("verifications"):
            return []
        query = "SELECT * FROM verifications WHERE finished_at IS NOT NULL" + (" AND branch = ?" if branch else "")
        rows = self.db.execute(query + " ORDER BY id", (branch,) if branch else ())
        return [{**dict(row), "result": json.loads(row["result_json"])} for row in rows]

    def _has_table(self, name: str) -> bool:
        return self.db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() \
            is not None

    def latest_reasoning(self) -> dict | None:
        """The newest proposal that gave its reasoning (what the dashboard shows of the agent)."""
        row = self.db.execute("SELECT description, reasoning, model, proposer, created_at FROM proposals"
                              " WHERE reasoning != '' ORDER BY id DESC LIMIT 1").fetchone()
        return dict(row) if row else None

    def proposer_records(self, branch: str) -> dict[str, tuple[int, int]]:
        """For each proposer of the branch's experiments: (experiments kept, experiments finished)."""
        records: dict[str, tuple[int, int]] = {}
        for exp in self.experiments(branch):
            if exp.proposer and exp.status != Status.RUNNING:
                keeps, total = records.get(exp.proposer, (0, 0))
                records[exp.proposer] = (keeps + (exp.status == Status.KEEP), total + 1)
        return records

    def set_commit(self, exp_id: int, commit: str, diff: str, attempt_ref: str) -> None:
        self._write("UPDATE experiments SET commit_sha = ?, diff = ?, attempt_ref = ? WHERE id = ?",
                    (commit, diff, attempt_ref, exp_id))
        self._refresh(exp_id)

    def set_log_path(self, exp_id: int, log_path: str) -> None:
        self._write("UPDATE experiments SET log_path = ? WHERE id = ?", (log_path, exp_id))
        self._refresh(exp_id)

    def finish(self, exp_id: int, outcome: Outcome) -> None:
        if outcome.status not in FINISHED:
            raise ValueError(f"status must be keep, discard or crash, not {outcome.status!r}")
        self._write(
            "UPDATE experiments SET status = ?, metric = ?, incumbent = ?, metrics_json = ?, reason = ?, exit_code = ?,"
            " timed_out = ?, wall_seconds = ?, finished_at = ? WHERE id = ?",
            (str(outcome.status), outcome.metric, outcome.incumbent, json.dumps(_finite(outcome.metrics)),
             outcome.reason, outcome.exit_code, int(outcome.timed_out), outcome.wall_seconds, time.time(), exp_id))
        self._refresh(exp_id)

    def get(self, exp_id: int) -> Experiment | None:
        cached = self._cached()
        if cached is not None:
            return cached.get(exp_id)
        row = self.db.execute("SELECT * FROM experiments WHERE id = ?", (exp_id,)).fetchone()
        return self._experiment(row) if row else None

    def experiments(self, branch: str | None = None) -> list[Experiment]:
        cached = self._cached()
        if cached is not None:
            return [e for e in cached.values() if branch is None or e.branch == branch]
        if branch is None:
            rows = self.db.execute("SELECT * FROM experiments ORDER BY id").fetchall()
        else:
            rows = self.db.execute("SELECT * FROM experiments WHERE branch = ? ORDER BY id", (branch,)).fetchall()
        return [self._experiment(row) for row in rows]

    def running(self) -> list[Experiment]:
        return [e for e in self.experiments() if e.status == Status.RUNNING]

    def incumbent(self, branch: str) -> Experiment | None:
        """The latest kept experiment of `branch`: the one its head stands on."""
        kept = [e for e in self.experiments(branch) if e.status == Status.KEEP]
        return kept[-1] if kept else None

    def _experiment(self, row: sqlite3.Row) -> Experiment:
        data = dict(row)
        return Experiment(
            id=data["id"], branch=data["branch"], parent=data["parent"], commit=data["commit_sha"],
            description=data["description"], status=Status(data["status"]), metric=data["metric"],
            incumbent=data["incumbent"], metrics=json.loads(data["metrics_json"]), reason=data["reason"],
            diff=data["diff"], log_path=data["log_path"], attempt_ref=data["attempt_ref"],
            exit_code=data["exit_code"], timed_out=bool(data["timed_out"]), wall_seconds=data["wall_seconds"],
            started_at=data["started_at"], finished_at=data["finished_at"], proposal_id=data.get("proposal_id"),
            proposer=data.get("proposer") or "")


def best_so_far(experiments: list[Experiment], direction: str = "minimize") -> list[float | None]:
    """The best kept metric after each experiment, the way the task counts better."""
    return running_best(((e.status, e.metric) for e in experiments), direction)


def _finite(metrics: dict) -> dict:
    """JSON has no NaN or infinity: keep such values as text so nothing is lost."""
    return {k: (v if not isinstance(v, float) or math.isfinite(v) else str(v)) for k, v in metrics.items()}


def _file_identity(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
        return stat.st_dev, stat.st_ino
    except OSError:
        return None

