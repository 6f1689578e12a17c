"""The objective: the validation metric traded against parameters and serving latency (soft and hard, for
classification and regression), its config section, the Pareto front; and, slow, a real trial trained with a
latency target that records its latency and the objective by the formula."""
import math
import random

import pytest

from modelsearch import objective
from modelsearch.config import SearchConfig
from modelsearch.errors import UserError
from modelsearch.exploit import ranked
from modelsearch.objective import pareto_front, value
from modelsearch.trialstore import COMPLETED, FAILED, Trial

SOFT = {**objective.DEFAULTS, "max_params": 1000}
HARD = {**SOFT, "constraint": "hard"}
ACC = {"val_accuracy": 0.8, "val_loss": 0.5}
LOSS = {"val_loss": 4.0}


# ---- value: the formulas -----------------------------------------------------------------------------------

def test_without_a_target_it_is_the_plain_validation_metric():
    for settings in (None, objective.DEFAULTS, {**objective.DEFAULTS, "constraint": "hard"}):
        assert value(ACC, "classification", 10 ** 9, 500.0, settings) == 0.8
        assert value(LOSS, "regression", 10 ** 9, 500.0, settings) == -4.0
    # A latency target with no latency measured (a model not served yet) leaves the parameter term only.
    latency_only = {**objective.DEFAULTS, "max_latency_ms": 2.0}
    assert value(ACC, "classification", 10 ** 9, None, latency_only) == 0.8


def test_soft_is_mnasnets_reward_on_both_sides_of_the_target():
    assert value(ACC, "classification", 1000, None, SOFT) == pytest.approx(0.8)
    assert value(ACC, "classification", 2000, None, SOFT) == pytest.approx(0.8 * 2 ** -0.07)
    assert value(ACC, "classification", 500, None, SOFT) == pytest.approx(0.8 * 0.5 ** -0.07)
    assert value(ACC, "classification", 500, None, SOFT) > 0.8 > value(ACC, "classification", 2000, None, SOFT)
    both = {**SOFT, "max_latency_ms": 4.0, "weight": -0.2}
    assert value(ACC, "classification", 3000, 2.0, both) == pytest.approx(0.8 * 3 ** -0.2 * 0.5 ** -0.2)
    assert value(ACC, "classification", 3000, 2.0, {**both, "weight": 0}) == 0.8


def test_soft_regression_makes_the_loss_worse_over_the_target():
    assert value(LOSS, "regression", 2000, None, SOFT) == pytest.approx(-(4.0 * 2 ** 0.07))
    assert value(LOSS, "regression", 500, None, SOFT) == pytest.approx(-(4.0 * 0.5 ** 0.07))
    assert value(LOSS, "regression", 2000, None, SOFT) < -4.0 < value(LOSS, "regression", 500, None, SOFT)


def test_a_smaller_model_beats_a_slightly_better_much_larger_one_softly():
    small = value({"val_accuracy": 0.80}, "classification", 1000, None, SOFT)
    large = value({"val_accuracy": 0.81}, "classification", 100_000, None, SOFT)
    assert small > large  # 0.81 * 100^-0.07 = 0.58


def test_hard_keeps_the_metric_at_or_under_the_target():
    for params in (1, 999, 1000):
        assert value(ACC, "classification", params, None, HARD) == 0.8
        assert value(LOSS, "regression", params, None, HARD) == -4.0


def test_hard_penalises_the_overshoot_among_infeasible_models():
    assert value(ACC, "classification", 2000, None, HARD) == pytest.approx(0.8 / 2 - 1)
    assert value(ACC, "classification", 1100, None, HARD) > value(ACC, "classification", 2000, None, HARD)
    assert value(LOSS, "regression", 1100, None, HARD) > value(LOSS, "regression", 2000, None, HARD)
    both = {**HARD, "max_latency_ms": 1.0}
    assert value(ACC, "classification", 2000, 3.0, both) == pytest.approx(0.8 / 6 - 1)
    assert value(ACC, "classification", 500, 3.0, both) == pytest.approx(0.8 / 3 - 1)  # over on latency only
    assert objective.feasible(500, 0.5, both) and not objective.feasible(500, 3.0, both)


