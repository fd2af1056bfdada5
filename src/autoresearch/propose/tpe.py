"""TPE over the declared knobs, with Optuna: a classic proposer for offline runs and a yardstick.

Stateless on purpose: each proposal builds a fresh in-memory study from the ledger's finished
experiments (their knob values read from their commits), asks it for the next configuration and
forgets it. So it resumes after any stop and sees experiments other proposers ran.
"""

from __future__ import annotations

import math

from autoresearch.propose.edits import Proposal
from autoresearch.propose.knobs import Knob, KnobError, knob_edit, knob_values_at, parse_knobs
from autoresearch.propose.proposers import Draft, Request

EXCLUDED = ("TORCH_COMPILE",)


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
    name = "tpe"

    def __init__(self, seed: int | None = None, n_startup_trials: int = 5):
        self.seed = seed
        self.n_startup_trials = n_startup_trials
        self._params_by_commit: dict[str, dict] = {}

    def propose(self, request: Request) -> Draft:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        path = request.task.editable[0]
        try:
            knobs = {k.name: k for k in parse_knobs(request.files.get(path, "")) if k.name not in EXCLUDED}
        except KnobError as exc:
            return Draft(None, self.name, error=str(exc), attempts=1)
        if not knobs:
            return Draft(None, self.name, attempts=1, error=f"{path} declares no knobs for TPE to tune")
        distributions = {name: distribution(k) for name, k in knobs.items()}
        direction = "minimize" if request.task.direction == "minimize" else "maximize"
        # a fresh seed per call (a pipelined call sees the same history as the one in flight)
        seed = None if self.seed is None else self.seed + len(request.experiments) + 1000 * len(request.in_flight)
        study = optuna.create_study(direction=direction, sampler=optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=self.n_startup_trials, multivariate=True))
        for exp in request.experiments:
            params = self._params(request, exp.commit, knobs, distributions)
            if params is None:
                continue
            state = optuna.trial.TrialState.COMPLETE if exp.status in ("keep", "discard") and exp.metric is not None \
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

    def fix(self, request, crashed, log_tail):
        return None

    def _params(self, request: Request, commit: str | None, knobs: dict, distributions: dict) -> dict | None:
        """Knob values at `commit`, if every knob is there and within its distribution."""
        if not commit:
            return None
        if commit not in self._params_by_commit:
            self._params_by_commit[commit] = knob_values_at(request.workspace, commit, request.task.editable[0])
        found = self._params_by_commit[commit]
        params = {}
        for name, dist in distributions.items():
            if name not in found or not dist._contains(dist.to_internal_repr(found[name])):
                return None
            params[name] = found[name]
        return params
