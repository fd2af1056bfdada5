"""Null-edit benchmark: how often does the judge keep a change that only moves the random trajectory?

On a token-budget `cpu` workspace (a budget that does not move with the machine's load), the
baseline runs as the judge asks, then N experiments that change nothing but the random trajectory,
each in a way the seed-only rule does not see: one more draw from the generator before the model is
built, the initialisation reordered, the data loader given a seed expression. Each runs live through
the real study, judge, sandbox and trusted evaluation, with its grey-zone reruns. Then a real gain
(the batch halved, +0.043 in the study of issue 23) on top of the incumbent: it must still be kept.

Run it on the code under test; for the code of an earlier revision, run this file from a worktree of
it with that worktree's src first on the path (PYTHONPATH=WORKTREE/src): it edits either train.py.

    python benchmarks/null_edits.py [--experiments 21] [--tokens 100000] [--eval-tokens 40000]
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time
from pathlib import Path

from common import commit_all, ledger, llm_workspace

import autoresearch
from autoresearch.study.manual import run_experiment

ANCHOR = "    model = GPT(cfg).to(DEVICE)\n"
LOADER = re.compile(r"^(    loader = make_dataloader\(DEVICE_BATCH_SIZE, MAX_SEQ_LEN, DEVICE)[^\n]*$", re.MULTILINE)
INIT_PAIR = ("        nn.init.normal_(self.wte.weight, std=1.0)\n", "        nn.init.normal_(self.lm_head.weight, std=0.001)\n")


def null_edit(source: str, i: int) -> tuple[str, str]:
    """train.py with the i-th null edit applied to the baseline's text, and its description."""
    kind = i % 3
    if kind == 0:  # one more draw from the generator before the model is built
        draws = i // 3 + 1
        return source.replace(ANCHOR, f"    torch.rand({draws})  # one more draw\n" + ANCHOR), f"null edit {i}: {draws} more draws"
    if kind == 1:  # the initialisation reordered (and shifted by draws, so that each edit differs)
        first, second = INIT_PAIR if INIT_PAIR[0] + INIT_PAIR[1] in source else INIT_PAIR[::-1]
        swapped = source.replace(first + second, second + first)  # either order (a kept swap stays)
        assert swapped != source, "the initialisation lines were not found"
        extra = f"    torch.rand({i // 3})  # and a draw\n" + ANCHOR if i > 1 else ANCHOR
        return swapped.replace(ANCHOR, extra), f"null edit {i}: initialisation reordered"
    edited, n = LOADER.subn(rf"\1, seed=int('{i}' * 2) % 1000)  # a seed expression", source)
    assert n == 1, "the loader line was not found"
    return edited, f"null edit {i}: loader seed expression"


def token_budget(ws: Path, tokens: int, eval_tokens: int) -> None:
    toml = ws / "autoresearch.toml"
    text = re.sub(r'(?m)^kind = "seconds"', 'kind = "tokens"', toml.read_text(), count=1)
    text = re.sub(r"(?m)^value = [\d.]+", f"value = {tokens}", text, count=1)
    text = re.sub(r"(?m)^eval_tokens = \d+", f"eval_tokens = {eval_tokens}", text, count=1)
    text = re.sub(r"(?m)^timeout = [\d.]+", "timeout = 900", text, count=1)  # a token budget's runs may be slow: no matter
    toml.write_text(text)
    commit_all(ws, f"a {tokens:,}-token budget, {eval_tokens:,} evaluation tokens")


def run(ws: Path, description: str) -> object:
    result = run_experiment(ws, description)
    print(f"{description}: {result.status} {result.metric:.6f} ({result.runs} runs) {result.reason}", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=21)
    parser.add_argument("--tokens", type=int, default=100_000, help="the token budget of every run")
    parser.add_argument("--eval-tokens", type=int, default=40_000, help="validation tokens scored (0: all)")
    parser.add_argument("--workspace", type=Path, help="keep the workspace here (default: a temporary directory)")
    args = parser.parse_args()
    print(f"autoresearch from {Path(autoresearch.__file__).parent}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.workspace or Path(tmp)
        ws = llm_workspace(root, "ws", preset="cpu", tag="null")
        token_budget(ws, args.tokens, args.eval_tokens)
        started = time.time()
        run(ws, "baseline")
        for i in range(args.experiments):
            head = (ws / "train.py").read_text()  # the incumbent's (a kept null edit stays)
            text, description = null_edit(head, i)
            (ws / "train.py").write_text(text)
            run(ws, description)
        source = (ws / "train.py").read_text()
        (ws / "train.py").write_text(re.sub(r"(?m)^TOTAL_BATCH_SIZE = \d+", "TOTAL_BATCH_SIZE = 4096", source, count=1))
        gain = run(ws, "a real gain: the batch halved (8,192 -> 4,096 tokens a step)")
        with ledger(ws) as record:
            experiments = record.experiments()
            runs = sum(len(record.run_metrics(e.id)) for e in experiments)
            baseline_runs = record.run_metrics(experiments[0].id)
    nulls = experiments[1:-1]
    kept = sum(e.status == "keep" for e in nulls)
    minutes = (time.time() - started) / 60
    spread = statistics.stdev(baseline_runs) if len(baseline_runs) > 1 else 0.0
    print(f"\n{len(nulls)} null edits on a {args.tokens:,}-token cpu workspace, {runs} runs in {minutes:.0f} min; "
          f"baseline runs {' '.join(f'{x:.6f}' for x in baseline_runs)} (sd {spread:.6f})")
    print(f"false keeps: {kept}/{len(nulls)} = {100 * kept / len(nulls):.0f} %")
    print(f"the batch halved: {gain.status} ({gain.reason})")


if __name__ == "__main__":
    main()
