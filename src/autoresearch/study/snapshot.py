"""Snapshots: what a study shows its proposers, read from git and the ledger once and cached.

Frozen files never change during a study, so what they offer is read once; the files and knob
values of a commit never change either, so each commit is read once.
"""

from __future__ import annotations

from types import MappingProxyType

from autoresearch.core.knobs import knob_values
from autoresearch.core.records import Experiment
from autoresearch.core.task import Task
from autoresearch.propose.base import Snapshot
from autoresearch.propose.context import frozen_api
from autoresearch.store.workspace import Workspace


class Snapshots:
    def __init__(self, ws: Workspace, task: Task):
        self.ws, self.task = ws, task
        self._frozen_api: dict[str, str] | None = None
        self._files: dict[str, dict[str, str]] = {}
        self._knobs: dict[str, dict] = {}  # commit -> knob values, grown as commits appear

    @property
    def frozen_api(self) -> dict[str, str]:
        """What each frozen Python file offers: read when a proposer first needs it, then kept."""
        if self._frozen_api is None:
            self._frozen_api = {name: frozen_api((self.ws.root / name).read_text(errors="replace"))
                                for name in self.task.frozen
                                if name.endswith(".py") and (self.ws.root / name).is_file()}
        return self._frozen_api

    def files_at(self, commit: str) -> dict[str, str]:
        if commit not in self._files:
            self._files[commit] = self.ws.files_at(commit, self.task.editable)
        return self._files[commit]

    def knob_values(self, commit: str) -> dict:
        """The knob values the main editable file declares at `commit` ({} if it cannot be read)."""
        if commit not in self._knobs:
            self._knobs[commit] = knob_values(self.files_at(commit), self.task)
        return self._knobs[commit]

    def take(self, parent: str, history: list[Experiment], in_flight: list[str] = (), notes: list[str] = (),
             files: dict[str, str] | None = None) -> Snapshot:
        """A snapshot to propose on top of `parent` (or to fix `files`, a crashed candidate's)."""
        for exp in history:
            if exp.commit and exp.commit not in self._knobs:
                self.knob_values(exp.commit)
        return Snapshot(task=self.task, program=self.ws.program(self.task), files=files or self.files_at(parent),
                        parent=parent, frozen_api=self.frozen_api, history=list(history),
                        knob_values=MappingProxyType(self._knobs), in_flight=list(in_flight), notes=list(notes))
