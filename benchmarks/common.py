"""What the benchmarks share: throwaway workspaces, made the same way everywhere."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from autoresearch.data.build import prepare_data
from autoresearch.store.templates import init_workspace
from autoresearch.store.workspace import Workspace

ROOT = Path(__file__).resolve().parent.parent
TINY_COMMAND = 'command = ["{python}", "train.py"]'
TINY_EVALUATION = 'command = ["{python}", "-P", "prepare.py", "evaluate", "{handoff}"]'


@contextmanager
def worktree_of(rev: str, prefix: str) -> Iterator[tuple[str, Path]]:
    """`rev` checked out in a temporary git worktree /tmp/<prefix>-<rev>, removed afterwards: its short
    name and its path (for measuring an older commit side by side with the working tree)."""
    short = subprocess.run(["git", "rev-parse", "--short", rev], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.strip()
    path = Path(f"/tmp/{prefix}-{short}")
    if path.exists():
        subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=ROOT, check=True)
    subprocess.run(["git", "worktree", "add", "--detach", str(path), short], cwd=ROOT, check=True, capture_output=True)
    try:
        yield short, path
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=ROOT, check=True)


def tree_env(tree: Path) -> dict[str, str]:
    """An environment whose Python imports autoresearch (and the benchmarks' modules) from `tree`, checked."""
    env = dict(os.environ, PYTHONPATH=f"{tree / 'src'}{os.pathsep}{tree / 'benchmarks'}")
    where = subprocess.run([sys.executable, "-c", "import autoresearch; print(autoresearch.__file__)"],
                           env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert Path(where).is_relative_to(tree / "src"), f"autoresearch from {where}, not {tree}"
    return env


def commit_all(ws: Path, message: str) -> None:
    subprocess.run(["git", "-C", str(ws), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(ws), "commit", "-qm", message], check=True)


def stub_workspace(root: Path, name: str, command: str | None = None, *, sandbox: str = "none",
                   extra_toml: str = "", files: dict[str, str] | None = None) -> Path:
    """The tiny template with its training command replaced by `command` (a TOML `command = [...]`
    line) and no trusted evaluation: the command prints its own metric. `command` None keeps the
    tiny task as it is, evaluation included."""
    ws = init_workspace(root / name, template="tiny", tag="bench")
    for file, text in (files or {}).items():
        (ws / file).write_text(text)
    toml = ws / "autoresearch.toml"
    text = toml.read_text()
    if command is not None:
        text = text.replace(TINY_COMMAND, command).replace(TINY_EVALUATION, "")
    text = text.replace('kind = "auto"', f'kind = "{sandbox}"')
    toml.write_text(text + extra_toml)
    commit_all(ws, "benchmark task")
    return ws


def llm_workspace(root: Path, name: str, *, preset: str = "cpu", budget: float | None = None, tag: str = "bench",
                  extra_toml: str = "", dataset: str | None = None) -> Path:
    """The llm template with a preset, its data prepared (cached) and linked."""
    ws = init_workspace(root / name, template="llm", preset=preset, tag=tag, budget_seconds=budget, dataset=dataset)
    if extra_toml:
        with open(ws / "autoresearch.toml", "a") as f:
            f.write(extra_toml)
        commit_all(ws, "benchmark settings")
    task = Workspace(ws).task()
    if task.data.dataset:
        Workspace(ws).link_data(prepare_data(task.data.dataset, task.data.vocab_size, log=lambda m: None))
    return ws


def ledger(ws: Path):
    return Workspace(ws).open_ledger(readonly=True)
