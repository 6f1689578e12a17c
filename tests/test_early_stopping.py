"""Early stopping across trials: the median rule as a pure function of curves (curves in, decision out), its
config section, the STOPPED state in the trial store and in the strategies; and, slow, a hopeless trial that the
rule stops once good trials completed, recorded with its curve, metrics and model, and seen as evidence."""
import json
import os
import random

import pytest

from modelsearch import early_stopping
from modelsearch.config import SearchConfig
from modelsearch.early_stopping import decide
from modelsearch.errors import UserError
from modelsearch.trialstore import COMPLETED, RUNNING, SEARCH, STOPPED, Trial, TrialStore

RULE = dict(early_stopping.DEFAULTS)  # median, min_epochs 3, min_trials 3, margin 0


def curve(*val_accuracy, key="val_accuracy"):
    return [{"epoch": i, "loss": 1.0, "val_loss": 1.0, key: v} for i, v in enumerate(val_accuracy, 1)]


def losses(*val_loss):
    return [{"epoch": i, "loss": v, "val_loss": v, "val_mae": v ** 0.5} for i, v in enumerate(val_loss, 1)]


GOOD = [curve(0.70, 0.80, 0.85, 0.88, 0.90), curve(0.72, 0.82, 0.86, 0.89, 0.90),
        curve(0.65, 0.78, 0.84, 0.87, 0.89)]


# ---- the rule: curves in, decision out ------------------------------------------------------------------------

def test_a_clearly_worse_curve_stops_at_min_epochs_and_says_why():
    stop = decide(curve(0.30, 0.33, 0.35), GOOD, RULE, "classification")
    assert stop is not None and (stop.epoch, stop.best, stop.trials, stop.metric) == (3, 0.35, 3, "val_accuracy")
    # The bar: the median of the completed trials' mean val_accuracy over epochs 1-3 (Vizier's running average).
    assert stop.median == pytest.approx(sorted([(0.70 + 0.80 + 0.85) / 3, (0.72 + 0.82 + 0.86) / 3,
                                                (0.65 + 0.78 + 0.84) / 3])[1])
    assert stop.reason(60) == ("stopped at epoch 3 of 60 by the median rule: best val_accuracy 0.35 below the "
                               "median 0.7833 of 3 completed trials' mean val_accuracy over epochs 1-3")


def test_never_before_min_epochs():
    assert decide(curve(0.30, 0.31), GOOD, RULE, "classification") is None
    assert decide(curve(0.30, 0.31), GOOD, {**RULE, "min_epochs": 2}, "classification") is not None
    assert decide(curve(0.30, 0.31, 0.32), GOOD, {**RULE, "min_epochs": 4}, "classification") is None


def test_never_with_fewer_than_min_trials_comparable_curves():
    hopeless = curve(0.30, 0.31, 0.32)
    assert decide(hopeless, GOOD[:2], RULE, "classification") is None
    assert decide(hopeless, GOOD[:2], {**RULE, "min_trials": 2}, "classification") is not None
    # A completed trial without a curve (or with nothing finite in it) is not comparable: it does not count.
    no_values = [{"epoch": 1, "loss": None, "val_loss": None, "val_accuracy": None}]
    assert decide(hopeless, GOOD[:2] + [[], no_values], RULE, "classification") is None


def test_the_margin_is_in_the_objectives_units():
    median = decide(curve(0.30, 0.30, 0.30), GOOD, RULE, "classification").median
    near = curve(0.5, 0.6, median - 0.01)
    assert decide(near, GOOD, RULE, "classification") is not None
    assert decide(near, GOOD, {**RULE, "margin": 0.02}, "classification") is None
    assert decide(near, GOOD, {**RULE, "margin": 0.005}, "classification") is not None


def test_the_best_so_far_counts_not_the_last_epoch():
    # A dip at epoch 3 after a good epoch 2: its best (0.84) is above the bar, it trains on.
    assert decide(curve(0.70, 0.84, 0.40), GOOD, RULE, "classification") is None


def test_a_slow_starter_level_with_what_completed_trials_showed_trains_on():
    # Below every completed trial's best so far at epoch 3 (0.84-0.86), above the median of their running
    # averages (0.78): the rule is lenient with slow starters.
    assert decide(curve(0.40, 0.60, 0.80), GOOD, RULE, "classification") is None


