"""The one interface every search strategy implements. Strategies decide; they never train."""
from __future__ import annotations

import abc
import dataclasses
import math
import random

from modelsearch.trialstore import EVIDENCE, RUNNING

MAX_TRIES = 200  # mutations tried per wanted candidate before giving up (the space may be used up)
# Mutants' results in a row that leave the study's best unbeaten before mutations may draw expensive blocks:
# two, so that one unlucky child (noise) does not open the gate, and the cheap blocks have had a fair try.
STALL = 2


@dataclasses.dataclass
class Candidate:
    spec: dict
    parent_id: int | None = None
    mutation: str = "random"

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def score(trial) -> float:
    """Higher is better: trainers record metrics["objective"] (validation accuracy, or -validation loss, traded
    against size and latency when the config sets targets: modelsearch/objective.py)."""
    return trial.metrics.get("objective", -math.inf)


def is_evidence(trial) -> bool:
    """Whether a trial's result informs the search: completed, or stopped early by the median rule (its
    objective, lower for being cut short, is ranked like any other; a stopped trial is a parent only if that
    rank puts it among the best). Failed and diverged trials are taken (never proposed again), not evidence."""
    return trial.state in EVIDENCE


def is_taken_run(trial) -> bool:
    """A training of its architecture that has a result or will have one (evidence, or still running)."""
    return trial.state in EVIDENCE or trial.state == RUNNING


class Strategy(abc.ABC):
    @abc.abstractmethod
    def propose(self, trials: list, n: int, space, rng: random.Random) -> list[Candidate]:
        """`n` new candidates given every trial of the study so far (any state; `is_evidence` says which
        have results to learn from).

        `space` offers random_spec(rng) (a cheap, small start), mutate(spec, rng, p_deeper) -> (spec, mutation)
        | None and key(spec), and may offer first_specs() (tried before any random spec), any_spec(rng) (a
        random spec from the whole space) and expensive_blocks (then mutate takes expensive=False: cheap
        blocks only); a strategy never proposes a key already in `trials` or twice in one
        call.
        """


def fill_random(candidates: list[Candidate], n: int, space, rng: random.Random, seen: set,
                start: bool = True) -> list[Candidate]:
    """Tops `candidates` up to `n` with specs not in `seen`: first the space's first_specs (on vectors, the
    linear model: every study tries it before anything random, so that nothing it returns is worse on
    validation), then random ones, from the space's cheap start (random_spec) or, `start` False, from all of it
    (any_spec, where the space has one)."""
    for spec in getattr(space, "first_specs", list)():
        if len(candidates) < n and space.key(spec) not in seen:
            seen.add(space.key(spec))
            candidates.append(Candidate(spec))
    draw = space.random_spec if start else getattr(space, "any_spec", space.random_spec)
    for _ in range(1000 * n):
        if len(candidates) >= n:
            break
        spec = draw(rng)
        if space.key(spec) not in seen:
            seen.add(space.key(spec))
            candidates.append(Candidate(spec))
    return candidates


def cheap_stalled(trials: list, after: int = STALL) -> bool:
    """Whether the study's best has stood unbeaten by its last `after` mutants' results (in the order they came;
    random starts and reevaluations are no growth, so they count only when they beat it): growing with cheap
    blocks has stopped paying, so mutations may now bring in the expensive ones."""
    best, since = -math.inf, 0
    for t in sorted((t for t in trials if is_evidence(t)), key=lambda t: (t.finished, t.trial_id)):
        if score(t) > best:
            best, since = score(t), 0
        elif t.parent_id is not None:
            since += 1
    return since >= after


def add_mutants(candidates: list[Candidate], n: int, choose_parent, space, rng: random.Random, seen: set,
                p_deeper: float, trials: list = ()) -> list[Candidate]:
    """Tops `candidates` up to `n` with one-mutation children, not in `seen`, of `choose_parent()` trials.
    Expensive blocks (a space that has them says so in `expensive_blocks`) come in only once the cheap ones
    have stalled in `trials` (cheap_stalled)."""
    cheap_only = bool(getattr(space, "expensive_blocks", ())) and not cheap_stalled(trials)
    for _ in range(MAX_TRIES * n):
        if len(candidates) >= n:
            break
        parent = choose_parent()
        mutated = (space.mutate(parent.spec, rng, p_deeper, expensive=False) if cheap_only
                   else space.mutate(parent.spec, rng, p_deeper))
        if mutated is None or space.key(mutated[0]) in seen:
            continue
        seen.add(space.key(mutated[0]))
        candidates.append(Candidate(mutated[0], parent.trial_id, mutated[1]))
    return candidates
