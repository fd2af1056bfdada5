"""Crashes the machine caused: a run killed by its timeout or a memory limit while it trained far
slower than the same code (or the best) did elsewhere was slowed by the machine (another job on its
cores, a swapping neighbour), not broken by its change. Such a run is run again by the harness, once,
instead of going to the model as a bug to fix. Pure: figures in, a reason out.
"""

from __future__ import annotations

SLOWDOWN = 3.0  # a run this many times slower than its reference is the machine's doing, not the change's
MACHINE_RERUNS = 1  # times a candidate is run again for it; a second slow failure is the change's


def machine_slowdown(timed_out: bool, killed_for: str, tokens_per_second: float | None,
                     reference: float | None) -> str:
    """Why a failed run is the machine's fault, or "" when it is not (or cannot be told)."""
    if not (timed_out or killed_for.startswith("out of memory")):
        return ""
    if not tokens_per_second or not reference or tokens_per_second * SLOWDOWN > reference:
        return ""
    return (f"it trained at {tokens_per_second:,.0f} tokens/s against {reference:,.0f} for the same code or the best: "
            f"{reference / tokens_per_second:.1f}x slower, so the machine was loaded, not the change at fault")
