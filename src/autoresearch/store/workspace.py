"""Workspace: a git repository holding one research task, and the one place that knows its layout.

The files: editable ones (`train.py`), frozen ones (`prepare.py`, `autoresearch.toml`), the
researcher's `program.md` and `.gitignore`. The harness's state lives in the git-ignored
state directory:

    .autoresearch/ledger.sqlite  the record of every experiment (store/ledger.py)
                  lock           one study, or one `exp`, at a time
                  stop           touch it and a study stops after the experiments in flight
                  data           a link to the prepared data in the cache (`autoresearch prepare`)
                  runs/NNNNN/    one experiment's runs: run.log, run2.log (reruns), eval.log, handoff, scratch, pgid
                  slots/NAME/    a slot's git worktree, where its runs happen (never the workspace itself)
                  cache/         compile caches carried from one run to the next (inductor, triton)
                  verify/NNNN/   the runs of one `autoresearch verify`
                  report/ mlruns/ exports

Experiments happen on the research branch `autoresearch/<tag>`. A candidate is a commit made on
top of its parent without touching the working tree; the branch moves only to a kept one.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from autoresearch.core.errors import UserError
from autoresearch.core.settings import json_schema
from autoresearch.core.task import CONFIG_NAME, Task, load_task
from autoresearch.store import gitops

STATE_DIR = ".autoresearch"  # the only spelling of it in the package
SCHEMA_FILE = f"{STATE_DIR}/autoresearch.schema.json"  # what the first line of autoresearch.toml points editors to
SCHEMA_LINE = f"#:schema ./{SCHEMA_FILE}"  # Taplo / Even Better TOML: complete and check the file with it


class WorkspaceError(UserError):
    """The workspace could not be made or used; the message is one line that says what to do."""


@dataclass(frozen=True)
class RunPaths:
    """Where one run of an experiment leaves its files, all named after its log."""
    log: Path  # run.log for the first run, run2.log, run3.log for reruns

    @property
    def eval_log(self) -> Path:
        return self.log.with_name(self.log.stem.replace("run", "eval") + ".log")

    @property
    def scratch(self) -> Path:  # the one directory training may write
        return self.log.with_name(f"{self.log.stem}.scratch")

    @property
    def handoff(self) -> Path:  # the model handed to the trusted evaluation
        return self.log.with_name(f"{self.log.stem}.handoff")

    @property
    def pgid(self) -> Path:  # the process group and marker of a run in progress
        return self.log.parent / "pgid"


class Workspace:
    def __init__(self, root: Path | str):
        self.root = Path(root).resolve()
        self.state = self.root / STATE_DIR

    def write_schema(self) -> Path:
        """The JSON schema of autoresearch.toml where its first line points (state: never committed)."""
        path = self.root / SCHEMA_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(json_schema(), indent=2) + "\n")
        return path

    @classmethod
    def of(cls, where: Workspace | Path | str) -> Workspace:
        return where if isinstance(where, Workspace) else cls(where)

    @classmethod
    def find(cls, start: Path | str) -> Workspace:
        """The workspace containing `start` (the nearest directory with an autoresearch.toml)."""
        start = Path(start).resolve()
        for candidate in (start, *start.parents):
            if (candidate / CONFIG_NAME).exists():
                return cls(candidate)
        raise WorkspaceError(f"{start} is not inside an autoresearch workspace: run `autoresearch init DIR` first, "
                             "or pass -C DIR")

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Workspace) and other.root == self.root

    def __hash__(self) -> int:
        return hash(self.root)

    # -- layout ----------------------------------------------------------------------------------
    @property
    def ledger_path(self) -> Path:
        return self.state / "ledger.sqlite"

    @property
    def stop_file(self) -> Path:
        return self.state / "stop"

    @property
    def data_link(self) -> Path:
        return self.state / "data"

    @property
    def slots_dir(self) -> Path:
        return self.state / "slots"

    @property
    def cache_dir(self) -> Path:
        return self.state / "cache"

    @property
    def report_dir(self) -> Path:
        return self.state / "report"

    @property
    def mlruns_dir(self) -> Path:
        return self.state / "mlruns"

    @property
    def empty_file(self) -> Path:
        """What private files look like to training (an empty file; a device node would not open)."""
        return self.state / "empty"

    def verify_dir(self, verification: int) -> Path:
        return self.state / "verify" / f"{verification:04d}"

    def run_dir(self, exp_id: int) -> Path:
        return self.state / "runs" / f"{exp_id:05d}"

    def run_paths(self, exp_id: int, run: int = 1) -> RunPaths:
        return RunPaths(self.run_dir(exp_id) / ("run.log" if run == 1 else f"run{run}.log"))

    def relative(self, path: Path) -> str:
        return str(Path(path).relative_to(self.root))

    def data_dir(self) -> Path | None:
        """The prepared data (the link `autoresearch prepare` made), or None."""
        return self.data_link if self.data_link.exists() else None

    def link_data(self, data_dir: Path) -> Path:
        """Point the data link at a prepared data directory in the cache."""
        link = self.data_link
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.is_file():
            link.unlink()
        elif link.is_dir():
            shutil.rmtree(link)
        link.symlink_to(data_dir, target_is_directory=True)
        return link

    def task(self) -> Task:
        return load_task(self.root)

    def program(self, task: Task) -> str:
        path = self.root / task.program
        return path.read_text(errors="replace") if path.is_file() else ""

    def has_ledger(self) -> bool:
        return self.ledger_path.exists()

    def open_ledger(self, readonly: bool = False):
        from autoresearch.store.ledger import Ledger

        return Ledger(self.ledger_path, readonly=readonly)

    @contextmanager
    def lock(self) -> Iterator[None]:
        """One study or `exp` at a time per workspace: a second one gets a clear error, not a race."""
        self.state.mkdir(parents=True, exist_ok=True)
        with open(self.state / "lock", "a+") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.seek(0)
                holder = lock.read().strip() or "another process"
                raise WorkspaceError(f"another experiment is running in {self.root} ({holder}); "
                                     "wait for it or stop it") from None
            lock.truncate(0)
            lock.write(f"pid {os.getpid()}")
            lock.flush()
            yield

    # -- git moves of candidates -------------------------------------------------------------------
    def branch(self) -> str:
        return gitops.current_branch(self.root)

    def prepared_inside(self, outputs: tuple[str, ...]) -> list[str]:
        """Git-ignored paths the repository prepared inside itself (tokenized data, say), top-level
        entries or whole directories as git names them, without its runs' outputs and our state."""
        listed = gitops.git(self.root, "ls-files", "--others", "--ignored", "--exclude-standard", "--directory")
        skip = {STATE_DIR, "results.tsv", "run.log", *(o.strip("/") for o in outputs)}  # ours are outputs too
        return [p.rstrip("/") for p in listed.splitlines()
                if p and p.rstrip("/").split("/")[0] not in skip and not p.endswith((".pyc", ".pyo"))]

    def head(self) -> str:
        return gitops.head(self.root)

    def branch_commit(self, branch: str) -> str:
        """What `branch` points at (read from its loose ref file when there is one: asked after every run)."""
        try:
            sha = (self.root / ".git" / "refs" / "heads" / branch).read_text().strip()
            if len(sha) == 40:
                return sha
        except OSError:
            pass
        return gitops.git(self.root, "rev-parse", f"refs/heads/{branch}")

    def files_at(self, commit: str, paths: list[str]) -> dict[str, str]:
        """The text of `paths` at `commit` ("" for a file it does not have)."""
        return {p: (gitops.file_at(self.root, commit, p) or b"").decode() for p in paths}

    def changed(self, paths: list[str]) -> list[str]:
        """Which of `paths` differ from HEAD in the working tree."""
        return gitops.changed_paths(self.root, paths)

    def commit_working_tree(self, paths: list[str], message: str, allow_empty: bool = False) -> str:
        """Commit the working tree's `paths` on the current branch (`autoresearch exp`)."""
        return gitops.commit_paths(self.root, paths, message, allow_empty=allow_empty)

    def commit_candidate(self, parent: str, files: dict[str, str], message: str) -> str:
        """A commit of `files` on top of `parent`; the working tree, the index and the branch stay put."""
        return gitops.commit_files(self.root, parent, files, message)

    def move_branch(self, branch: str, commit: str) -> None:
        gitops.move_branch(self.root, branch, commit)

    def reset_branch(self, commit: str) -> None:
        gitops.reset_branch(self.root, commit)

    def save_attempt(self, exp_id: int, commit: str) -> str:
        """Keep an attempt's commit reachable under refs/autoresearch/attempts/NNNNN."""
        return gitops.save_attempt_ref(self.root, f"{exp_id:05d}", commit)

    def revert_onto(self, base: str, change: tuple[str, str], message: str) -> str | None:
        return gitops.revert_onto(self.root, base, change, message)

    def resolve(self, ref: str) -> str:
        return gitops.git(self.root, "rev-parse", "--verify", f"{ref}^{{commit}}")

    def diff(self, parent: str, commit: str) -> str:
        return gitops.diff(self.root, parent, commit) if commit != parent else ""