def test_hard_ranks_every_infeasible_trial_below_every_feasible_one():
    best_infeasible = value({"val_accuracy": 1.0}, "classification", 1001, None, HARD)
    worst_feasible = value({"val_accuracy": 0.0}, "classification", 1000, None, HARD)
    assert best_infeasible < worst_feasible
    # Regression: below minus any finite (float32) loss.
    best_infeasible = value({"val_loss": 0.0}, "regression", 1001, None, HARD)
    worst_feasible = value({"val_loss": objective.FLOAT32_MAX}, "regression", 1000, None, HARD)
    assert math.isfinite(best_infeasible) and best_infeasible < worst_feasible
    # The rankings the search and the exploit phase use (score = metrics["objective"]) follow.
    rng = random.Random(0)
    trials = []
    for i in range(40):
        params, acc = rng.choice([200, 900, 1000, 1001, 5000]), rng.random()
        trials.append(Trial(trial_id=i, study="s", state=COMPLETED, spec={}, num_params=params,
                            metrics={"val_accuracy": acc,
                                     "objective": value({"val_accuracy": acc}, "classification", params, None, HARD)}))
    order = [t.num_params <= 1000 for t in ranked(trials)]
    assert order == sorted(order, reverse=True) and any(order) and not all(order)


# ---- the config section ------------------------------------------------------------------------------------

def test_the_config_section_has_defaults_and_takes_targets():
    assert SearchConfig().objective == objective.DEFAULTS
    config = SearchConfig.from_json({"objective": {"max_params": 50_000, "max_latency_ms": 2.5}})
    assert config.objective == {**objective.DEFAULTS, "max_params": 50_000, "max_latency_ms": 2.5}
    assert objective.measures_latency(config.objective) and not objective.measures_latency(SearchConfig().objective)


def test_the_readmes_example_is_a_valid_config():
    import json
    import os
    with open(os.path.join(os.path.dirname(__file__), "..", "README.md")) as f:
        text = f.read().split("### The objective: accuracy, size and latency")[1]
    example = json.loads(text.split("```json")[1].split("```")[0])
    assert SearchConfig.from_json(example).objective["max_latency_ms"] == 5.0


@pytest.mark.parametrize("section, message", [
    ({"max_params": 0}, "objective.max_params must be a whole number >= 1 (a parameter target) or null, got 0"),
    ({"max_params": 1.5}, "objective.max_params must be a whole number >= 1"),
    ({"max_params": True}, "objective.max_params must be a whole number >= 1"),
    ({"max_latency_ms": -1}, "objective.max_latency_ms must be a number of milliseconds > 0"),
    ({"max_latency_ms": "5ms"}, "objective.max_latency_ms must be a number of milliseconds > 0"),
    ({"constraint": "strict"}, "objective.constraint must be one of soft, hard, got 'strict'"),
    ({"weight": 0.07}, "objective.weight must be a number between -1 and 0"),
    ({"weight": None}, "objective.weight must be a number between -1 and 0"),
    ({"max_flops": 10}, "unknown objective setting(s) max_flops; known: max_params, max_latency_ms"),
])
def test_bad_objective_settings_fail_with_a_clear_error(section, message):
    with pytest.raises(UserError, match="^search configuration: " + message.replace("(", r"\(").replace(")", r"\)")):
        SearchConfig.from_json({"objective": section})


# ---- the Pareto front --------------------------------------------------------------------------------------

def trial(i, params, acc=None, loss=None, latency=None, state=COMPLETED):
    metrics = {"val_accuracy": acc} if acc is not None else {"val_loss": loss}
    if latency is not None:
        metrics["latency_ms"] = latency
    # The objective penalises size here: the front is over the plain metric, not over it.
    metrics["objective"] = (acc if acc is not None else -loss) - params / 100
    return Trial(trial_id=i, study="s", state=state, spec={}, num_params=params, metrics=metrics)


def ids(front):
    return [t.trial_id for t in front]


def test_the_front_over_parameters_and_accuracy():
    trials = [trial(1, 100, 0.70), trial(2, 200, 0.80), trial(3, 300, 0.75), trial(4, 50, 0.60),
              trial(5, 400, 0.90), trial(6, 200, 0.80), trial(7, 10, 0.95, state=FAILED), trial(8, 0, 0.99)]
    # 3 is beaten by 2 (fewer parameters, better); 6 equals 2 (the older stands); failed and parameterless out.
    assert ids(pareto_front(trials)) == [4, 1, 2, 5]


