"""Device idle time between experiments, with and without pipelining, against a model server
with a fixed artificial latency.

A stub task of fixed duration (each run sleeps BUDGET seconds, then scores its 8 knobs) and a
scripted OpenAI-compatible server on loopback that answers after LATENCY seconds with a change
to one knob (a different one each time). Idle = time between one run's end and the next run's
start, as a share of the budget. Goal with pipelining: <= 2 %.

    python benchmarks/pipelining.py [--budget 3] [--latency 2] [--experiments 8]
"""

from __future__ import annotations

import argparse
import itertools
import random
import re
import sys
import tempfile
from pathlib import Path

from autoresearch.propose.llm import LLMProposer
from autoresearch.propose.models import OpenAIChat
from autoresearch.study.study import StudyOptions, run_study

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from common import ledger, stub_workspace  # noqa: E402
from llm_server import ScriptedLLMServer  # noqa: E402

STUB = '''"""Stub task: fixed duration, a score from 8 knobs."""
import time
X0 = 0.5  # knob: float 0..1
X1 = 0.5  # knob: float 0..1
X2 = 0.5  # knob: float 0..1
X3 = 0.5  # knob: float 0..1
X4 = 0.5  # knob: float 0..1
X5 = 0.5  # knob: float 0..1
X6 = 0.5  # knob: float 0..1
X7 = 0.5  # knob: float 0..1
time.sleep({budget})
score = sum((x - 0.3) ** 2 for x in (X0, X1, X2, X3, X4, X5, X6, X7))
print("---")
print(f"val_bpb: {{score:.6f}}")
'''


def responder_factory():
    counter, rng = itertools.count(), random.Random(0)

    def respond(request: dict) -> str:
        prompt = request["messages"][-1]["content"]
        i = next(counter) % 8
        line = re.search(rf"^X{i} = .*$", prompt, re.MULTILINE).group(0)
        new = f"X{i} = {rng.uniform(0, 1):.3f}  # knob: float 0..1"
        return f"DESCRIPTION: set X{i}\nREASONING: step\n<<<<<<< SEARCH train.py\n{line}\n=======\n{new}\n>>>>>>> REPLACE\n"
    return respond


def measure(budget: float, latency: float, n: int, pipeline: bool) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        ws = stub_workspace(Path(tmp), "ws", 'command = ["{python}", "train.py"]', files={"train.py": STUB.format(budget=budget)})
        with ScriptedLLMServer(responder=responder_factory(), latency=latency) as server:
            model = OpenAIChat("stub", base_url=server.base_url, max_retries=0, timeout=60)
            run_study(ws, [LLMProposer(model)], StudyOptions(max_experiments=n + 1, pipeline=pipeline))
        with ledger(ws) as record:
            experiments = record.experiments()[1:]  # the baseline needs no proposal
            stale = sum(1 for p in record.proposals() if p.status == "stale")
    span = experiments[-1].finished_at - experiments[0].started_at
    busy = sum(e.wall_seconds for e in experiments)
    return (span - busy) / len(experiments), stale


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=3.0)
    parser.add_argument("--latency", type=float, default=2.0)
    parser.add_argument("--experiments", type=int, default=8)
    args = parser.parse_args()
    print(f"stub budget {args.budget:g} s, model latency {args.latency:g} s, {args.experiments} experiments each")
    for pipeline in (False, True):
        idle, stale = measure(args.budget, args.latency, args.experiments, pipeline)
        print(f"pipelining {'on ' if pipeline else 'off'}: idle {idle * 1000:6.0f} ms per experiment = "
              f"{100 * idle / args.budget:5.1f} % of the budget ({stale} stale proposals re-asked)")
    print("goal with pipelining: <= 2 % of the budget")


if __name__ == "__main__":
    main()
