"""Null-edit benchmark: how often does each keep rule keep a change that changes nothing?

On the real `cpu` preset (or --preset/--template), the baseline runs as the judge asks (3 runs),
then N experiments that change nothing that matters: a comment, or the seed. Our rule runs live
(with its grey-zone reruns; the seed/comment detector is switched off so the noise rule alone is
measured). The original rule (keep if strictly lower than the best so far, after one run) is
replayed on the first run of the same experiments. Prints both false-keep rates side by side.

    python benchmarks/null_edits.py [--experiments 20] [--budget 60] [--workspace DIR]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from common import ledger, llm_workspace, stub_workspace

from autoresearch.study.manual import run_experiment


def null_edit(train: Path, i: int) -> str:
    """A comment (even i) or a seed change (odd i): nothing a good judge should keep."""
    lines = train.read_text().splitlines()
    if i % 2 == 0:
        lines.append(f"# null edit {i}: a comment")
        description = f"null edit {i}: add a comment"
    else:
        index = next(j for j, line in enumerate(lines) if line.startswith("SEED = "))
        lines[index] = f"SEED = {1000 + i}"
        description = f"null edit {i}: seed {1000 + i}"
    train.write_text("\n".join(lines) + "\n")
    return description


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=20)
    parser.add_argument("--template", default="llm")
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--budget", type=float, help="seconds (default: the preset's)")
    parser.add_argument("--workspace", type=Path, help="keep the workspace here (default: a temporary directory)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        judge = "\n[judge]\nnever_keep_seed_only = false  # measure the noise rule alone\n"
        root = args.workspace or Path(tmp)
        ws = (llm_workspace(root, "ws", preset=args.preset, budget=args.budget, tag="null", extra_toml=judge)
              if args.template == "llm" else stub_workspace(root, "ws", extra_toml=judge, sandbox="auto"))
        started = time.time()
        base = run_experiment(ws, "baseline")
        print(f"baseline: {base.metric:.6f} ({base.runs} runs) {base.reason}", flush=True)
        for i in range(args.experiments):
            description = null_edit(ws / "train.py", i)
            result = run_experiment(ws, description)
            print(f"{description}: {result.status} {result.metric:.6f} ({result.runs} runs) {result.reason}", flush=True)
        with ledger(ws) as record:
            experiments = record.experiments()
            baseline_runs = record.run_metrics(experiments[0].id)
            first_runs = {e.id: record.run_metrics(e.id)[0] for e in experiments[1:] if record.run_metrics(e.id)}
            all_runs = sum(len(record.run_metrics(e.id)) for e in experiments)
    nulls = experiments[1:]
    ours = sum(e.status == "keep" for e in nulls)
    originals = []
    for start in baseline_runs:  # the original rule on the same first runs, from each possible baseline draw
        best, kept = start, 0
        for e in nulls:
            if first_runs[e.id] < best:
                best, kept = first_runs[e.id], kept + 1
        originals.append(kept)
    original = statistics.fmean(originals)
    spread = statistics.stdev(first_runs.values())
    minutes = (time.time() - started) / 60
    print(f"\n{len(nulls)} null edits on the {args.preset if args.template == 'llm' else args.template} task, "
          f"{all_runs} runs in {minutes:.0f} min; sd of the null edits' first runs {spread:.6f}; "
          f"last sigma estimate {nulls[-1].metrics.get('sigma')}")
    print(f"false-keep rate, original rule (strictly lower, one run): {original:.1f}/{len(nulls)} = "
          f"{100 * original / len(nulls):.0f} % on average over the baseline draws {baseline_runs} "
          f"(kept {originals})")
    print(f"false-keep rate, ours (noise rule, grey-zone reruns):     {ours}/{len(nulls)} = {100 * ours / len(nulls):.0f} %")
    print("ours with the seed/comment detector on (the default):      0 % by construction")


if __name__ == "__main__":
    main()
