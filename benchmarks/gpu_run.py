"""One command for a GPU: run a preset (default h100) for a short budget and print tokens/s and MFU.

    python benchmarks/gpu_run.py [--preset h100] [--budget 60] [--dataset shakespeare]

It makes a throwaway workspace, prepares the data (cached), runs one experiment through the
harness and prints the summary. The MFU is against the peak of the GPU actually found.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from autoresearch.core.events import EventBus, RunOutput
from autoresearch.core.task import load_task
from autoresearch.data.build import prepare_data
from autoresearch.run.trial import log_tail
from autoresearch.store.templates import init_workspace, set_hyperparameters
from autoresearch.store.workspace import Workspace
from autoresearch.study.manual import run_experiment


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="h100")
    parser.add_argument("--budget", type=float, default=60.0, help="training seconds")
    parser.add_argument("--dataset", default=None, help="default: the preset's (climbmix for h100)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="override a train.py hyperparameter, e.g. --set WINDOW_PATTERN=L")
    parser.add_argument("--keep", type=Path, help="make the workspace here instead of a temporary directory")
    parser.add_argument("--noncausal", action="store_true",
                        help="then run a second experiment with non-causal attention: the evaluation must refuse it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ws = init_workspace(args.keep or Path(tmp) / "ws", template="llm", preset=args.preset, tag="gpu",
                            dataset=args.dataset, budget_seconds=args.budget)
        task = load_task(ws)
        if args.set:
            overrides = dict(item.split("=", 1) for item in args.set)
            train = ws / "train.py"
            train.write_text(set_hyperparameters(train.read_text(), {k: _literal(v) for k, v in overrides.items()}))
        started = time.time()
        Workspace(ws).link_data(prepare_data(task.data.dataset, task.data.vocab_size))
        print(f"data ready in {time.time() - started:.1f} s", flush=True)
        printer = EventBus(lambda event: isinstance(event, RunOutput) and print(event.line, flush=True))
        result = run_experiment(ws, f"{args.preset} baseline", bus=printer)
        m = result.metrics
        print(f"\nstatus {result.status} ({result.reason}); harness wall {result.wall_seconds:.1f} s "
              f"for a {args.budget:g} s budget")
        if result.status == "crash":
            print(log_tail(result.log_path, 40))
            raise SystemExit(1)
        print(f"preset {args.preset} on {task.data.dataset}: tokens/s {m.get('tokens_per_sec', 0):,.0f} | "
              f"MFU {m.get('mfu_percent', 0):.1f}% | val_bpb {result.metric:.4f} | steps {m.get('num_steps', 0):.0f} | "
              f"peak memory {m.get('peak_vram_mb', 0) / 1024:.1f} GB | params {m.get('num_params_M', 0):.1f}M")
        env = m.get("provenance", {}).get("environment", {})
        print(f"sandbox {env.get('sandbox')} | torch {env.get('torch')} | trusted evaluation {m.get('eval_seconds', 0):.1f} s "
              f"| total_seconds of train.py {m.get('total_seconds', 0):.1f}")
        if args.noncausal:
            train = ws / "train.py"
            train.write_text(train.read_text().replace("is_causal=True", "is_causal=False"))
            cheat = run_experiment(ws, "non-causal attention")
            print(f"non-causal attention: {cheat.status} ({cheat.reason}); invalid={bool(cheat.metrics.get('invalid'))}")


def _literal(text: str):
    """`12` -> 12, `0.5` -> 0.5, anything else stays a string."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


if __name__ == "__main__":
    main()
