"""Benchmarks: the NAS-Bench-201 adapter and table, regularized evolution, and a small-budget smoke run."""
import itertools
import json
import random

import pytest

from benchmarks import nasbench201 as nb
from modelsearch import strategies
from modelsearch.strategies.regularized_evolution import RegularizedEvolution
from modelsearch.trialstore import Trial


@pytest.fixture(scope="module")
def table():
    return nb.Table()


def completed(space, specs_and_scores, start=1):
    return [Trial(trial_id=start + i, study="s", state="completed", spec=spec, metrics={"objective": s})
            for i, (spec, s) in enumerate(specs_and_scores)]


def test_random_specs_are_cells_of_the_table(table):
    space = nb.NASBench201Space()
    rng = random.Random(0)
    for _ in range(200):
        spec = space.random_spec(rng)
        assert len(spec["edges"]) == nb.EDGES and set(spec["edges"]) <= set(nb.OPS)
        assert space.key(spec) in table.runs
    assert space.random_spec(random.Random(5)) == space.random_spec(random.Random(5))


def test_mutation_changes_exactly_one_edge():
    space = nb.NASBench201Space()
    spec = space.random_spec(random.Random(1))
    edges_hit = set()
    for i in range(300):
        child, mutation = space.mutate(spec, random.Random(i))
        changed = [e for e in range(nb.EDGES) if child["edges"][e] != spec["edges"][e]]
        assert len(changed) == 1 and mutation.startswith(f"edge:{changed[0]}:")
        edges_hit.add(changed[0])
        assert space.mutate(spec, random.Random(i)) == (child, mutation)
    assert edges_hit == set(range(nb.EDGES))
    assert spec == space.random_spec(random.Random(1))  # the parent is not modified


def test_keys_are_unique_and_match_the_table(table):
    space = nb.NASBench201Space()
    keys = {space.key({"edges": list(ops)}) for ops in itertools.product(nb.OPS, repeat=nb.EDGES)}
    assert len(keys) == 5 ** 6 == len(table.runs)
    assert keys == set(table.runs)


def test_table_truth_and_seeded_draws(table):
    assert {len(runs) for runs in table.runs.values()} == {2, 3}
    assert table.true[table.optimum] == max(table.true.values())
    assert len(table.top10) == 10 and table.optimum in table.top10
    three = next(k for k, runs in table.runs.items() if len(runs) == 3 and len(set(runs)) == 3)
    draws = [table.observe(three, 7, e) for e in range(3)]
    assert sorted(draws) == sorted(table.runs[three])  # re-evaluations see the other recorded seeds
    assert table.observe(three, 7, 0) == draws[0] and table.observe(three, 7, 3) == draws[0]
    assert len({table.observe(three, s, 0) for s in range(30)}) > 1  # the study seed picks the draw


def test_returned_is_the_best_mean_result():
    space = nb.NASBench201Space()
    a, b = (space.random_spec(random.Random(i)) for i in range(2))
    trials = completed(space, [(a, 91.0), (b, 90.9), (a, 90.0)])
    assert nb.returned(trials, space) == space.key(b)  # a's lucky first result is averaged away


def test_evolution_waits_for_a_full_population():
    space = nb.NASBench201Space()
    strategy = RegularizedEvolution(population=5, tournament=2)
    trials = completed(space, [(space.random_spec(random.Random(i)), i) for i in range(4)])
    candidates = strategy.propose(trials, 3, space, random.Random(0))
    assert all(c.parent_id is None and c.mutation == "random" for c in candidates)


def test_evolution_tournament_and_aging():
    space = nb.NASBench201Space()
    specs = []
    for ops in itertools.product(nb.OPS, repeat=nb.EDGES):
        specs.append({"edges": list(ops)})
        if len(specs) == 8:
            break
    # Trial 1 is the best ever but has aged out of the last-5 population; trial 8 is the best in it.
    trials = completed(space, zip(specs, [99, 1, 2, 3, 4, 5, 6, 50]))
    full = RegularizedEvolution(population=5, tournament=5)  # the tournament is the whole population
    candidates = full.propose(trials, 6, space, random.Random(0))
    assert {c.parent_id for c in candidates} == {8}
    assert all(c.mutation.startswith("edge:") for c in candidates)
    keys = [space.key(c.spec) for c in candidates]
    assert len(set(keys)) == 6 and not set(keys) & {space.key(s) for s in specs}
    small = RegularizedEvolution(population=5, tournament=2)
    parents = {c.parent_id for i in range(20) for c in small.propose(trials, 3, space, random.Random(i))}
    assert parents <= {5, 6, 7, 8} and len(parents) > 1  # never the aged-out trials, nor the worst member
    again = small.propose(trials, 3, space, random.Random(4))
    assert [c.to_json() for c in again] == [c.to_json() for c in small.propose(trials, 3, space, random.Random(4))]
    with pytest.raises(ValueError, match="tournament"):
        RegularizedEvolution(population=5, tournament=6)


def test_evolution_is_registered():
    assert isinstance(strategies.create("evolution", beam_size=3, p_deeper=0.5, min_completed=2), RegularizedEvolution)