def test_regression_compares_minus_the_validation_loss():
    done = [losses(900.0, 400.0, 300.0, 250.0), losses(1000.0, 500.0, 280.0), losses(800.0, 450.0, 320.0, 260.0)]
    worse = losses(5000.0, 4800.0, 4700.0)
    stop = decide(worse, done, RULE, "regression")
    assert stop is not None and stop.metric == "val_loss" and stop.best == -4700.0
    assert "best val_loss 4700 above the median 533.3 of 3 completed trials' mean val_loss" in stop.reason()
    assert decide(losses(1200.0, 500.0, 300.0), done, RULE, "regression") is None  # as good: trains on
    # The margin in the loss's units.
    assert decide(losses(1200.0, 800.0, 650.0), done, RULE, "regression") is not None
    assert decide(losses(1200.0, 800.0, 650.0), done, {**RULE, "margin": 100.0}, "regression") is not None
    assert decide(losses(1200.0, 800.0, 650.0), done, {**RULE, "margin": 150.0}, "regression") is None


def test_shorter_completed_curves_use_their_whole_curve():
    # Completed trials that patience ended at epoch 3 are compared at epoch 6 by their mean over epochs 1-3.
    short = [curve(0.70, 0.80, 0.85), curve(0.72, 0.82, 0.86), curve(0.65, 0.78, 0.84)]
    assert decide(curve(0.5, 0.6, 0.7, 0.72, 0.74, 0.76), short, RULE, "classification") is not None
    assert decide(curve(0.5, 0.6, 0.7, 0.76, 0.78, 0.79), short, RULE, "classification") is None
    # Epoch 6 of a running trial against curves of 5, 3 and 2 epochs alike.
    mixed = [GOOD[0], curve(0.72, 0.82, 0.86), curve(0.65, 0.78)]
    stop = decide(curve(*[0.5] * 6), mixed, RULE, "classification")
    assert stop.median == pytest.approx((0.72 + 0.82 + 0.86) / 3)


def test_a_distilled_trial_is_judged_on_the_true_labels():
    # A distilled trial's val_loss is its distillation loss: val_label_accuracy / val_label_loss are watched.
    distilled = [{"epoch": i, "loss": 9.0, "val_loss": 9.0, "val_label_loss": 2.0, "val_label_accuracy": v}
                 for i, v in enumerate((0.30, 0.31, 0.32), 1)]
    stop = decide(distilled, GOOD, RULE, "classification")
    assert stop is not None and stop.metric == "val_label_accuracy" and stop.best == 0.32
    # Completed curves of distilled trials are read the same way.
    taught = [[{"epoch": e["epoch"], "val_loss": 9.0, "val_label_accuracy": e["val_accuracy"]} for e in c]
              for c in GOOD]
    assert decide(curve(0.30, 0.31, 0.32), taught, RULE, "classification").median == pytest.approx(stop.median)
    regression = [{"epoch": i, "val_loss": 1.0, "val_label_loss": v} for i, v in enumerate((50.0, 40.0, 35.0), 1)]
    assert decide(regression, [losses(9.0, 8.0, 7.0)] * 3, RULE, "regression").metric == "val_label_loss"


def test_non_finite_values_are_skipped_and_none_finite_never_stops():
    with_nulls = curve(0.30, None, 0.32)
    assert decide(with_nulls, GOOD, RULE, "classification").best == 0.32
    assert decide(curve(None, None, None), GOOD, RULE, "classification") is None
    assert decide([], GOOD, RULE, "classification") is None


def test_rule_none_never_stops():
    assert decide(curve(0.0, 0.0, 0.0, 0.0), GOOD, {**RULE, "rule": "none"}, "classification") is None


# ---- the config section ---------------------------------------------------------------------------------------

def test_defaults_and_a_partial_section():
    assert SearchConfig.from_json({}).early_stopping == {"rule": "median", "min_epochs": 3, "min_trials": 3,
                                                         "margin": 0.0}
    config = SearchConfig.from_json({"early_stopping": {"rule": "none"}})
    assert config.early_stopping == {**RULE, "rule": "none"}
    assert SearchConfig.from_json({"early_stopping": {"margin": 2}}).early_stopping["margin"] == 2


