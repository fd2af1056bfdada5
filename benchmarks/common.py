"""What the benchmarks share: throwaway workspaces, made the same way everywhere."""

from __future__ import annotations

import subprocess
from pathlib import Path

from autoresearch.data.build import prepare_data
from autoresearch.store.templates import init_workspace
from autoresearch.store.workspace import Workspace

TINY_COMMAND = 'command = ["{python}", "train.py"]'
TINY_EVALUATION = 'command = ["{python}", "-P", "prepare.py", "evaluate", "{handoff}"]'


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
