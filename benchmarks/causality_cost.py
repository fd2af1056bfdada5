"""What the causality check costs: the trusted evaluation before and after issue 23's check, side by side.

A fresh `cpu`-preset workspace; train.py trains for a few seconds and hands its model off (as under
the harness); then the frozen `prepare.py evaluate` of the commit before the change (with the
handoff module of that commit) and today's run on that one model, alternately, `--rounds` times:

    before  rows consecutive in a batch; 2 random batches x 2 random cuts of one row (4 probe forwards)
    after   rows dealt out across batches; probes enough for the check's guarantee (44 on this preset)

For each: `eval_seconds` (scoring and probes, as the evaluation prints it), the process's wall and
CPU seconds (start-up, loading, scoring), val_bpb and the cuts checked. Medians and minima, the
median of the per-round ratios after/before (the rounds alternate, so a load that comes and goes
hits both), and the ratio of the fastest runs (on a shared machine, the least disturbed ones).

Then the scoring alone, in one process (less exposed to a shared machine's load): today's
score_bpb with the old check's 4 probe forwards and with today's plan, alternately, CPU seconds.

    python benchmarks/causality_cost.py [--rounds 5] [--train-seconds 10] [--before 9707acd]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import llm_workspace

REPO = Path(__file__).resolve().parents[1]
BEFORE = "9707acd"  # the last commit with the old probe and layout
# Runs a prepare.py with another handoff module in place of autoresearch.run.handoff (the old one's).
LAUNCH = """
import importlib.util, runpy, sys
handoff, script, model = sys.argv[1:4]
if handoff:
    spec = importlib.util.spec_from_file_location("autoresearch.run.handoff", handoff)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
sys.argv = [script, "evaluate", model]
runpy.run_path(script, run_name="__main__")
"""


def git_show(commit: str, path: str) -> str:
    return subprocess.run(["git", "-C", str(REPO), "show", f"{commit}:{path}"], capture_output=True, text=True,
                          check=True).stdout


def handed_off_model(ws: Path, seconds: float) -> Path:
    """train.py's model after `seconds` of training, exported as under the harness."""
    toml = ws / "autoresearch.toml"
    toml.write_text(re.sub(r"(?m)^value = .*$", f"value = {seconds}", toml.read_text(), count=1))
    model = ws.parent / "handoff"
    out = subprocess.run([sys.executable, "train.py"], cwd=ws, capture_output=True, text=True,
                         env={**os.environ, "AUTORESEARCH_HANDOFF": str(model)})
    if out.returncode != 0:
        sys.exit(out.stdout[-2000:] + out.stderr[-2000:])
    return model


def evaluate(ws: Path, script: str, handoff: str, model: Path) -> dict[str, float]:
    """One evaluation process: its summary figures, wall and CPU seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-P", "-c", LAUNCH, handoff, script, str(model)], cwd=ws,
                         capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0 or "causality:        ok" not in out.stdout:
        sys.exit(f"{script}: exit {out.returncode}\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
    figures = {key: float(value) for key, value in re.findall(r"^(\w+):\s+([-\d.]+)$", out.stdout, re.M)}
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {**figures, "wall": wall, "cpu": cpu}


SCORING = """
import importlib.util, resource, statistics, sys, torch
spec = importlib.util.spec_from_file_location("prepare", "prepare.py")
prepare = importlib.util.module_from_spec(spec)
spec.loader.exec_module(prepare)
from autoresearch.run.handoff import CausalityProbe, load_model, plan_probes
forward, (rows, seq_len) = load_model(sys.argv[1])
n_batches = prepare._batch_count(len(prepare._tokens("val")) - 1, rows, seq_len)
seconds = {4: [], None: []}
for i in range(int(sys.argv[2])):
    for n in (4, None) if i % 2 == 0 else (None, 4):
        plan = plan_probes(n_batches, (rows, seq_len), prepare.VOCAB_SIZE, torch.Generator().manual_seed(i), n)
        probe = CausalityProbe(forward, plan, prepare.VOCAB_SIZE)
        before = resource.getrusage(resource.RUSAGE_SELF)
        prepare.score_bpb(forward, rows, seq_len, "cpu", on_batch=probe)
        after = resource.getrusage(resource.RUSAGE_SELF)
        seconds[n].append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        print(f"scoring + {probe.cuts // rows:3d} probe forwards: {seconds[n][-1]:6.2f} CPU s", flush=True)
old, new = statistics.median(seconds[4]), statistics.median(seconds[None])
print(f"median {old:.2f} -> {new:.2f} CPU s: x{new / old:.3f}")
"""


def scoring_alone(ws: Path, model: Path, rounds: int) -> None:
    out = subprocess.run([sys.executable, "-c", SCORING, str(model), str(rounds)], cwd=ws, capture_output=True,
                         text=True)
    print(out.stdout + (out.stderr[-2000:] if out.returncode else ""))


def report(runs: dict[str, list[dict[str, float]]]) -> None:
    names = ("eval_seconds", "wall", "cpu")
    print(f"{'':11}" + "".join(f"{name:>14}" for name in names) + f"{'val_bpb':>12}{'cuts':>7}")
    for label, rows in runs.items():
        for row in rows:
            print(f"{label:11}" + "".join(f"{row[name]:14.2f}" for name in names)
                  + f"{row['val_bpb']:12.6f}{row.get('causality_cuts', 4):7.0f}")
    for summary, pick in (("median", statistics.median), ("min", min)):
        for label, rows in runs.items():
            print(f"{label} {summary}".ljust(11) + "".join(f"{pick(r[n] for r in rows):14.2f}" for n in names))
    per_round = {n: statistics.median(a[n] / b[n] for a, b in zip(runs["after"], runs["before"])) for n in names}
    fastest = {n: min(r[n] for r in runs["after"]) / min(r[n] for r in runs["before"]) for n in names}
    print("ratio".ljust(11) + "".join(f"{per_round[n]:14.3f}" for n in names) + "   median of the rounds' after/before")
    print("ratio".ljust(11) + "".join(f"{fastest[n]:14.3f}" for n in names)
          + "   fastest after / fastest before (the least disturbed by other load)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--train-seconds", type=float, default=10.0)
    parser.add_argument("--before", default=BEFORE, help="the commit whose evaluation is the baseline")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ws = llm_workspace(Path(tmp), "ws", preset="cpu")
        model = handed_off_model(ws, args.train_seconds)
        (ws / "prepare_before.py").write_text(git_show(args.before, "src/autoresearch/templates/llm/prepare.py"))
        old_handoff = Path(tmp) / "handoff_before.py"
        old_handoff.write_text(git_show(args.before, "src/autoresearch/run/handoff.py"))
        runs: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
        for i in range(args.rounds):
            order = [("before", "prepare_before.py", str(old_handoff)), ("after", "prepare.py", "")]
            for label, script, handoff in order if i % 2 == 0 else order[::-1]:
                runs[label].append(evaluate(ws, script, handoff, model))
        report(runs)
        scoring_alone(ws, model, args.rounds)


if __name__ == "__main__":
    main()
