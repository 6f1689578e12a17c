"""Model Search's beam search with mutation.

Keep the top-k completed trials (the beam); for each candidate pick a beam member and mutate it:
with probability p_deeper append a block, otherwise replace a block, change a width or a training
knob. Random architectures until `min_completed` trials have completed.
"""
from __future__ import annotations

from modelsearch.strategies.base import Candidate, Strategy, fill_random, score

MAX_TRIES = 200


class BeamSearch(Strategy):
    def __init__(self, beam_size: int = 3, p_deeper: float = 0.5, min_completed: int = 2, **_ignored):
        self.beam_size = beam_size
        self.p_deeper = p_deeper
        self.min_completed = min_completed

    def beam(self, trials) -> list:
        completed = [t for t in trials if t.state == "completed"]
        # Ties go to the older trial, so the beam is the same whatever order the store returns.
        return sorted(completed, key=lambda t: (-score(t), t.trial_id))[: self.beam_size]

    def propose(self, trials, n, space, rng):
        seen = {space.key(t.spec) for t in trials}
        beam = self.beam(trials)
        candidates = []
        if len(beam) >= min(self.min_completed, self.beam_size) and beam:
            for _ in range(MAX_TRIES * n):
                if len(candidates) >= n:
                    break
                parent = rng.choice(beam)
                mutated = space.mutate(parent.spec, rng, self.p_deeper)
                if mutated is None or space.key(mutated[0]) in seen:
                    continue
                seen.add(space.key(mutated[0]))
                candidates.append(Candidate(mutated[0], parent.trial_id, mutated[1]))
        return fill_random(candidates, n, space, rng, seen)
