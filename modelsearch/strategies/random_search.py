"""Random search: independent random shallow architectures (the baseline, and the first rounds)."""
from __future__ import annotations

from modelsearch.strategies.base import Strategy, fill_random


class RandomSearch(Strategy):
    def __init__(self, **_ignored):
        pass

    def propose(self, trials, n, space, rng):
        return fill_random([], n, space, rng, {space.key(t.spec) for t in trials})
