"""The random proposer: no model, one declared knob moved to a random nearby value.

The offline default, and a yardstick for the others. A training script that declares no knobs
(or declares them so they cannot be read) gives it nothing to do, ever: that is a fatal error,
said once, not retried.
"""

from __future__ import annotations

import random

from autoresearch.core.knobs import Knob, KnobError, task_knobs
from autoresearch.propose.base import Draft, Snapshot
from autoresearch.propose.edits import Proposal, knob_edit

NOT_SEARCHED = ("TORCH_COMPILE",)  # a speed switch, not a hyperparameter


def searchable_knobs(snapshot: Snapshot, proposer: str,
                     exclude: tuple[str, ...] = NOT_SEARCHED) -> tuple[dict[str, Knob], Draft | None]:
    """The knobs the main editable file and `[knobs]` declare, or a fatal draft that says why there
    are none (asking again cannot help: only an edit by a person or a model can)."""
    path = snapshot.main_file
    try:
        knobs = {k.name: k for k in task_knobs(snapshot.files, snapshot.task) if k.name not in exclude}
    except KnobError as exc:
        return {}, Draft(None, proposer, error=str(exc), attempts=1, fatal=True)
    if not knobs:
        return {}, Draft(None, proposer, attempts=1, fatal=True,
                         error=f"{path} declares no knobs ('NAME = value  # knob: float A..B') and autoresearch.toml "
                               f"has no [knobs]; {proposer} needs them: declare some, or let a model propose "
                               "(--model, --base-url)")
    return knobs, None


class RandomProposer:
    def __init__(self, seed: int | None = None, spread: float = 1.0, exclude: tuple[str, ...] = NOT_SEARCHED,
                 name: str = "random"):
        self.rng = random.Random(seed)
        self.spread = spread
        self.exclude = set(exclude)
        self.name = name

    def propose(self, snapshot: Snapshot) -> Draft:
        path = snapshot.main_file
        found, failed = searchable_knobs(snapshot, self.name, tuple(self.exclude))
        if failed:
            return failed
        knobs = list(found.values())
        tried = {e.description for e in snapshot.history} | set(snapshot.in_flight)
        for attempt in range(1, 51):
            knob = self.rng.choice(knobs)
            value = knob.sample(self.rng, near=knob.current, spread=self.spread)
            description = f"{knob.name} {knob.current!r} -> {value!r}"
            if value != knob.current and description not in tried:
                edit = knob_edit(path, knob, value)
                return Draft(Proposal(description, f"random step of one knob ({knob.kind}, {knob.scale})", [edit]),
                             self.name, attempts=attempt)
        return Draft(None, self.name, attempts=50, error="no untried knob value found in 50 draws")

    def fix(self, snapshot: Snapshot, crashed, log_tail: str) -> Draft | None:
        return None  # a random step has no bug to fix: the next random step is the remedy
