"""Reservations and leases on both trial-store backends (SQLite locally, MariaDB as the cluster's MySQL).

K trainers that race on one study must end with exactly the budget of search trials, each number once and
no architecture twice (but re-evaluations); a trainer that dies loses its trial to the next one that asks.
No test here trains: a "trainer" waits a moment and records a random objective.
"""
from __future__ import annotations

import collections
import hashlib
import json
import multiprocessing
import os
import random
import time
import traceback

import pytest

from modelsearch.config import SearchConfig
from modelsearch.search import counted, next_trial
from modelsearch.strategies.random_search import RandomSearch
from modelsearch.trialstore import ABANDONED, COMPLETED, RUNNING, ReservationConflict, TrialStore

STUDY = "race"


@pytest.fixture(scope="module")
def space():
    from modelsearch.space import SearchSpace  # imports keras (slow), runs no TensorFlow op: safe to fork
    return SearchSpace(SearchConfig(), (8,))


def _trainer(config: dict, space, budget: int, barrier, results) -> None:
    """A trainer process: take the next trial, record it as completed, until the study reaches the budget."""
    try:
        store = TrialStore(config)  # its own connection: none is shared across a fork
        conflicts = 0
        reserve = store.reserve

        def counting_reserve(*args, **kwargs):
            nonlocal conflicts
            try:
                return reserve(*args, **kwargs)
            except ReservationConflict:
                conflicts += 1
                raise

        store.reserve = counting_reserve
        rng = random.Random(os.getpid())
        barrier.wait(timeout=60)  # all start at once, so they really race
        done = 0
        while (trial := next_trial(store, STUDY, SearchConfig(), space, budget)) is not None:
            # "Training": without it one trainer takes every trial while the others sleep in SQLite's
            # busy handler (100-300 ms a turn), and nothing would race.
            time.sleep(rng.uniform(0.05, 0.25))
            store.complete_trial(trial.trial_id, {"objective": rng.random()}, num_params=1, num_inherited=0,
                                 model_uri="", train_seconds=0.0)
            done += 1
        results.put(("ok", os.getpid(), done, conflicts))
    except BaseException:
        results.put(("error", os.getpid(), traceback.format_exc(), 0))
        raise


def test_racing_trainers_take_each_trial_once(store_config, space):
    budget, k = 40, 4
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(k), ctx.Queue()
    workers = [ctx.Process(target=_trainer, args=(store_config, space, budget, barrier, results)) for _ in range(k)]
    for w in workers:
        w.start()
    reports = [results.get(timeout=600) for _ in workers]
    for w in workers:
        w.join(timeout=60)
    errors = [r[2] for r in reports if r[0] == "error"]
    assert not errors, errors[0]
    assert [w.exitcode for w in workers] == [0] * k

    trials = [t for t in TrialStore(store_config).trials(STUDY) if t.kind == "search"]
    assert len(trials) == budget == sum(r[2] for r in reports)
    assert sorted(t.number for t in trials) == list(range(budget))
    assert len({t.trial_id for t in trials}) == budget
    assert all(t.state == COMPLETED for t in trials), collections.Counter(t.state for t in trials)
    by_key = collections.defaultdict(list)
    for t in sorted(trials, key=lambda t: t.trial_id):
        by_key[space.key(t.spec)].append(t)
    repeats = [t for ts in by_key.values() for t in ts[1:]]
    assert all(t.mutation.startswith("reevaluate:") for t in repeats), [t.mutation for t in repeats]
    # The trainers interleaved: several of them took trials, and their trials alternate in number order.
    owners = [t.worker for t in sorted(trials, key=lambda t: t.number)]
    assert len(set(owners)) >= 2, (collections.Counter(owners), reports)
    assert sum(a != b for a, b in zip(owners, owners[1:])) >= 2, owners
    assert sum(r[3] for r in reports) >= 1, reports  # some reservations lost a race and were asked again


class OneArchitecture:
    """A search space holding a single architecture: once it is taken, a strategy has nothing to propose,
    so a second proposal of it can only come from its abandoned trial."""

    SPEC = {"blocks": [{"name": "dense", "params": {"units": 8}}], "head": "avg", "knobs": {}}

    def random_spec(self, rng):
        return json.loads(json.dumps(self.SPEC))

    def mutate(self, spec, rng, p_deeper):
        return None

    @staticmethod
    def key(spec):
        return json.dumps(spec, sort_keys=True)


