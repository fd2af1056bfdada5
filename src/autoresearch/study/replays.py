"""Replays: a gain measured against a best that has moved on (another slot's keep) is not kept; its
edit is started again on the new best, where it must confirm the gain."""

from __future__ import annotations

import hashlib

from autoresearch.core.records import Experiment
from autoresearch.propose.edits import EditError, with_edits
from autoresearch.study.candidate import Candidate, Launch
from autoresearch.study.snapshot import Snapshots


def content_key(files: dict[str, str]) -> str:
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(path.encode() + b"\0" + files[path].encode() + b"\0")
    return digest.hexdigest()


class Tried:
    """The code of every candidate run on a branch: a candidate whose code ran already is a duplicate."""

    def __init__(self) -> None:
        self.keys: set[str] = set()

    def add(self, files: dict[str, str]) -> None:
        self.keys.add(content_key(files))

    def ran(self, files: dict[str, str], parent_files: dict[str, str]) -> bool:
        """Whether `files` are their parent's (no change) or code run before."""
        return files == parent_files or content_key(files) in self.keys


class Replays:
    def __init__(self, snapshots: Snapshots, editable: list[str], tried: Tried):
        self.snapshots, self.editable, self.tried = snapshots, editable, tried

    def of(self, candidate: Candidate, best: Experiment) -> Launch | None:
        """The candidate's edit on `best`, or None: no edit, it does not apply, or that code already ran."""
        if candidate.proposal is None:
            return None
        best_files = self.snapshots.files_at(best.commit)
        try:
            files = with_edits(best_files, candidate.proposal.edits, self.editable)
        except EditError:
            return None
        if self.tried.ran(files, best_files):
            return None
        first = candidate.replay_of or candidate.exp_id  # a replay of a replay names the first
        description = f"replay of #{first} on #{best.id}: {candidate.proposal.description}"[:200]
        return Launch(files, best.commit, description, candidate.proposal, None, candidate.proposer, best,
                      replay_of=first)
