"""Research efficiency: best-so-far metric against experiment number, per proposer.

Random search and Optuna's TPE over the knobs train.py declares (and an LLM when --model or
--base-url is given), each from the same fresh workspace, on the `cpu` preset by default. Prints
a table and writes a plot.

    python benchmarks/search_efficiency.py [--experiments 12] [--budget 60] [--out search_efficiency.png]
"""

from __future__ import annotations

import argparse
import tempfile
from contextlib import ExitStack
from pathlib import Path

from common import ledger, llm_workspace, stub_workspace

from autoresearch.core.best import best_value
from autoresearch.core.events import EventBus
from autoresearch.core.settings import AgentSettings
from autoresearch.interfaces.plain import PlainPrinter
from autoresearch.propose.agent import make_proposer, resolve
from autoresearch.study.study import StudyOptions, run_study


def best_so_far(workspace: Path) -> list[float]:
    """The best value seen after each experiment, kept or not (this compares proposers, not judges)."""
    with ledger(workspace) as record:
        values = [e.metric for e in record.experiments()]
    return [best_value([v for v in values[:i + 1] if v is not None]) for i in range(len(values))]


def run_one(provider: str, args, root: Path) -> list[float]:
    judge = f'\n[judge]\nrule = "{args.judge}"\nbaseline_runs = 1\n'  # one run each: proposers, not judges
    ws = (llm_workspace(root, provider, preset=args.preset, budget=args.budget, tag=provider, extra_toml=judge)
          if args.template == "llm" else stub_workspace(root, provider, extra_toml=judge, sandbox="auto"))
    if provider == "llm":
        settings = resolve(AgentSettings(), model=args.model, base_url=args.base_url)
    else:
        settings = resolve(AgentSettings(), provider=provider, seed=args.seed)
    with ExitStack() as stack:
        proposer = make_proposer(settings, stack)
        run_study(ws, [proposer], StudyOptions(max_experiments=args.experiments, failure_backoff_s=1.0),
                  bus=EventBus(PlainPrinter(lambda text: print(f"[{provider}] {text}", flush=True))))
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
