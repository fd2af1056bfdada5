"""Sliding-window attention on a CPU: which path train.py should take, measured side by side.

For rows of the `cpu` preset's shape (heads of 64, windows of half the context as WINDOW_PATTERN's
"S" layers have), in one process, one path after the other: SDPA causal (the full-context "L" layer, for
reference), SDPA with the window as a boolean mask (what train.py uses on a CPU), and FlexAttention
compiled with the window as a block mask (what it uses on GPUs without FA3). Forward alone
(inference) and forward + backward (training), milliseconds per call. FlexAttention's backward is
tried and its error printed where PyTorch has none on a CPU.

    python benchmarks/cpu_attention.py [--rows 16] [--lengths 256 1024] [--repeats 10]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch.nn.attention.flex_attention import create_block_mask, flex_attention

HEADS, HEAD_DIM = 4, 64


def window_mask(length: int, window: int) -> torch.Tensor:
    i = torch.arange(length)
    return (i[None, :] <= i[:, None]) & (i[:, None] - i[None, :] < window)


def paths(length: int, window: int) -> dict:
    def in_window(b, h, q_idx, kv_idx):
        return (q_idx >= kv_idx) & (q_idx - kv_idx < window)
    mask, compiled = window_mask(length, window), torch.compile(flex_attention, dynamic=False)
    block_mask = create_block_mask(in_window, None, None, length, length, device="cpu")
    return {"SDPA, causal (no window)": lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
            "SDPA, window mask": lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=mask),
            "FlexAttention compiled, window": lambda q, k, v: compiled(q, k, v, block_mask=block_mask)}


def milliseconds(call, repeats: int) -> float:
    for _ in range(2):
        call()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1e3)
    return statistics.median(times)


def measure(rows: int, length: int, repeats: int) -> None:
    window = length // 2
    torch._dynamo.reset()  # each length compiled afresh: a recompile for a second shape ran 4x slower
    q, k, v = (torch.randn(rows, HEADS, length, HEAD_DIM) for _ in range(3))
    grad = torch.randn_like(q)
    reference = F.scaled_dot_product_attention(q, k, v, attn_mask=window_mask(length, window))
    print(f"\n{rows} rows x {length} tokens, {HEADS} heads of {HEAD_DIM}, window {window}, "
          f"{torch.get_num_threads()} threads (median ms of {repeats})")
    for name, attend in paths(length, window).items():
        with torch.no_grad():
            started = time.perf_counter()
            difference = (attend(q, k, v) - reference).abs().max().item()  # causal: how much the window matters
            first = time.perf_counter() - started
            forward = milliseconds(lambda: attend(q, k, v), repeats)
        training = _forward_backward(attend, (q, k, v), grad, repeats)
        print(f"  {name:32s} forward {forward:7.1f}   forward+backward {training:>10}   "
              f"first call {first:5.1f} s   max difference from the mask {difference:.1e}")


def _forward_backward(attend, tensors, grad, repeats: int) -> str:
    leaves = [t.clone().requires_grad_() for t in tensors]
    try:
        return f"{milliseconds(lambda: attend(*leaves).backward(grad), repeats):7.1f}"
    except NotImplementedError as exc:  # FlexAttention on a CPU (torch 2.13): the finding this prints
        print(f"    ({str(exc).splitlines()[0]})")
        return "none"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=16,
                        help="rows of 256 tokens per call (the cpu preset's DEVICE_BATCH_SIZE); longer rows: as many tokens")
    parser.add_argument("--lengths", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}")
    for length in args.lengths:
        measure(max(1, args.rows * 256 // length), length, args.repeats)


if __name__ == "__main__":
    main()
