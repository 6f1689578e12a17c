"""Regularized (aging) evolution, Real et al. 2019.

The population is the `population` most recent completed (or early-stopped) trials, so old
architectures age out however good they were. Each child: sample `tournament` members, mutate the best of them once
(one `space.mutate` call: one edge of a cell, or one block/knob of a Model Search spec). Random
architectures until the population is full. Stateless: everything is derived from the trials.
"""
from __future__ import annotations

from modelsearch.strategies.base import Strategy, add_mutants, fill_random, is_evidence, score


class RegularizedEvolution(Strategy):
    def __init__(self, population: int = 50, tournament: int = 10, p_deeper: float = 0.5, **_ignored):
        if not 1 <= tournament <= population:
            raise ValueError(f"tournament ({tournament}) must be between 1 and population ({population})")
        self.population = population
        self.tournament = tournament
        self.p_deeper = p_deeper

    def current_population(self, trials) -> list:
        completed = sorted((t for t in trials if is_evidence(t)), key=lambda t: t.trial_id)
        return completed[-self.population:]

    def propose(self, trials, n, space, rng):
        seen = {space.key(t.spec) for t in trials}
        population = self.current_population(trials)
        candidates = []
        if len(population) >= self.population:
            def winner():  # the best of a tournament; ties go to the older trial
                return min(rng.sample(population, self.tournament), key=lambda t: (-score(t), t.trial_id))
            # Unlike the paper, never re-train a seen architecture: a seen child costs another tournament.
            add_mutants(candidates, n, winner, space, rng, seen, self.p_deeper, trials)
        return fill_random(candidates, n, space, rng, seen)
