"""Sharing asks among several proposers by their record of real keeps.

Thompson sampling: each proposer's chance of a keep is a Beta(1 + keeps, 1 + other finished
experiments) belief; each ask draws once from every belief and goes to the highest draw. A new
proposer is tried (its belief is wide), one that keeps producing keeps gets most asks, and one
that never does still gets an occasional ask in case it improves.
"""

from __future__ import annotations

import random


class Bandit:
    def __init__(self, seed: int | None = None):
        self.rng = random.Random(seed)

    def choose(self, names: list[str], records: dict[str, tuple[int, int]]) -> str:
        """One of `names`, given each one's (keeps, finished experiments)."""
        if len(names) == 1:
            return names[0]

        def draw(name: str) -> float:
            keeps, finished = records.get(name, (0, 0))
            return self.rng.betavariate(1 + keeps, 1 + max(finished - keeps, 0))

        return max(names, key=draw)
