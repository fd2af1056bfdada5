"""TPE over the declared knobs, with Optuna: a classic proposer for offline runs and a yardstick.

Stateless on purpose: each proposal builds a fresh in-memory study from the snapshot's finished
experiments (with the knob values their commits declare), asks it for the next configuration
and forgets it. So it resumes after any stop and learns from experiments other proposers ran.
"""

from __future__ import annotations

import math

from autoresearch.core.knobs import Knob
from autoresearch.core.status import Status
from autoresearch.propose.base import Draft, Snapshot
from autoresearch.propose.edits import Proposal, knob_edit
from autoresearch.propose.search import searchable_knobs


def distribution(knob: Knob):
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if knob.kind == "choice":
        return CategoricalDistribution(list(knob.choices))
    if knob.scale == "pow2":
        low, high = max(1, int(knob.low)), int(knob.high)
        return CategoricalDistribution([2**k for k in range(math.ceil(math.log2(low)), int(math.log2(high)) + 1)])
    log = knob.scale == "log" and knob.low > 0
    if knob.kind == "int":
        return IntDistribution(int(knob.low), int(knob.high), log=log)
    return FloatDistribution(knob.low, knob.high, log=log)


class TPEProposer:
    def __init__(self, seed: int | None = None, n_startup_trials: int = 5, name: str = "tpe"):
        self.seed = seed
        self.n_startup_trials = n_startup_trials
        self.name = name

    def propose(self, snapshot: Snapshot) -> Draft:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        path = snapshot.main_file
        knobs, failed = searchable_knobs(snapshot, self.name)
        if failed:
            return failed
        distributions = {name: distribution(k) for name, k in knobs.items()}
        # a fresh seed per call (a pipelined call sees the same history as the one in flight)
        seed = None if self.seed is None else self.seed + len(snapshot.history) + 1000 * len(snapshot.in_flight)
        study = optuna.create_study(direction=snapshot.task.direction, sampler=optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=self.n_startup_trials, multivariate=True))
        for exp in snapshot.history:
            params = _params(snapshot.knob_values.get(exp.commit or "", {}), distributions)
            if params is None:
                continue
            state = optuna.trial.TrialState.COMPLETE if exp.status in (Status.KEEP, Status.DISCARD) and exp.metric is not None \
                else optuna.trial.TrialState.FAIL
            value = exp.metric if state == optuna.trial.TrialState.COMPLETE else None
            study.add_trial(optuna.trial.create_trial(params=params, distributions=distributions, value=value, state=state))
        trial = study.ask(distributions)
        edits, notes = [], []
        for name, value in trial.params.items():
            knob = knobs[name]
            value = float(f"{value:.4g}") if isinstance(value, float) else value
            if value != knob.current:
                edits.append(knob_edit(path, knob, value))
                notes.append(f"{name} {knob.current!r} -> {value!r}")
        if not edits:
            return Draft(None, self.name, attempts=1, error="TPE proposed the current configuration")
        return Draft(Proposal("tpe: " + "; ".join(notes), f"TPE trial {len(study.trials)}", edits), self.name,
                     model="optuna-tpe", attempts=1)

    def fix(self, snapshot, crashed, log_tail):
        return None


def _params(found: dict, distributions: dict) -> dict | None:
    """The knob values an experiment's commit declared, if every knob is there and within its distribution."""
    params = {}
    for name, dist in distributions.items():
        if name not in found or not dist._contains(dist.to_internal_repr(found[name])):
            return None
        params[name] = found[name]
    return params