def test_an_expired_lease_frees_the_trial_and_its_candidate(store_config):
    store, space, config = TrialStore(store_config), OneArchitecture(), SearchConfig()
    lost = next_trial(store, "s", config, space, budget=1, lease_seconds=0.5, strategy=RandomSearch())
    assert (lost.number, lost.state, lost.spec) == (0, RUNNING, OneArchitecture.SPEC)
    time.sleep(0.7)  # its trainer died: no heartbeat

    before = time.time()
    again = next_trial(store, "s", config, space, budget=1, strategy=RandomSearch())
    abandoned = store.get(lost.trial_id)
    assert abandoned.state == ABANDONED and "lease expired" in abandoned.error and lost.worker in abandoned.error
    # A trainer's kept view of the study (modelsearch.search.StudyView) sees the reclaim as a recent write.
    assert lost.trial_id in [t.trial_id for t in store.trials_written_since("s", before)]
    # The abandoned trial no longer counts against the budget of 1, and its architecture (the only one) is
    # proposed again: its second evaluation, under a new number (numbers are never reused).
    assert (again.number, again.state, again.spec) == (1, RUNNING, OneArchitecture.SPEC)
    assert [t.trial_id for t in counted(store.trials("s"))] == [again.trial_id]
    # While that one runs, the space is used up and the budget reached.
    assert next_trial(store, "s", config, space, budget=2, strategy=RandomSearch()) is None
    assert next_trial(store, "s", config, space, budget=1, strategy=RandomSearch()) is None


def test_heartbeats_keep_a_trial_past_its_first_lease(store_config):
    store, space, config = TrialStore(store_config), OneArchitecture(), SearchConfig()
    trial = next_trial(store, "s", config, space, budget=1, lease_seconds=1.0, strategy=RandomSearch())
    other = TrialStore(store_config)  # another trainer, asking meanwhile
    deadline = time.time() + 2.5
    while time.time() < deadline:
        store.heartbeat(trial.trial_id, lease_seconds=1.0)
        assert next_trial(other, "s", config, space, budget=1, strategy=RandomSearch()) is None
        time.sleep(0.2)
    assert store.get(trial.trial_id).state == RUNNING  # well past its first lease

    store.complete_trial(trial.trial_id, {"objective": 0.5}, 1, 0, "", 0.0)
    store.heartbeat(trial.trial_id, lease_seconds=0.01)  # a late heartbeat cannot undo the result
    time.sleep(0.05)
    assert other.reclaim_expired("s") == []
    done = store.get(trial.trial_id)
    assert (done.state, done.metrics) == (COMPLETED, {"objective": 0.5})


def test_a_trainer_s_kept_view_proposes_what_a_full_read_would(store_config, space, monkeypatch):
    """next_trial keeps each trainer's copy of the study between its calls and re-reads only the trials
    written since (here: not a second earlier, so only what changed is re-read). Two studies driven alike,
    one by a trainer that keeps its store (and view), one by a new store per call (a full read each time),
    get the same proposals through completions, failures and a reclaimed trial written by other stores."""
    import modelsearch.search

    monkeypatch.setattr(modelsearch.search, "REREAD_SECONDS", 0.0)
    kept, config, seen = TrialStore(store_config), SearchConfig(), {}
    for i in range(24):
        for study in ("kept", "fresh"):
            store = kept if study == "kept" else TrialStore(store_config)
            lease = 0.3 if i == 9 else 60.0
            trial = next_trial(store, study, config, space, budget=100, seed=1, lease_seconds=lease)
            # Trial ids differ between the studies: compare the numbers of parents and re-evaluated trials.
            parent = store.get(trial.parent_id).number if trial.parent_id is not None else None
            mutation = trial.mutation
            if mutation.startswith("reevaluate:"):
                mutation = f"reevaluate:#{store.get(int(mutation.split(':')[1])).number}"
            seen.setdefault(study, []).append((trial.number, trial.spec, mutation, parent))
            child = TrialStore(store_config)  # the trial's own process records its result
            if i == 9:
                continue  # its trainer dies: reclaimed once its lease runs out
            if i % 5 == 4:
                child.fail_trial(trial.trial_id, "out of memory")
            else:
                objective = int(hashlib.sha256(space.key(trial.spec).encode()).hexdigest()[:8], 16) / 2 ** 32
                child.complete_trial(trial.trial_id, {"objective": objective}, 1, 0, "", 0.0)
        if i == 9:
            time.sleep(0.4)
    assert seen["kept"] == seen["fresh"]
    assert {t.state for t in kept.trials("kept")} == {COMPLETED, "failed", ABANDONED}
    assert any(m.startswith("reevaluate:") for _, _, m, _ in seen["kept"])


def test_proposal_cost_benchmark_smoke(tmp_path):
    """benchmarks/proposal_cost.py at a tiny size: its filled studies take reservations as real ones do."""
    from benchmarks import proposal_cost

    out = tmp_path / "proposal_cost.json"
    proposal_cost.main(["--sizes", "60", "--repeats", "2", "--out", str(out)])
    results = json.loads(out.read_text())["backends"]
    assert set(results) == {"sqlite", "mariadb"} and all(r["60"]["max"] > 0 for r in results.values())