@pytest.mark.parametrize("section, message", [
    ({"rule": "asha"}, "early_stopping.rule must be one of median, none, got 'asha'"),
    ({"min_epochs": 0}, "early_stopping.min_epochs must be a whole number >= 1, got 0"),
    ({"min_epochs": 2.5}, "early_stopping.min_epochs must be a whole number >= 1, got 2.5"),
    ({"min_trials": True}, "early_stopping.min_trials must be a whole number >= 1, got True"),
    ({"margin": -0.1}, "early_stopping.margin must be a number >= 0"),
    ({"margin": float("nan")}, "early_stopping.margin must be a number >= 0"),
    ({"margin": "0.1"}, "early_stopping.margin must be a number >= 0"),
    ({"patience": 3}, "unknown early_stopping setting(s) patience; known: rule, min_epochs, min_trials, margin"),
])
def test_bad_sections_say_what_is_wrong(section, message):
    with pytest.raises(UserError, match="^search configuration x.json: " + message.replace("(", r"\(")
                       .replace(")", r"\)")):
        SearchConfig.from_json({"early_stopping": section}, source="search configuration x.json")
    with pytest.raises(UserError, match="early_stopping must be an object"):
        SearchConfig.from_json({"early_stopping": "median"})


# ---- the STOPPED state: trial store, budget, strategies -------------------------------------------------------

SPEC = {"blocks": [{"name": "dense", "params": {"units": 8}}], "head": "avg", "knobs": {"learning_rate": 0.001}}


def test_a_stopped_trial_keeps_its_model_metrics_curve_and_reason(tmp_path):
    from modelsearch.search import counted
    store = TrialStore({"sqlite": str(tmp_path / "t.sqlite")})
    done = store.reserve("s", 0, 0, SPEC, "a")
    store.complete_trial(done, {"objective": 0.9}, 10, 0, str(tmp_path / "m0"), 1.0)
    stopped = store.reserve("s", 1, 0, {**SPEC, "head": "max"}, "b")
    store.record_curve(stopped, curve(0.3, 0.31, 0.32))
    store.complete_trial(stopped, {"objective": 0.32, "epochs": 3}, 10, 0, str(tmp_path / "m1"), 1.0,
                         state=STOPPED, reason="stopped at epoch 3 of 60 by the median rule: ...")
    t = store.get(stopped)
    assert (t.state, t.metrics["epochs"], len(t.curve), t.model_uri) == (STOPPED, 3, 3, str(tmp_path / "m1"))
    assert t.error.startswith("stopped at epoch 3 of 60")
    assert store._model_artifact(stopped) is not None  # its children may warm-start from it
    assert [x.trial_id for x in counted(store.trials("s"))] == [done, stopped]  # against the budget
    assert [x.trial_id for x in store.completed("s")] == [done]  # the exploit stages' pool: completed only
    with pytest.raises(ValueError):
        store.complete_trial(done, {}, 1, 0, "", 0.0, state="failed")


class ListSpace:
    """A space of numbered specs: enough for the strategies (random_spec, mutate, key)."""

    def random_spec(self, rng):
        return {"n": rng.randrange(10 ** 9)}

    def mutate(self, spec, rng, p_deeper=0.5):
        return {"n": spec["n"] * 31 + rng.randrange(1, 1000)}, "bump"

    def key(self, spec):
        return json.dumps(spec, sort_keys=True)


def trial(i, state, objective):
    return Trial(trial_id=i, study="s", state=state, spec={"n": i}, metrics={"objective": objective},
                 kind=SEARCH)


def test_the_beam_takes_stopped_trials_as_evidence_ranked_by_their_objective():
    from modelsearch.exploit import completed_search
    from modelsearch.strategies.beam_search import BeamSearch
    beam = BeamSearch(beam_size=2, min_completed=2, evaluations=1)
    trials = [trial(1, COMPLETED, 0.9), trial(2, COMPLETED, 0.8), trial(3, STOPPED, 0.4), trial(4, "failed", 0)]
    assert [ts[0].trial_id for _, ts in beam.ranked(trials)] == [1, 2, 3]
    assert [t.trial_id for t in beam.beam(trials)] == [1, 2]  # too low to be a parent
    parents = {c.parent_id for c in beam.propose(trials, 20, ListSpace(), random.Random(0))}
    assert parents == {1, 2}
    # It counts towards min_completed: with it, the beam mutates; without it, still random.
    three = BeamSearch(beam_size=3, min_completed=3, evaluations=1)
    assert None not in {c.parent_id for c in three.propose(trials, 3, ListSpace(), random.Random(0))}
    assert {c.parent_id for c in three.propose(trials[:2], 3, ListSpace(), random.Random(0))} == {None}
    # A stopped trial whose objective still ranks in the beam is a parent like any other.
    high = [trial(1, COMPLETED, 0.9), trial(2, COMPLETED, 0.5), trial(3, STOPPED, 0.7)]
    assert [t.trial_id for t in beam.beam(high)] == [1, 3]
    # Never a teacher, ensemble member or student: the exploit stages take completed trials only.
    assert [t.trial_id for t in completed_search(trials)] == [1, 2]


