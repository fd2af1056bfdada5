"""Training throughput of the `cpu` preset's train.py against a plain PyTorch GPT of the same size.

Both train on the same real batches (Shakespeare, vocab 2048, sequence 256), fp32, on the same
threads, in alternating rounds so machine noise hits both alike. Prints tokens/s and the ratio.
Goal: ours >= 1.0x the plain GPT (and >= 3x the peer's 1,530 tokens/s from BENCHMARKS.md,
which is a figure from another run, not measured here).

    python benchmarks/cpu_throughput.py [--rounds 5] [--steps 3]
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from autoresearch.data.build import prepare_data
from autoresearch.task import load_task
from autoresearch.workspace import init_workspace, link_data

sys.path.insert(0, str(Path(__file__).resolve().parent))
from plain_gpt import PlainGPT  # noqa: E402

PEER_TOKENS_PER_SECOND = 1530


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3, help="optimizer steps per round and model")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ws = init_workspace(Path(tmp) / "ws", template="llm", preset="cpu", tag="bench")
        task = load_task(ws)
        link_data(ws, prepare_data(task.data.dataset, task.data.vocab_size, log=lambda m: None))
        sys.path.insert(0, str(ws))
        train = importlib.import_module("train")
        cfg = train.GPTConfig(vocab_size=train.VOCAB_SIZE, seq_len=train.MAX_SEQ_LEN, depth=train.DEPTH,
                              width=train.DEPTH * train.ASPECT_RATIO, head_dim=train.HEAD_DIM,
                              window_pattern=train.WINDOW_PATTERN)
        ours = train.GPT(cfg)
        ours.init_weights()
        our_optimizers = train.make_optimizers(ours)
        plain = PlainGPT(cfg.vocab_size, cfg.seq_len, cfg.depth, cfg.width, cfg.width // cfg.head_dim)
        plain_optimizer = torch.optim.AdamW(plain.parameters(), lr=1e-3)
        accum = train.TOTAL_BATCH_SIZE // (train.DEVICE_BATCH_SIZE * train.MAX_SEQ_LEN)
        loader = train.make_dataloader(train.DEVICE_BATCH_SIZE, train.MAX_SEQ_LEN, "cpu", seed=0)

        def our_step(micro_batches):
            for x, y in micro_batches:
                (ours(x, y) / accum).backward()
            for opt in our_optimizers:
                opt.step()
            ours.zero_grad(set_to_none=True)

        def plain_step(micro_batches):
            for x, y in micro_batches:
                (plain(x, y) / accum).backward()
            plain_optimizer.step()
            plain_optimizer.zero_grad(set_to_none=True)

        def timed_round(step) -> float:
            """Seconds for args.steps optimizer steps on fresh batches (loading not timed)."""
            batches = [[next(loader)[:2] for _ in range(accum)] for _ in range(args.steps)]
            started = time.perf_counter()
            for micro_batches in batches:
                step(micro_batches)
            return time.perf_counter() - started

        timed_round(our_step), timed_round(plain_step)  # warm-up
        tokens_per_round = args.steps * train.TOTAL_BATCH_SIZE
        our_rates, plain_rates = [], []
        for _ in range(args.rounds):
            our_rates.append(tokens_per_round / timed_round(our_step))
            plain_rates.append(tokens_per_round / timed_round(plain_step))
    ours_median, plain_median = statistics.median(our_rates), statistics.median(plain_rates)
    n_params = sum(p.numel() for p in ours.parameters()) / 1e6
    print(f"config: depth {cfg.depth}, width {cfg.width}, heads {cfg.width // cfg.head_dim}, seq {cfg.seq_len}, "
          f"vocab {cfg.vocab_size}, {train.TOTAL_BATCH_SIZE} tokens/step, {torch.get_num_threads()} threads")
    print(f"cpu preset train.py ({n_params:.2f}M params): {ours_median:8,.0f} tokens/s  (rounds: "
          + ", ".join(f"{r:,.0f}" for r in our_rates) + ")")
    print(f"plain fp32 GPT, same size:       {plain_median:8,.0f} tokens/s  (rounds: "
          + ", ".join(f"{r:,.0f}" for r in plain_rates) + ")")
    print(f"ratio ours / plain:              {ours_median / plain_median:.2f}x  (goal >= 1.0x)")
    print(f"ratio ours / peer (1,530 tok/s): {ours_median / PEER_TOKENS_PER_SECOND:.2f}x  (goal >= 3x; peer figure from BENCHMARKS.md)")


if __name__ == "__main__":
    main()
