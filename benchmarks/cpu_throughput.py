"""Training throughput of the `cpu` preset's train.py against a plain PyTorch GPT of the same size.

Both train on the same real batches (Shakespeare, vocab 2048, sequence 256), fp32, on the same
threads, in alternating rounds so machine noise hits both alike, after warm-up rounds (the first
steps of either model run slower while the allocator settles). Our model is measured eager in
fp32 (the preset's default on a CPU without bf16 units) and under torch.compile (TORCH_COMPILE =
"on"), whose compile time is printed separately; `--variants` adds it under bf16 autocast where
the CPU has bf16 units (the default there); `--rev REV` adds the train.py of an earlier revision
(for example the one with hand-fused functions, before 2026-12-06), eager, in the same rounds. Goals: eager fp32 >= 0.9x the plain GPT, compiled >= 1.0x, and >= 3x
the peer's 1,530 tokens/s from BENCHMARKS.md (a figure from another run, not measured here).

    python benchmarks/cpu_throughput.py [--rounds 5] [--steps 3] [--no-compile] [--variants] [--rev REV]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from common import llm_workspace

from autoresearch.store.templates import load_presets, set_hyperparameters

sys.path.insert(0, str(Path(__file__).resolve().parent))
from plain_gpt import PlainGPT  # noqa: E402

PEER_TOKENS_PER_SECOND = 1530
# train.py's settings per variant: fp32 throughout (CPUs without bf16 units), or bf16 autocast and
# Newton-Schulz (its default where the CPU has them)
FP32 = {"USE_BF16": False}
BF16 = {"USE_BF16": True}
# a train.py from before 2026-12-06 had hand-fused functions, its fused loss in fp32 only: its defaults
EARLIER = {"fp32": {**FP32, "FUSED_OPS": True, "FUSED_LOSS": True}, "bf16": {**BF16, "FUSED_OPS": True, "FUSED_LOSS": False}}


def earlier_train_py(rev: str) -> str:
    """train.py at git revision `rev`, with the cpu preset's hyperparameters."""
    repo = Path(__file__).resolve().parents[1]
    source = subprocess.run(["git", "-C", str(repo), "show", f"{rev}:src/autoresearch/templates/llm/train.py"],
                            capture_output=True, text=True, check=True).stdout
    return set_hyperparameters(source, load_presets()["cpu"].train)


def make_step(forward, model, optimizers, accum, setting=None):
    """One optimizer step of `accum` micro-batches; `setting` (train.py's module, values of its
    module constants, an autocast context) is applied around it, so variants of one train.py
    alternate in one process."""
    def step(micro_batches):
        if setting is not None:
            for name, value in setting[1].items():
                setattr(setting[0], name, value)
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
    parser.add_argument("--variants", action="store_true", help="also under bf16 autocast")
    parser.add_argument("--rev", help="also the train.py of this git revision, eager fp32, side by side")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ws = llm_workspace(Path(tmp), "ws", preset="cpu")
        if args.rev:
            (ws / "train_earlier.py").write_text(earlier_train_py(args.rev))
        sys.path.insert(0, str(ws))
        earlier = importlib.import_module("train_earlier") if args.rev else None
        measure(importlib.import_module("train"), args, earlier)


def measure(train, args, earlier=None) -> None:
    cfg = train.GPTConfig(vocab_size=train.VOCAB_SIZE, seq_len=train.MAX_SEQ_LEN, depth=train.DEPTH,
                          width=train.DEPTH * train.ASPECT_RATIO, head_dim=train.HEAD_DIM,
                          window_pattern=train.WINDOW_PATTERN)
    accum = train.TOTAL_BATCH_SIZE // (train.DEVICE_BATCH_SIZE * train.MAX_SEQ_LEN)
    loader = train.make_dataloader(train.DEVICE_BATCH_SIZE, train.MAX_SEQ_LEN, "cpu", seed=0)

    def ours(label, setting, context=contextlib.nullcontext(), compiled=False, module=train):
        model = module.GPT(cfg)
        model.init_weights()
        forward = torch.compile(model, dynamic=False) if compiled else model
        steps[label] = make_step(forward, model, module.make_optimizers(model), accum, (module, setting, context))

    steps = {}
    ours("train.py, eager, fp32", FP32)
    if earlier is not None:
        ours(f"train.py of {args.rev}, eager, fp32", EARLIER["fp32"], module=earlier)
    if args.variants and train.cpu_has_bf16_units():
        ours("train.py, eager, bf16 autocast", BF16, torch.autocast("cpu", dtype=torch.bfloat16))
        if earlier is not None:
            ours(f"train.py of {args.rev}, eager, bf16 autocast", EARLIER["bf16"],
                 torch.autocast("cpu", dtype=torch.bfloat16), module=earlier)
    plain = PlainGPT(cfg.vocab_size, cfg.seq_len, cfg.depth, cfg.width, cfg.width // cfg.head_dim)
    steps["plain GPT, eager"] = make_step(plain, plain, [torch.optim.AdamW(plain.parameters(), lr=1e-3)], accum)
    compile_seconds = None
    if not args.no_compile:  # torch.compile fuses the plain formulas itself
        ours("train.py, compiled, fp32", FP32, compiled=True)

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
        if "compiled" in name:
            compile_seconds = time.perf_counter() - started
        timed_round(step), timed_round(step)  # warm-up
    rates = {name: [] for name in steps}
    tokens_per_round = args.steps * train.TOTAL_BATCH_SIZE
    for _ in range(args.rounds):
        for name, step in steps.items():
            rates[name].append(tokens_per_round / timed_round(step))
    medians = {name: statistics.median(r) for name, r in rates.items()}
    n_params = sum(p.numel() for p in train.GPT(cfg).parameters()) / 1e6
    print(f"config: depth {cfg.depth}, width {cfg.width}, heads {cfg.width // cfg.head_dim}, seq {cfg.seq_len}, "
          f"vocab {cfg.vocab_size}, {train.TOTAL_BATCH_SIZE} tokens/step, {torch.get_num_threads()} threads, "
          f"train.py {n_params:.2f}M params")
    for name, value in medians.items():
        print(f"{name:32s} {value:8,.0f} tokens/s  (rounds: " + ", ".join(f"{r:,.0f}" for r in rates[name]) + ")")
    if compile_seconds is not None:
        print(f"first compiled step:   {compile_seconds:.1f} s (compile; the inductor cache makes later ones shorter)")
    plain_rate = medians["plain GPT, eager"]
    for name in (n for n in medians if n.startswith("train.py")):
        goal = "1.0x" if "compiled" in name else "0.9x" if name == "train.py, eager, fp32" else "-"
        print(f"ratio {name} / plain:  {medians[name] / plain_rate:.2f}x (goal >= {goal}); "
              f"/ peer 1,530 tok/s: {medians[name] / PEER_TOKENS_PER_SECOND:.2f}x (goal >= 3x)")


if __name__ == "__main__":
    main()