def test_evolution_keeps_stopped_trials_in_its_population():
    from modelsearch.strategies.regularized_evolution import RegularizedEvolution
    evolution = RegularizedEvolution(population=3, tournament=2)
    trials = [trial(1, COMPLETED, 0.9), trial(2, STOPPED, 0.4), trial(3, COMPLETED, 0.8), trial(4, RUNNING, 0)]
    assert [t.trial_id for t in evolution.current_population(trials)] == [1, 2, 3]


# ---- the rule in training: where it applies, what it reads ----------------------------------------------------

def test_the_rule_reads_completed_search_curves_of_the_same_data_version(tmp_path):
    from modelsearch.training import median_rule
    store = TrialStore({"sqlite": str(tmp_path / "t.sqlite")})
    config = SearchConfig.from_json({"max_epochs": 10})

    def finished(i, c, kind=SEARCH, state=COMPLETED, version=0):
        trial_id = store.start_trial("s", {**SPEC, "i": i}, kind=kind, data_version=version)
        store.record_curve(trial_id, c)
        if state in (COMPLETED, STOPPED):
            store.complete_trial(trial_id, {"objective": c[-1]["val_accuracy"]}, 1, 0, "", 0.0, state=state)
        return trial_id

    finished(1, GOOD[0])
    finished(2, GOOD[1])
    # Not comparable: a stopped trial, a replica, another data version, a running trial.
    finished(3, curve(0.9, 0.9, 0.9), state=STOPPED)
    finished(4, curve(0.9, 0.9, 0.9), kind="replica")
    finished(5, curve(0.9, 0.9, 0.9), version=1)
    finished(6, curve(0.9, 0.9, 0.9), state=RUNNING)
    running = store.get(store.start_trial("s", {**SPEC, "i": 7}))
    check = median_rule(store, running, config, "classification")
    assert check(curve(0.3, 0.3, 0.3)) is None  # two comparable trials: fewer than min_trials
    finished(8, GOOD[2])
    check = median_rule(store, running, config, "classification")  # a fresh reader (no refresh wait)
    assert check(curve(0.3, 0.3)) is None  # before min_epochs
    assert check(curve(0.3, 0.3, 0.3)).startswith("stopped at epoch 3 of 10 by the median rule")
    assert check(curve(*[0.3] * 10)) is None  # the last epoch: it ends anyway, completed
    # Not for exploit trials, re-evaluations, or with the rule off.
    replica = store.get(store.start_trial("s", SPEC, kind="replica"))
    assert median_rule(store, replica, config, "classification") is None
    again = store.get(store.start_trial("s", SPEC, mutation="reevaluate:1"))
    assert median_rule(store, again, config, "classification") is None
    off = SearchConfig.from_json({"early_stopping": {"rule": "none"}})
    assert median_rule(store, running, off, "classification") is None


# ---- slow: real trials --------------------------------------------------------------------------------------

KNOBS = {"learning_rate": 0.01, "optimizer": "adam", "dropout": 0.0, "batch_size": 32}


@pytest.fixture(scope="module")
def quadrants(tmp_path_factory):
    """A preprocessed table whose 4 classes are the quadrants of (a, b): learnt in a few epochs, and chance
    (about 0.25) for a model that does not learn."""
    import numpy as np

    from components.preprocess.executor import run_preprocess
    from components.preprocess.schema import infer_schema
    root = tmp_path_factory.mktemp("early_stopping")
    rng = np.random.default_rng(0)
    with open(root / "d.csv", "w") as f:
        f.write("a,b,y\n")
        for _ in range(600):
            a, b = rng.normal(size=2)
            f.write(f"{a:.4f},{b:.4f},{'pn'[int(a > 0)]}{'pn'[int(b > 0)]}\n")
    examples, transform = str(root / "examples"), str(root / "transform")
    run_preprocess(str(root / "d.csv"), infer_schema(str(root / "d.csv"), "y"), examples, transform)
    # patience = max_epochs: a trial that is not stopped by the rule trains every epoch.
    config = SearchConfig.from_json({"max_epochs": 8, "patience": 8, "min_completed": 3, "beam_size": 3})
    return {"root": root, "examples": examples, "transform": transform, "config": config,
            "store": TrialStore({"sqlite": str(root / "trials.sqlite")})}


