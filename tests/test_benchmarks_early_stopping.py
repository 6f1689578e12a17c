"""The median rule on against off (benchmarks/early_stopping.py): the summary's arithmetic, and a tiny real run."""
import json

import pytest

from benchmarks import early_stopping, peers


def run(seed, rule, epochs, stopped, val, test):
    return {"dataset": "d", "seed": seed, "rule": rule, "search_trials": 10, "search_epochs": epochs,
            "stopped": stopped, "search_s": epochs / 10, "wall_s": 1.0,
            "best": {"val_accuracy": val}, "pushed": {"test_accuracy": test}}


def test_summary_pairs_the_rules_seed_by_seed():
    runs = [run(0, "median", 100, 4, 0.9, 0.8), run(0, "none", 200, 0, 0.92, 0.82),
            run(1, "median", 150, 2, 0.8, 0.7), run(1, "none", 100, 0, 0.8, 0.7),
            run(2, "median", 10, 9, 0.1, 0.1),  # no run without the rule: not in the means
            {"dataset": "d", "seed": 3, "rule": "none", "error": "boom"}]
    (row,) = early_stopping.summarize(runs)
    assert row["seeds"] == [0, 1] and row["epochs_ratio"] == pytest.approx(250 / 300)
    assert row["epochs_on"] == 125 and row["epochs_off"] == 150 and row["stopped"] == 3
    assert row["best_val_on"] == pytest.approx(0.85) and row["pushed_test_off"] == pytest.approx(0.76)
    assert "| d | 0,1 | 125 / 150 | 0.83 |" in early_stopping.markdown({"summary": [row]})


@pytest.mark.slow
def test_early_stopping_benchmark_runs_both_rules(tmp_path):
    budget = peers.budget_of(models=5, trainers=1, replicas=1, max_epochs=2, patience=1)
    out = tmp_path / "es.json"
    early_stopping.run(["breast_cancer"], [0], budget, str(tmp_path / "work"), str(out))
    results = json.loads(out.read_text())
    runs = {r["rule"]: r for r in results["runs"]}
    assert set(runs) == set(early_stopping.RULES) and all("error" not in r for r in runs.values()), runs
    for rule, r in runs.items():
        config = json.loads((tmp_path / "work" / "breast_cancer" / "seed0" / rule / "search.json").read_text())
        assert config["early_stopping"] == {"rule": rule} and config["max_epochs"] == 2
        assert r["search_trials"] == 1 and 1 <= r["search_epochs"] <= 2 and r["stopped"] == 0
        assert 0 <= r["pushed"]["test_accuracy"] <= 1
    assert [s["seeds"] for s in results["summary"]] == [[0]]
    # Resumed: both runs are kept and nothing trains again.
    again = early_stopping.run(["breast_cancer"], [0], budget, str(tmp_path / "work"), str(out), resume=True)
    assert again["runs"] == results["runs"]


def test_time_ratio_only_over_pairs_that_ran_one_after_the_other():
    taken = {**run(0, "median", 100, 4, 0.9, 0.8), "from": "peers_n30.json"}
    runs = [taken, run(0, "none", 200, 0, 0.92, 0.82)]
    (row,) = early_stopping.summarize(runs)
    assert row["epochs_ratio"] == 0.5 and row["search_s_ratio"] is None
    assert "| 0.50 | 4.0 | - |" in early_stopping.markdown({"summary": [row]})
    (row,) = early_stopping.summarize(runs + [run(1, "median", 30, 1, 0.9, 0.8), run(1, "none", 60, 0, 0.9, 0.8)])
    assert row["search_s_ratio"] == pytest.approx(3 / 6)  # seed 1's pair only


def test_the_rules_runs_are_taken_from_the_peers_benchmarks_runs_of_ours(tmp_path):
    from modelsearch.trialstore import TrialStore

    budget = peers.budget_of(models=5, trainers=1, replicas=1, max_epochs=3, patience=1)
    store = TrialStore({"sqlite": str(tmp_path / "bench-peers" / "digits" / "seed0" / "ours" / "trials.sqlite")})
    for epochs in (3, 2):
        trial_id = store.start_trial(peers.STUDY, {"blocks": [], "head": "avg", "knobs": {}})
        store.record_curve(trial_id, [{"epoch": e, "loss": 1.0, "val_accuracy": 0.5} for e in range(1, epochs + 1)])
        store.complete_trial(trial_id, {"test_accuracy": 0.9, "val_accuracy": 0.8, "epochs": epochs},
                             num_params=10, num_inherited=0, model_uri="", train_seconds=1.0)
    best = {"test_accuracy": 0.9, "val_accuracy": 0.8, "num_params": 10, "trial_id": 1}
    ours = {"dataset": "digits", "seed": 0, "commit": "abc", "tool": "ours", "trial_id": 1, "test_accuracy": 0.9,
            "trials": 2, "wall_s": 9.0, "search_s": 8.0, "best": best, "pushed": {**best, "kind": "search"}}
    peers_file = tmp_path / "peers.json"
    peers_file.write_text(json.dumps({"settings": {"budget": budget}, "runs": [ours, {**ours, "seed": 1}]}))
    (taken,) = early_stopping.from_peers(str(peers_file), budget, str(tmp_path / "bench-peers"))  # seed 1: no store
    assert taken == {"dataset": "digits", "seed": 0, "rule": "median", "commit": "abc", "from": "peers.json",
                     "search_trials": 2, "search_epochs": 5, "stopped": 0, "wall_s": 9.0, "search_s": 8.0,
                     "best": best, "pushed": ours["pushed"]}
    other = peers.budget_of(models=8, trainers=1, replicas=1, max_epochs=3, patience=1)
    assert early_stopping.from_peers(str(peers_file), other, str(tmp_path / "bench-peers")) == []
    # With the run without the rule already in the file, the benchmark has its pair and trains nothing.
    out = tmp_path / "es.json"
    out.write_text(json.dumps({"settings": {"budget": budget},
                               "runs": [{**run(0, "none", 10, 0, 0.8, 0.9), "dataset": "digits"}]}))
    result = early_stopping.run(["digits"], [0], budget, str(tmp_path / "work"), str(out), resume=True,
                                median_from=[str(peers_file)], peers_workdir=str(tmp_path / "bench-peers"))
    assert [r["rule"] for r in result["runs"]] == ["none", "median"]  # seed 1 is not asked for
    (row,) = result["summary"]
    assert row["epochs_on"] == 5 and row["epochs_off"] == 10 and row["search_s_ratio"] is None
