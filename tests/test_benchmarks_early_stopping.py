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