@pytest.mark.slow
def test_a_hopeless_trial_stops_early_and_is_evidence(quadrants):
    from modelsearch.export import SERVING_DIR, read_schema
    from modelsearch.search import counted, create_strategy
    from modelsearch.space import SearchSpace
    from modelsearch.training import start_and_run
    q, store = quadrants, quadrants["store"]

    def train(name, units, knobs, seed):
        spec = {"blocks": [{"name": "dense", "params": {"units": units}}], "head": "avg", "knobs": knobs}
        return start_and_run({"spec": spec, "seed": seed}, q["examples"], q["transform"], store, "s", q["config"],
                             str(q["root"] / name))

    good = [train(f"good{i}", units, KNOBS, i) for i, units in enumerate((16, 32, 24))]
    for t in good:  # the first three cannot be stopped: fewer than min_trials (3) completed before them
        assert t.state == COMPLETED, t.error
        assert len(t.curve) == 8 and t.metrics["epochs"] == 8
    hopeless = train("hopeless", 16, {**KNOBS, "optimizer": "sgd", "learning_rate": 1e-7}, 9)
    assert hopeless.state == STOPPED, (hopeless.state, hopeless.error, hopeless.curve)
    assert hopeless.error.startswith("stopped at epoch 3 of 8 by the median rule: best val_accuracy"), hopeless.error
    assert [e["epoch"] for e in hopeless.curve] == [1, 2, 3] and hopeless.metrics["epochs"] == 3
    assert {"loss", "val_loss", "accuracy", "val_accuracy"} <= set(hopeless.curve[0])
    # Evaluated, exported and recorded like a completed trial: metrics, parameters, its model.
    assert {"val_accuracy", "test_accuracy", "objective"} <= set(hopeless.metrics) and hopeless.num_params > 0
    assert os.path.exists(os.path.join(hopeless.model_uri, SERVING_DIR))
    assert hopeless.metrics["objective"] < min(t.metrics["objective"] for t in good)

    # Evidence for the beam: ranked with the completed trials by its objective (last), so not in the beam of 3
    # and not among the parents of the beam's mutants.
    trials = counted(store.trials("s"))
    assert [t.trial_id for t in trials] == [t.trial_id for t in good] + [hopeless.trial_id]
    strategy = create_strategy(q["config"])
    assert [ts[0].trial_id for _, ts in strategy.ranked(trials)][-1] == hopeless.trial_id
    space = SearchSpace(q["config"], read_schema(q["transform"])["input_shape"])
    candidates = strategy.propose(trials, 4, space, random.Random(0))
    parents = {c.parent_id for c in candidates}
    assert None not in parents and hopeless.trial_id not in parents
    assert parents <= {t.trial_id for t in good}


@pytest.mark.slow
def test_a_child_that_training_made_worse_keeps_its_parents_weights_and_counts_its_epochs(quadrants):
    from modelsearch.training import KEPT_PARENT_WEIGHTS, start_and_run
    q = quadrants
    store = TrialStore({"sqlite": str(q["root"] / "kept.sqlite")})  # no completed trials: no median rule

    def train(name, knobs, parent_id=None):
        spec = {"blocks": [{"name": "dense", "params": {"units": 16}}], "head": "avg", "knobs": knobs}
        return start_and_run({"spec": spec, "seed": 1, "parent_id": parent_id}, q["examples"], q["transform"],
                             store, "kept", q["config"], str(q["root"] / name))

    parent = train("parent", KNOBS)
    assert parent.state == COMPLETED and parent.metrics["val_accuracy"] > 0.8, parent.metrics
    # The same architecture warm-started, then thrown about by a learning rate far too large for it (Adam: steps
    # of about the learning rate, finite).
    child = train("child", {**KNOBS, "learning_rate": 3.0}, parent.trial_id)
    assert child.state == COMPLETED and child.num_inherited > 0, (child.state, child.error)
    assert child.metrics.get(KEPT_PARENT_WEIGHTS) == 1.0, (parent.metrics, child.curve)
    assert child.metrics["val_accuracy"] == pytest.approx(parent.metrics["val_accuracy"])
    # The epochs it trained were run all the same: counted, as its curve has them.
    assert child.metrics["epochs"] == len(child.curve) >= 1
    assert KEPT_PARENT_WEIGHTS not in parent.metrics
