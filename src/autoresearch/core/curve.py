"""Training progress from a run's own output lines.

The templates print one progress line about every second, e.g.
`step 00012 ( 20.1%) | loss 4.1234 | lrm 1.00 | dt 640ms | tok/s 6,651 | mfu 3.1% | epoch 1`:
the step, the share of the budget spent, the smoothed training loss and the throughput.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PROGRESS_LINE = re.compile(r"step (?P<step>\d+) \(\s*(?P<pct>[\d.]+)%\)\s*\|\s*loss (?P<loss>[\d.]+|nan|inf)"
                           r"(?:.*?tok/s (?P<tps>[\d,]+))?")


@dataclass(frozen=True)
class Point:
    step: int
    fraction: float  # of the budget, 0..1
    loss: float
    tokens_per_second: float | None


def parse_progress(line: str) -> Point | None:
    match = PROGRESS_LINE.search(line)
    if match is None:
        return None
    tps = float(match["tps"].replace(",", "")) if match["tps"] else None
    return Point(int(match["step"]), float(match["pct"]) / 100, float(match["loss"]), tps)