def test_smoke_run_writes_json(tmp_path, capsys):
    out = tmp_path / "nb201.json"
    nb.main(["--seeds", "2", "--budgets", "20,10", "--out", str(out)])
    results = json.loads(out.read_text())
    assert set(results["strategies"]) == set(strategies.names())
    assert results["budgets"] == [10, 20] and results["optimum"]["key"] == "333132"
    for name, r in results["strategies"].items():
        for budget, s in r["budgets"].items():
            assert len(s["returned"]) == 2
            assert 0 <= s["p_top10"] <= 1 and 0 <= s["p_optimum"] <= s["p_top10"]
            assert 10 < s["mean_true_accuracy"] <= results["optimum"]["true_accuracy"]
    # Evolution's first 50 trials are random, seeded as random search's: the same studies.
    assert results["strategies"]["evolution"]["budgets"] == results["strategies"]["random"]["budgets"]
    assert "| beam | 20 |" in capsys.readouterr().out


def test_study_spends_exactly_the_budget(table):
    space = nb.NASBench201Space()
    seen = []

    class Recording(RegularizedEvolution):
        def propose(self, trials, n, space, rng):
            seen.append((len(trials), n))
            return super().propose(trials, n, space, rng)

    result = nb.run_study(Recording(population=4, tournament=2), space, table, [7, 9], seed=3, round_size=4)
    assert seen == [(0, 4), (4, 4), (8, 1)] and set(result) == {7, 9}


def test_help(capsys):
    with pytest.raises(SystemExit) as exit_:
        nb.main(["--help"])
    assert exit_.value.code == 0 and "--budgets" in capsys.readouterr().out


def test_async_trainers_finish_out_of_order(table):
    space = nb.NASBench201Space()
    asked = []

    class Recording(RegularizedEvolution):
        def propose(self, trials, n, space, rng):
            asked.append(([t.state for t in trials], n))
            return super().propose(trials, n, space, rng)

    strategy = Recording(population=4, tournament=2)
    trials = nb.simulate_async(strategy, space, table, budget=12, seed=3, trainers=3)
    assert len(trials) == 12 and len(asked) == 12 and all(n == 1 for _, n in asked)  # one at a time, no more
    assert len({space.key(t.spec) for t in trials}) == 12 and all(t.state == "completed" for t in trials)
    assert [t.number for t in trials] == list(range(12))
    assert {t.worker for t in trials} == {f"trainer-{i}" for i in range(3)}
    assert [states.count("running") for states, _ in asked[:3]] == [0, 1, 2]  # at time 0, earlier ones are taken
    assert all(states.count("running") == 2 for states, _ in asked[3:])  # a trainer asks while 2 others train
    by_finish = sorted(trials, key=lambda t: (t.finished, t.number))
    assert any(a.number > b.number for a, b in zip(by_finish, by_finish[1:]))  # a later start finished first
    for t in trials:
        assert t.finished == t.started + table.seconds[space.key(t.spec)]
        assert t.metrics["objective"] in table.runs[space.key(t.spec)]
    again = nb.simulate_async(Recording(population=4, tournament=2), space, table, budget=12, seed=3, trainers=3)
    assert [t.to_json() for t in again] == [t.to_json() for t in trials]
    assert nb.run_async_study(strategy, space, table, [5, 12], seed=3, trainers=3) == {
        5: nb.returned(trials[:5], space), 12: nb.returned(trials, space)}


def test_async_smoke_run_writes_json(tmp_path):
    out = tmp_path / "nb201_async.json"
    nb.main(["--mode", "async", "--trainers", "4", "--seeds", "2", "--budgets", "10,20", "--out", str(out)])
    results = json.loads(out.read_text())
    assert results["mode"] == "async" and results["trainers"] == 4 and "round_size" not in results
    assert all(len(s["returned"]) == 2 for r in results["strategies"].values() for s in r["budgets"].values())


def test_image_baseline_verdict():
    """The bar of benchmarks/image_baseline.py: the best trial on validation (not on test) against the CNN."""
    from benchmarks.image_baseline import verdict

    def trial(i, val, test, start, end):
        return {"trial_id": i, "val_accuracy": val, "test_accuracy": test, "started": start, "finished": end,
                "seconds": end - start}

    trials = [trial(1, 0.90, 0.99, 0, 10), trial(2, 0.95, 0.93, 0, 20), trial(3, None, None, 20, 30)]
    v = verdict(trials, {"test_accuracy": 0.94, "train_s": 10.0})
    assert v["best_trial"]["trial_id"] == 2 and v["span_s"] == 30 and v["time_ratio"] == 3.0
    assert v["time_holds"] and not v["accuracy_holds"] and not v["holds"]
    assert verdict(trials, {"test_accuracy": 0.93, "train_s": 4.0})["accuracy_holds"]
    assert not verdict(trials, {"test_accuracy": 0.93, "train_s": 4.0})["time_holds"]  # 7.5x


def test_warped_digits_are_28x28_grayscale_in_class_folders(tmp_path):
    import numpy as np
    from PIL import Image

    from benchmarks.image_sets import write_warped_digits

    root = write_warped_digits(str(tmp_path / "warped"), count=40)
    files = sorted(tmp_path.glob("warped/*/*.png"))
    assert len(files) == 40 and {f.parent.name for f in files} <= {str(d) for d in range(10)}
    pixels = [np.asarray(Image.open(f)) for f in files]
    assert all(p.shape == (28, 28) and p.dtype == np.uint8 for p in pixels)
    assert len({p.tobytes() for p in pixels}) == 40  # every image is warped its own way
    again = write_warped_digits(str(tmp_path / "again"), count=40)
    assert [np.asarray(Image.open(f)).tobytes() for f in sorted(tmp_path.glob("again/*/*.png"))] == \
        [p.tobytes() for p in pixels] and root != again  # seeded: the same set each time
