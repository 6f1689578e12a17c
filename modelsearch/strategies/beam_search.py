"""Model Search's beam search with mutation, aware that a trial's score is noisy.

Keep the top-k architectures (the beam); for each candidate pick a beam member and mutate it:
with probability p_deeper append a block, otherwise replace a block, change a width or a training
knob. Random architectures until `min_completed` trials have completed.

Training is noisy (another seed, another score), so one lucky trial can hold the beam for the rest
of a study. Two rules keep it honest:
- re-evaluation: the best architecture is trained again (another seed, from scratch) until it has
  `evaluations` results, but re-evaluations never take more than `reevaluate_share` of the trials.
  An architecture scores the mean of its results. A re-evaluation is the one kind of candidate that
  repeats a spec: mutation "reevaluate:<trial id>", no parent (nothing to warm-start from).
- near-ties: once re-evaluations measure the noise (sigma, pooled over repeated architectures), the
  beam also keeps every architecture within `tie_sigmas` sigma of its k-th member: the data cannot
  tell them apart, so all of them are mutated.

Trials stopped early by the median rule (modelsearch/early_stopping.py) are evidence like completed ones:
ranked by their objective (lower, for being cut short), so a stopped architecture is mutated only if that
still puts it in the beam, and it counts towards `min_completed`.
"""
from __future__ import annotations

import json
import math
import statistics

from modelsearch.strategies.base import (Candidate, Strategy, add_mutants, fill_random, is_evidence, is_taken_run,
                                         score)

REEVALUATE = "reevaluate"


class BeamSearch(Strategy):
    def __init__(self, beam_size: int = 3, p_deeper: float = 0.5, min_completed: int = 2, evaluations: int = 3,
                 reevaluate_share: float = 0.1, tie_sigmas: float = 2.0, **_ignored):
        self.beam_size = beam_size
        self.p_deeper = p_deeper
        self.min_completed = min_completed
        self.evaluations = evaluations
        self.reevaluate_share = reevaluate_share
        self.tie_sigmas = tie_sigmas

    def ranked(self, trials, key=None) -> list[tuple[float, list]]:
        """(mean score, its completed or stopped trials oldest first) per architecture, best first; ties go to
        the older architecture, so the order does not depend on the order the store returns trials in."""
        key = key or (lambda spec: json.dumps(spec, sort_keys=True))
        groups = {}
        for t in sorted(trials, key=lambda t: t.trial_id):
            if is_evidence(t):
                groups.setdefault(key(t.spec), []).append(t)
        # Most architectures have one result, its own mean: fmean (exact summation) only for repeats.
        means = [(score(ts[0]) if len(ts) == 1 else statistics.fmean(score(t) for t in ts), ts)
                 for ts in groups.values()]
        return sorted(means, key=lambda m: (-m[0], m[1][0].trial_id))

    def beam(self, trials, key=None) -> list:
        """The beam: the first trial of each architecture in it, best first."""
        return self._beam(self.ranked(trials, key))

    def _beam(self, ranked) -> list:
        size = min(self.beam_size, len(ranked))
        sigma = noise(ranked)
        if size and sigma:
            floor = ranked[size - 1][0] - self.tie_sigmas * sigma
            while size < len(ranked) and ranked[size][0] >= floor:
                size += 1
        return [ts[0] for _, ts in ranked[:size]]

    def reevaluation(self, trials, ranked, space) -> Candidate | None:
        """Another training of the best architecture, while it has too few results and the budget allows."""
        if not ranked or self.evaluations <= 1:
            return None
        best = ranked[0][1][0]
        best_key = space.key(best.spec)
        runs = sum(1 for t in trials if is_taken_run(t) and space.key(t.spec) == best_key)
        spent = sum(1 for t in trials if t.mutation.startswith(REEVALUATE))
        if runs >= self.evaluations or spent + 1 > self.reevaluate_share * (len(trials) + 1):
            return None
        return Candidate(best.spec, None, f"{REEVALUATE}:{best.trial_id}")

    def propose(self, trials, n, space, rng):
        seen = {space.key(t.spec) for t in trials}
        ranked = self.ranked(trials, space.key)
        candidates = []
        if len(ranked) >= min(self.min_completed, self.beam_size) and ranked:
            again = self.reevaluation(trials, ranked, space)
            candidates += [again] if again and n else []
            beam = self._beam(ranked)
            add_mutants(candidates, n, lambda: rng.choice(beam), space, rng, seen, self.p_deeper, trials)
        return fill_random(candidates, n, space, rng, seen)


def noise(ranked) -> float:
    """Pooled standard deviation of repeated results of one architecture; 0 until something repeats."""
    squares, dof = 0.0, 0
    for mean, ts in ranked:
        if len(ts) == 1 or not math.isfinite(mean):  # one result, or no objective: nothing about noise
            continue
        squares += sum((score(t) - mean) ** 2 for t in ts)
        dof += len(ts) - 1
    return math.sqrt(squares / dof) if dof else 0.0