def test_the_front_of_regression_is_over_the_loss():
    trials = [trial(1, 100, loss=3.0), trial(2, 200, loss=1.0), trial(3, 300, loss=2.0), trial(4, 50, loss=5.0)]
    assert ids(pareto_front(trials)) == [4, 1, 2]


def test_with_latency_measured_the_front_is_over_three_criteria():
    trials = [trial(1, 100, 0.70, latency=1.0), trial(2, 200, 0.80, latency=3.0),
              trial(3, 300, 0.75, latency=0.5),  # larger and worse than 2, but the fastest: on the front
              trial(4, 300, 0.75, latency=2.0),  # beaten by 3 on latency, the rest equal
              trial(5, 400, 0.70, latency=1.0),  # beaten by 1 on everything
              trial(6, 400, 0.90, latency=9.0)]
    assert ids(pareto_front(trials)) == [1, 2, 3, 6]
    assert ids(pareto_front(trials, latency=False)) == [1, 2, 6]
    # A trial without a latency (measured on none of them) leaves the front over two criteria.
    assert ids(pareto_front(trials + [trial(7, 1000, 0.1)])) == [1, 2, 6]


def test_the_front_is_mutually_non_dominated_and_dominates_the_rest():
    rng = random.Random(1)
    trials = [trial(i, rng.randint(1, 30), round(rng.random(), 1), latency=rng.randint(1, 5)) for i in range(200)]
    front = pareto_front(trials)

    def crit(t):
        return (t.num_params, -t.metrics["val_accuracy"], t.metrics["latency_ms"])

    def dominates(a, b):
        return all(x <= y for x, y in zip(crit(a), crit(b))) and crit(a) != crit(b)

    on = set(ids(front))
    assert not any(dominates(a, b) for a in front for b in front)
    for t in trials:
        if t.trial_id not in on:
            assert any(dominates(f, t) or crit(f) == crit(t) for f in front)


# ---- slow: a real trial with a latency target ----------------------------------------------------------------

@pytest.mark.slow
def test_a_trial_with_a_latency_target_records_its_latency_and_the_objective(tmp_path):
    import numpy as np

    from components.preprocess.executor import run_preprocess
    from components.preprocess.schema import infer_schema
    from modelsearch.export import SERVING_DIR, read_schema
    from modelsearch.latency import one_raw_example, serving_latency_ms
    from modelsearch.training import start_and_run
    from modelsearch.trialstore import TrialStore

    rng = np.random.default_rng(0)
    with open(tmp_path / "d.csv", "w") as f:
        f.write("a,b,y\n")
        for _ in range(120):
            a, b = rng.normal(size=2)
            f.write(f"{a:.4f},{b:.4f},{'pn'[int(a + b > 0)]}\n")
    examples, transform = str(tmp_path / "examples"), str(tmp_path / "transform")
    run_preprocess(str(tmp_path / "d.csv"), infer_schema(str(tmp_path / "d.csv"), "y"), examples, transform)
    settings = {"max_params": 50, "max_latency_ms": 1000.0, "constraint": "soft", "weight": -0.5}
    config = SearchConfig.from_json({"max_epochs": 2, "patience": 2, "objective": settings})
    store = TrialStore({"sqlite": str(tmp_path / "trials.sqlite")})
    spec = {"blocks": [{"name": "dense", "params": {"units": 16}}], "head": "avg",
            "knobs": {"learning_rate": 0.01, "optimizer": "adam", "dropout": 0.0, "batch_size": 32}}
    done = start_and_run({"spec": spec, "seed": 1}, examples, transform, store, "s", config, str(tmp_path / "m"))
    assert done.state == COMPLETED, done.error
    m = store.get(done.trial_id).metrics
    assert 0 < m["latency_ms"] < 1000.0 and 0 <= m["val_accuracy"] <= 1
    assert done.num_params > 50  # over the parameter target, under the latency one: both terms count
    expected = m["val_accuracy"] * (done.num_params / 50) ** -0.5 * (m["latency_ms"] / 1000.0) ** -0.5
    assert m["objective"] == pytest.approx(expected)
    assert m["objective"] != m["val_accuracy"]
    # The measurement itself: the exported model served on one raw validation row, batch 1.
    inputs = one_raw_example(examples, read_schema(transform))
    assert set(inputs) == {"a", "b"} and all(len(v) == 1 for v in inputs.values())
    assert serving_latency_ms(f"{done.model_uri}/{SERVING_DIR}", inputs, warmup=1, calls=3) > 0
