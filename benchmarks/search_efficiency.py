"""Research efficiency: best-so-far metric against experiment number, per proposer.

Random search and Optuna's TPE over the knobs train.py declares (and an LLM when --model or
--base-url is given), each from the same fresh workspace, on the `cpu` preset by default. Prints
a table and writes a plot.

    python benchmarks/search_efficiency.py [--experiments 12] [--budget 60] [--out search_efficiency.png]
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from contextlib import ExitStack
from pathlib import Path

from autoresearch.propose.agent import make_proposer, resolve
from autoresearch.data.build import prepare_data
from autoresearch.study.experiment import ledger_for
from autoresearch.study.loop import LoopOptions, run_loop
from autoresearch.core.task import AgentSettings, load_task
from autoresearch.store.workspace import init_workspace, link_data


def best_so_far(workspace: Path) -> list[float]:
    ledger = ledger_for(workspace)
    values = [e.metric for e in ledger.experiments()]
    ledger.close()
    curve, best = [], float("inf")
    for value in values:
        if value is not None:
            best = min(best, value)
        curve.append(best)
    return curve


def run_one(provider: str, args, root: Path) -> list[float]:
    ws = init_workspace(root / provider, template=args.template, preset=args.preset if args.template == "llm" else None,
                        tag=provider, budget_seconds=args.budget)
    with open(ws / "autoresearch.toml", "a") as f:  # one run per experiment: this compares proposers, not judges
        f.write(f'\n[judge]\nrule = "{args.judge}"\nbaseline_runs = 1\n')
    subprocess.run(["git", "-C", str(ws), "commit", "-qam", "benchmark judge"], check=True)
    task = load_task(ws)
    if task.data.dataset:
        link_data(ws, prepare_data(task.data.dataset, task.data.vocab_size, log=lambda m: None))
    if provider == "llm":
        settings = resolve(AgentSettings(), model=args.model, base_url=args.base_url)
    else:
        settings = resolve(AgentSettings(), provider=provider, seed=args.seed)
    with ExitStack() as stack:
        proposer = make_proposer(settings, stack)
        run_loop(ws, proposer, LoopOptions(max_experiments=args.experiments, failure_backoff_s=1.0),
                 on_event=lambda m: print(f"[{provider}] {m}", flush=True))
    return best_so_far(ws)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=12, help="per proposer, the baseline included")
    parser.add_argument("--template", default="llm")
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--budget", type=float)
    parser.add_argument("--judge", default="strict", choices=["strict", "noise"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model")
    parser.add_argument("--base-url")
    parser.add_argument("--out", type=Path, default=Path("search_efficiency.png"))
    args = parser.parse_args()
    providers = ["random", "tpe"] + (["llm"] if args.model or args.base_url else [])
    with tempfile.TemporaryDirectory() as tmp:
        curves = {p: run_one(p, args, Path(tmp)) for p in providers}
    print("\nbest-so-far val_bpb by experiment number (1 = baseline)")
    print("exp  " + "  ".join(f"{p:>9s}" for p in providers))
    for i in range(max(len(c) for c in curves.values())):
        print(f"{i + 1:3d}  " + "  ".join(f"{c[i]:9.6f}" if i < len(c) else " " * 9 for c in curves.values()))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for provider, curve in curves.items():
        ax.step(range(1, len(curve) + 1), curve, where="post", label=provider)
    ax.set_xlabel("experiment")
    ax.set_ylabel("best val_bpb so far")
    ax.set_title(f"search efficiency ({args.preset if args.template == 'llm' else args.template})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"plot: {args.out}")


if __name__ == "__main__":
    main()
