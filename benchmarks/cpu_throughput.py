"""Training throughput of the `cpu` preset's train.py against a plain PyTorch GPT of the same size.

Both train on the same real batches (Shakespeare, vocab 2048, sequence 256), fp32, on the same
threads, in alternating rounds so machine noise hits both alike, after warm-up rounds (the first
steps of either model run slower while the allocator settles). Our model is measured eager (the
preset's default on CPU) and under torch.compile (TORCH_COMPILE = "on"), whose compile time is
printed separately. Goals: ours eager >= 0.9x the plain GPT and compiled >= 1.0x, and >= 3x the peer's 1,530 tokens/s from
BENCHMARKS.md (a figure from another run, not measured here).

    python benchmarks/cpu_throughput.py [--rounds 5] [--steps 3] [--no-compile] [--variants]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from common import llm_workspace

sys.path.insert(0, str(Path(__file__).resolve().parent))
from plain_gpt import PlainGPT  # noqa: E402

PEER_TOKENS_PER_SECOND = 1530


def make_step(forward, model, optimizers, accum, setting=None):
    """One optimizer step of `accum` micro-batches; `setting` (train.py's module, FUSED_LOSS, an
    autocast context) is applied around it, so variants of one train.py alternate in one process."""
    def step(micro_batches):
        if setting is not None:
            setting[0].FUSED_LOSS = setting[1]
        with setting[2] if setting is not None else contextlib.nullcontext():
            for x, y in micro_batches:
                (forward(x, y) / accum).backward()
        for opt in optimizers:
            opt.step()
        model.zero_grad(set_to_none=True)
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3, help="optimizer steps per round and model")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile measurement")
    parser.add_argument("--variants", action="store_true",
                        help="also the eager model without the fused loss, and under bf16 autocast")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ws = llm_workspace(Path(tmp), "ws", preset="cpu")
        sys.path.insert(0, str(ws))
        measure(importlib.import_module("train"), args)


def measure(train, args) -> None:
    cfg = train.GPTConfig(vocab_size=train.VOCAB_SIZE, seq_len=train.MAX_SEQ_LEN, depth=train.DEPTH,
                          width=train.DEPTH * train.ASPECT_RATIO, head_dim=train.HEAD_DIM,
                          window_pattern=train.WINDOW_PATTERN)
    accum = train.TOTAL_BATCH_SIZE // (train.DEVICE_BATCH_SIZE * train.MAX_SEQ_LEN)
    loader = train.make_dataloader(train.DEVICE_BATCH_SIZE, train.MAX_SEQ_LEN, "cpu", seed=0)

    steps = {}
    ours = train.GPT(cfg)
    ours.init_weights()
    plain_context = contextlib.nullcontext()
    steps["train.py, eager"] = make_step(ours, ours, train.make_optimizers(ours), accum,
                                         (train, train.FUSED_LOSS, plain_context))
    if args.variants:
        unfused = train.GPT(cfg)
        unfused.init_weights()
        steps["train.py, eager, unfused loss"] = make_step(unfused, unfused, train.make_optimizers(unfused), accum,
                                                           (train, False, plain_context))
        bf16 = train.GPT(cfg)
        bf16.init_weights()
        steps["train.py, eager, bf16 autocast"] = make_step(
            bf16, bf16, train.make_optimizers(bf16), accum,
            (train, False, torch.autocast("cpu", dtype=torch.bfloat16)))
    plain = PlainGPT(cfg.vocab_size, cfg.seq_len, cfg.depth, cfg.width, cfg.width // cfg.head_dim)
    steps["plain GPT, eager"] = make_step(plain, plain, [torch.optim.AdamW(plain.parameters(), lr=1e-3)], accum)
    compile_seconds = None
    if not args.no_compile:
        compiled = train.GPT(cfg)
        compiled.init_weights()
        steps["train.py, compiled"] = make_step(torch.compile(compiled, dynamic=False), compiled,
                                                train.make_optimizers(compiled), accum, (train, False, plain_context))

    def timed_round(step) -> float:
        """Seconds for args.steps optimizer steps on fresh batches (loading not timed)."""
        batches = [[next(loader)[:2] for _ in range(accum)] for _ in range(args.steps)]
        started = time.perf_counter()
        for micro_batches in batches:
            step(micro_batches)
        return time.perf_counter() - started

    for name, step in steps.items():
        started = time.perf_counter()
        step([next(loader)[:2] for _ in range(accum)])
        if name == "train.py, compiled":
            compile_seconds = time.perf_counter() - started
        timed_round(step), timed_round(step)  # warm-up
    rates = {name: [] for name in steps}
    tokens_per_round = args.steps * train.TOTAL_BATCH_SIZE
    for _ in range(args.rounds):
        for name, step in steps.items():
            rates[name].append(tokens_per_round / timed_round(step))
    medians = {name: statistics.median(r) for name, r in rates.items()}
    n_params = sum(p.numel() for p in ours.parameters()) / 1e6
    print(f"config: depth {cfg.depth}, width {cfg.width}, heads {cfg.width // cfg.head_dim}, seq {cfg.seq_len}, "
          f"vocab {cfg.vocab_size}, {train.TOTAL_BATCH_SIZE} tokens/step, {torch.get_num_threads()} threads, "
          f"train.py {n_params:.2f}M params")
    for name, value in medians.items():
        print(f"{name:32s} {value:8,.0f} tokens/s  (rounds: " + ", ".join(f"{r:,.0f}" for r in rates[name]) + ")")
    if compile_seconds is not None:
        print(f"first compiled step:   {compile_seconds:.1f} s (compile; the inductor cache makes later ones shorter)")
    plain_rate = medians["plain GPT, eager"]
    for name in (n for n in medians if n.startswith("train.py")):
        goal = "1.0x" if "compiled" in name else "0.9x" if name == "train.py, eager" else "-"
        print(f"ratio {name} / plain:  {medians[name] / plain_rate:.2f}x (goal >= {goal}); "
              f"/ peer 1,530 tok/s: {medians[name] / PEER_TOKENS_PER_SECOND:.2f}x (goal >= 3x)")


if __name__ == "__main__":
    main()
