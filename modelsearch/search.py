"""The study's next search trial: ask the strategy for one candidate, reserve it in the trial store.

This is where a free trainer turns to (ARCHITECTURE.md, "Who decides"): it reads every trial of the study
at that moment (completed ones and those stopped early by the median rule as evidence, running ones as
taken), asks the configured strategy for ONE candidate and reserves it. Two trainers that ask at the same
instant may get the same answer: the store lets one reservation win and the other trainer asks again on the
newer state. Nothing here trains.
"""
from __future__ import annotations

import random
import time
import weakref

from modelsearch import strategies
from modelsearch.config import SearchConfig
from modelsearch.exploit import teacher_for
from modelsearch.strategies.base import Candidate
from modelsearch.trialstore import LEASE_SECONDS, LOST, SEARCH, ReservationConflict, Trial, TrialStore

MAX_RACES = 100  # reservations lost to other trainers in a row before giving up (never reached in practice)
SEED_STEP = 100003  # trial n of a study seeded `seed` trains with seed * SEED_STEP + n
# A trainer re-reads the trials written since its last read less this margin (see StudyView): far longer than
# an MLMD write may wait on locks after taking its timestamp, or than trainers' clocks differ.
REREAD_SECONDS = 300.0


def create_strategy(config: SearchConfig):
    return strategies.create(config.strategy, beam_size=config.beam_size, p_deeper=config.p_deeper,
                             min_completed=config.min_completed)


def propose_one(strategy, trials: list[Trial], space, seed: int, number: int) -> Candidate | None:
    """The strategy's candidate for search trial `number` of a study, given its trials (any state but
    abandoned); deterministic for the seed and the trials. None: the space has no new architecture left."""
    candidates = strategy.propose(trials, 1, space, random.Random(f"{seed}:{number}"))
    return candidates[0] if candidates else None


def counted(trials: list[Trial], data_version: int = 0) -> list[Trial]:
    """The search trials that count against the budget and that strategies see: those on the study's current
    data version but the lost ones (abandoned, interrupted), whose candidates may be tried again. A trial
    stopped early (STOPPED) counts: it spent its share of the budget, fewer epochs of it."""
    return [t for t in trials if t.kind == SEARCH and t.state not in LOST and t.data_version == data_version]


class StudyView:
    """A trainer's copy of a study's trials, kept between its proposals so that each reads only what changed.

    A proposal needs every trial of the study, and reading and parsing 10,000 of them from MLMD takes
    seconds. Trials are never deleted, so after one full read the view re-reads only the trials written
    since its last read, less REREAD_SECONDS: MLMD stamps a write with the writer's clock before its
    transaction commits, so a write may show up a little after its stamp, and by another machine's clock.
    A trial's spec never changes, so its key (space.key deep-copies the spec) is computed once per space."""

    def __init__(self):
        self.trials: dict[int, Trial] = {}
        self.read_at: float | None = None
        self.space, self.keys = None, {}  # trial id -> key, in self.space

    def read(self, store: TrialStore, study: str) -> list[Trial]:
        """Every trial of the study as it is now (as store.trials(study) returns them), oldest first."""
        start = time.time()
        changed = (store.trials(study) if self.read_at is None
                   else store.trials_written_since(study, self.read_at - REREAD_SECONDS))
        self.trials.update((t.trial_id, t) for t in changed)
        self.read_at = start
        return sorted(self.trials.values(), key=lambda t: t.trial_id)

    def keyed(self, space, trials: list[Trial]) -> "KeyedSpace":
        """`space`, with the keys of these trials' specs looked up instead of computed."""
        if space is not self.space:
            self.space, self.keys = space, {}
        for t in trials:
            if t.trial_id not in self.keys:
                self.keys[t.trial_id] = space.key(t.spec)
        return KeyedSpace(space, {id(t.spec): self.keys[t.trial_id] for t in trials})


class KeyedSpace:
    """A search space whose key() answers from a table for known spec objects (by identity: they stay alive
    while the table is in use) and asks the space for any other spec, such as a new candidate."""

    def __init__(self, space, keys: dict[int, str]):
        self._space, self._keys = space, keys

    def __getattr__(self, name):
        return getattr(self._space, name)

    def key(self, spec: dict) -> str:
        key = self._keys.get(id(spec))
        return self._space.key(spec) if key is None else key


