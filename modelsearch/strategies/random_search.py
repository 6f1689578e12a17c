"""Random search: independent random architectures (the baseline, and the first rounds). The first
`min_completed` come from the space's cheap start, like every strategy's; after that, from the whole space."""
from __future__ import annotations

from modelsearch.strategies.base import Strategy, fill_random, is_evidence


class RandomSearch(Strategy):
    def __init__(self, min_completed: int = 2, **_ignored):
        self.min_completed = min_completed

    def propose(self, trials, n, space, rng):
        start = sum(1 for t in trials if is_evidence(t)) < self.min_completed
        return fill_random([], n, space, rng, {space.key(t.spec) for t in trials}, start=start)
