"""Facts: what a researcher would want on one screen before proposing, as the model reads it.

The task's facts (device and its peak, sequence length, vocabulary, the budget and its kind, the
timeout, the model's size), the noise the judge measures (its sd, from how many runs, whether runs
on different seeds differ at all), and for each experiment what its runs cost: wall time against
the timeout, tokens per second, parameters, peak memory. Pure: task and history in, text out.
"""

from __future__ import annotations

import math

from autoresearch.core.judge import pooled_sigma
from autoresearch.core.records import Experiment
from autoresearch.core.status import Status
from autoresearch.core.task import Task
from autoresearch.propose.briefing import is_number

NEAR_TIMEOUT = 0.8  # a run that took this share of the hard timeout is said to be close to it


def task_facts(task: Task, history: list[Experiment]) -> str:
    """The task's fixed facts, and the machine's as the best run reported them."""
    budget = task.budget
    lines = [f"- metric: {task.metric}, {'lower' if task.direction == 'minimize' else 'higher'} is better",
             f"- budget: {budget.value:g} {budget.kind} of training per run, by the harness's clock; "
             f"a run is killed at {budget.timeout:g} s of wall time (the hard timeout)"]
    data = task.data
    if data.seq_len or data.vocab_size:
        lines.append(f"- data: {data.dataset or 'the template’s'}; sequence length {data.seq_len}, vocabulary "
                     f"{data.vocab_size} tokens" + (f", {data.eval_tokens:,} validation tokens scored"
                                                    if data.eval_tokens else ", every validation token scored"))
    best = _best(history)
    machine = _machine(best.metrics) if best else ""
    if machine:
        lines.append(f"- machine (as the best run reported it): {machine}")
    return "\n".join(lines)


def _machine(metrics: dict) -> str:
    parts = []
    if metrics.get("device"):
        peak = metrics.get("peak_tflops")
        parts.append(f"{metrics['device']}" + (f", peak {peak:g} TFLOP/s" if is_number(peak) else ""))
    if is_number(metrics.get("num_params_M")):
        parts.append(f"the model has {metrics['num_params_M']:g}M parameters")
    return "; ".join(parts)


def noise_text(task: Task, history: list[Experiment]) -> str:
    """The run-to-run noise as the judge measures it, and what a keep needs."""
    groups = [e.metrics["run_metrics"] for e in history
              if isinstance(e.metrics.get("run_metrics"), list) and len(e.metrics["run_metrics"]) >= 2]
    if task.judge.rule == "strict":
        return "The judge keeps a change that is strictly better after one run (rule strict): no noise is measured."
    if not groups:
        return "No run-to-run noise measured yet: the baseline runs several times, on different seeds, to measure it."
    sigma, dof = pooled_sigma(groups)
    runs = sum(len(g) for g in groups)
    if not sigma:
        return (f"Runs of the same code on different seeds gave identical results ({runs} runs of {len(groups)} "
                f"commits): no noise, so any real gain above {task.judge.min_delta:g} is kept.")
    return (f"Run-to-run noise: sd {sigma:.6f} {task.metric}, from {runs} runs of {len(groups)} commits on different "
            f"seeds ({dof} degrees of freedom). A change is kept when its gain beats {task.judge.z:g} sd of the "
            f"difference (a gain of {task.judge.grey_zone:g}-{task.judge.z:g} sd runs again first); each decision's "
            f"gain in sd is in the history (negative: worse than what it was judged against).")


def run_figures(exp: Experiment, timeout: float) -> str:
    """What one experiment's runs cost: wall time (against the timeout when close), throughput, size, memory."""
    m = exp.metrics
    parts = []
    runs = m.get("runs") or 1
    wall = m.get("harness_wall_seconds") if is_number(m.get("harness_wall_seconds")) else exp.wall_seconds
    if is_number(wall) and wall:
        per_run = wall / runs if is_number(runs) and runs else wall
        near = exp.timed_out or per_run >= NEAR_TIMEOUT * timeout
        parts.append(f"{per_run:.0f} s" + (f" of the {timeout:g} s timeout" if near else "") + " per run")
    if is_number(m.get("tokens_per_sec")):
        parts.append(f"{m['tokens_per_sec']:,.0f} tok/s")
    if is_number(m.get("num_params_M")):
        parts.append(f"{m['num_params_M']:g}M params")
    if is_number(m.get("peak_vram_mb")):
        parts.append(f"{m['peak_vram_mb']:,.0f} MB")
    return ", ".join(parts)


def margin_text(exp: Experiment) -> str:
    """The decision's margin (its gain, in sd of the difference: negative is worse), and the runs it rests on."""
    margin, runs = exp.metrics.get("margin"), exp.metrics.get("runs")
    parts = [f"gain {margin:+.1f} sd"] if is_number(margin) and math.isfinite(margin) else []
    if is_number(runs) and runs > 1:
        parts.append(f"mean of {runs:.0f} runs")
    return ", ".join(parts)


def _best(history: list[Experiment]) -> Experiment | None:
    kept = [e for e in history if e.status == Status.KEEP]
    return kept[-1] if kept else None