_VIEWS = weakref.WeakKeyDictionary()  # TrialStore -> {study: StudyView}: one per trainer process and study


def study_view(store: TrialStore, study: str) -> StudyView:
    return _VIEWS.setdefault(store, {}).setdefault(study, StudyView())


def next_trial(store: TrialStore, study: str, config: SearchConfig, space, budget: int, seed: int = 0,
               lease_seconds: float = LEASE_SECONDS, strategy=None) -> Trial | None:
    """Reserves the study's next search trial and returns it (running, leased to this process), or None
    when the study holds `budget` search trials or the space has no new architecture left."""
    strategy = strategy or create_strategy(config)
    view = study_view(store, study)
    version = store.data_version(study)  # fixed for a run: one run writes a study at a time (its lock)
    for _ in range(MAX_RACES):
        everything = view.read(store, study)
        if store.reclaim_expired(study, everything):
            everything = view.read(store, study)
        every = [t for t in everything if t.kind == SEARCH]
        trials = counted(every, version)
        if len(trials) >= budget:
            return None
        number = len(every)  # abandoned trials keep their number: a number is never reused
        keyed = view.keyed(space, every)
        candidate = propose_one(strategy, trials, keyed, seed, number)
        if candidate is None:
            return None
        key = keyed.key(candidate.spec)
        evaluation = sum(1 for t in every if keyed.key(t.spec) == key)
        teacher = teacher_for(trials, config.distillation)  # {} unless distillation is on
        try:
            trial_id = store.reserve(
                study, number, evaluation, candidate.spec, key, parent_id=candidate.parent_id,
                mutation=candidate.mutation, seed=seed * SEED_STEP + number, teacher_id=teacher.get("teacher_id"),
                distillation=teacher.get("distillation"), lease_seconds=lease_seconds, data_version=version)
        except ReservationConflict:
            continue
        return store.get(trial_id)
    raise RuntimeError(f"lost {MAX_RACES} reservations in a row on study {study}; is the trial store shared "
                       "by a runaway number of trainers?")


def open_search(store: TrialStore, study: str, config: SearchConfig, transform_dir: str, budget: int,
                trainers: int) -> dict:
    """What the trainers will share, checked before any of them starts: the space can propose (an unfit
    block fails here, once, not in every trainer), lost trials are reclaimed, the budget left is known, and the
    search's deadline is recorded: config.time_budget seconds from now, the wall-clock budget of this run's
    search (a rerun opens a new one; none without a time budget). Every trainer reads it from the trial store,
    so local processes and pods stop at the same moment; the trial budget still ends the search if it comes
    first."""
    import sys

    from modelsearch.export import read_schema
    from modelsearch.space import SearchSpace

    from modelsearch.data_versions import register

    schema = read_schema(transform_dir)
    space = SearchSpace(config, schema["input_shape"])
    version = register(store, study, schema)
    reclaimed = store.reclaim_expired(study)
    held = counted(store.trials(study), version)
    if propose_one(create_strategy(config), held, space, 0, len(held)) is None and len(held) < budget:
        print(f"[modelsearch] the search space of study {study} has no new architecture left",
              file=sys.stderr, flush=True)
    deadline = store.open_time_budget(study, config.time_budget)
    plan = {"study": study, "budget": budget, "trainers": trainers, "held": len(held),
            "to_train": max(0, budget - len(held)), "reclaimed": reclaimed, "data_version": version,
            "deadline": deadline}
    print(f"[modelsearch] study {study}" + (f" (data version {version})" if version else "")
          + f": {len(held)} of {budget} search trials held, {plan['to_train']} to train "
          f"by {trainers} trainer{'s' if trainers > 1 else ''}"
          + (f"; reclaimed lost trials {reclaimed}" if reclaimed else "")
          + (f"; time budget {config.time_budget:.0f} s, until {time.strftime('%H:%M:%S', time.localtime(deadline))}"
             if deadline else ""), file=sys.stderr, flush=True)
    return plan
