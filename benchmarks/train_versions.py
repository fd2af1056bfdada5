"""The `cpu` preset's val_bpb after its 60 s budget: this train.py against an earlier revision's.

One workspace of the preset holds both files (the earlier one taken from git, the preset's
hyperparameters applied to it); they run alternately, `--runs` times each, straight through
`python train.py` (no harness: each scores itself on the validation split with the frozen
prepare.py's evaluation), so the machine's drift hits both alike. It prints each run's val_bpb,
steps and tokens/s, and the means: a faster train.py should reach a better (lower) val_bpb.

    python benchmarks/train_versions.py [--rev 58fcdc1] [--runs 3]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import llm_workspace

from autoresearch.store.templates import load_presets, set_hyperparameters

TEMPLATE = "src/autoresearch/templates/llm/train.py"
FIGURES = {"val_bpb": r"^val_bpb:\s+([\d.]+)", "steps": r"^num_steps:\s+(\d+)", "tokens/s": r"^tokens_per_sec:\s+(\d+)"}


def earlier_train_py(rev: str) -> str:
    repo = Path(__file__).resolve().parents[1]
    source = subprocess.run(["git", "-C", str(repo), "show", f"{rev}:{TEMPLATE}"], capture_output=True, text=True,
                            check=True).stdout
    return set_hyperparameters(source, load_presets()["cpu"].train)


def run(ws: Path, script: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, script], cwd=ws, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        sys.exit(f"{script} failed: {out.stderr[-2000:]}")
    return {name: float(re.search(pattern, out.stdout, re.M).group(1)) for name, pattern in FIGURES.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", default="58fcdc1", help="the earlier revision of the llm template's train.py")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ws = llm_workspace(Path(tmp), "versions", preset="cpu")
        (ws / "train_earlier.py").write_text(earlier_train_py(args.rev))
        results: dict[str, list[dict[str, float]]] = {"train.py": [], f"train.py at {args.rev}": []}
        for i in range(args.runs):
            for name, script in zip(results, ("train.py", "train_earlier.py")):
                figures = run(ws, script)
                results[name].append(figures)
                print(f"run {i + 1} {name:20s} " + "  ".join(f"{k} {v:,.4g}" for k, v in figures.items()), flush=True)
    for name, runs in results.items():
        means = {k: statistics.fmean(r[k] for r in runs) for k in FIGURES}
        spread = statistics.stdev(r["val_bpb"] for r in runs) if len(runs) > 1 else 0.0
        print(f"mean  {name:20s} val_bpb {means['val_bpb']:.4f} (sd {spread:.4f})  steps {means['steps']:.1f}  "
              f"tokens/s {means['tokens/s']:,.0f}")


if __name__ == "__main__":
    main()
