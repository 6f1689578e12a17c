"""Every choice is made on validation data: changing the test split's labels changes no decision.

Two copies of one preprocessed table differ only in the test split's labels, in the transformed examples
(`Split-test/`) and in the raw rows (`Raw-test/`) alike. The same trials (same specs, same seeds) are trained
on each copy, then the exploit stages run on each against the same previously pushed model. Every decision
must come out the same (the strategies' proposals and the beam, the ranking, the ensemble's method, members
and weights, the student, the winner and the push), while the reported test metrics differ.

The changed test labels are adversarial, not shuffled: they are what a deliberately weak trial (a learning
rate too small to learn) predicts on the test rows. On the changed copy that trial scores 1.0 on test and the
others far less, so any choice that read the test split would go the other way there: a test-based ranking
would put the weak trial first (and so into the beam, the ensemble's pool and the student's choice), and a
test-based push comparison against the weak model, pushed before, could never push. The test asserts those
test scores below, so it fails if any decision is made on test.
"""
import os
import random
import shutil

import numpy as np
import pytest

from modelsearch.config import SearchConfig
from modelsearch.trialstore import COMPLETED

KNOBS = {"optimizer": "adam", "dropout": 0.0, "batch_size": 32}
# (block, units, learning rate): a weak one, whose predictions become the changed labels, and three that learn.
# The weak one comes first, before any trial completed: early stopping across trials cannot stop it (its model
# is needed), whatever that rule's settings.
TRIALS = [("dense", 8, 1e-5), ("dense", 64, 0.01), ("dense", 16, 0.01), ("residual_dense", 32, 0.01)]
WEAK = 0
OTHERS = [i for i in range(len(TRIALS)) if i != WEAK]


def _write_table(path, rows=400):
    rng = np.random.default_rng(0)
    with open(path, "w") as f:
        f.write("a,b,c,colour,y\n")
        for _ in range(rows):
            v = rng.normal(size=3)
            colour = rng.choice(["red", "blue"])
            label = "p" if v[0] + (colour == "red") > 0.5 else ("q" if v[1] > 0 else "r")
            f.write(f"{v[0]:.4f},{v[1]:.4f},{v[2]:.4f},{colour},{label}\n")


def _rewrite(files, relabel):
    """Rewrites gzipped TFRecord files of tf.Examples in place; `relabel(examples)` sets their labels."""
    import tensorflow as tf

    for path in files:
        records = list(tf.data.TFRecordDataset(path, compression_type="GZIP").as_numpy_iterator())
        examples = [tf.train.Example.FromString(r) for r in records]
        relabel(records, examples)
        with tf.io.TFRecordWriter(path, options=tf.io.TFRecordOptions(compression_type="GZIP")) as writer:
            for example in examples:
                writer.write(example.SerializeToString())


def relabel_test_split(examples_dir, schema, keras_model, saved_model):
    """The test split's labels replaced by a model's predictions: transformed rows by the Keras model, raw rows
    by its served SavedModel (the same model: see test_exploit's check that they agree)."""
    import tensorflow as tf

    from modelsearch.data import split_files
    from modelsearch.raw_examples import LABEL_KEY, RAW_DIR, raw_tf_spec

    def transformed(records, examples):
        x = np.array([e.features.feature["x"].float_list.value for e in examples], "float32")
        predicted = np.argmax(keras_model.predict(x.reshape(-1, *schema["input_shape"]), verbose=0), axis=1)
        for example, label in zip(examples, predicted):
            example.features.feature["label"].int64_list.value[:] = [int(label)]

    signature = tf.saved_model.load(saved_model).signatures["serving_default"]
    spec = {(c.get("serving_name") or c["name"]): tf.io.FixedLenFeature(*raw_tf_spec(c)) for c in schema["columns"]}

    def raw(records, examples):
        class_ids = signature(**tf.io.parse_example(records, spec))["class_ids"].numpy().reshape(-1)
        for example, class_id in zip(examples, class_ids):
            name = schema["task"]["classes"][int(class_id)].encode("utf-8")
            example.features.feature[LABEL_KEY].bytes_list.value[:] = [name]

    _rewrite(split_files(examples_dir, "test"), transformed)
    _rewrite(sorted(tf.io.gfile.glob(os.path.join(examples_dir, RAW_DIR.format(split="test"), "*.gz"))), raw)


def train_trials(store, examples, transform, config, root):
    from modelsearch.training import start_and_run

    for i, (name, units, learning_rate) in enumerate(TRIALS):
        spec = {"blocks": [{"name": name, "params": {"units": units}}], "head": "avg",
                "knobs": {**KNOBS, "learning_rate": learning_rate}}
        t = start_and_run({"spec": spec, "seed": i}, examples, transform, store, "s", config, str(root / f"m{i}"))
        assert t.state == COMPLETED, t.error
    return store.trials("s")


def validation_only(metrics):
    return {k: v for k, v in metrics.items() if not k.startswith("test_")}


@pytest.mark.slow
def test_changing_the_test_labels_changes_no_decision(tmp_path):
    from test_exploit import push_with_tfx

    from components.preprocess.executor import run_preprocess
    from components.preprocess.schema import infer_schema
    from modelsearch import strategies
    from modelsearch.distilling import distill
    from modelsearch.ensembling import build_ensemble
    from modelsearch.exploit import completed_search, ranked, student_candidates, teacher_for
    from modelsearch.export import SERVING_DIR, load_trial_model
    from modelsearch.search import create_strategy
    from modelsearch.selection import decide
    from modelsearch.space import SearchSpace
    from modelsearch.strategies.beam_search import BeamSearch
    from modelsearch.trialstore import TrialStore

    _write_table(tmp_path / "d.csv")
    schema = infer_schema(str(tmp_path / "d.csv"), "y")
    transform = str(tmp_path / "transform")
    run_preprocess(str(tmp_path / "d.csv"), schema, str(tmp_path / "examples_a"), transform)
    # Early stopping off: every trial must complete, so that both copies have the same trials to decide on.
    config = SearchConfig.from_json({"max_epochs": 8, "patience": 3, "early_stopping": {"rule": "none"},
                                     "ensemble": {"top_k": 3, "replicas": 0, "methods": ["average", "weighted"]},
                                     "student": {"widths": [0.5], "smallest": 1}})
    runs = {}
    for copy in ("a", "b"):
        root = tmp_path / copy
        root.mkdir()
        examples = str(tmp_path / f"examples_{copy}")
        if copy == "b":  # the same rows and splits; only the test labels differ
            shutil.copytree(tmp_path / "examples_a", examples)
            weak = runs["a"]["trials"][WEAK]
            relabel_test_split(examples, schema, load_trial_model(runs["a"]["store"], weak, schema, config),
                               os.path.join(weak.model_uri, SERVING_DIR))
        store = TrialStore({"sqlite": str(root / "trials.sqlite")})
        runs[copy] = {"root": root, "examples": examples, "store": store,
                      "trials": train_trials(store, examples, transform, config, root)}
    a, b = runs["a"], runs["b"]

    # The trials: trained alike (validation metrics, sizes), reported differently on test.
    for ta, tb in zip(a["trials"], b["trials"]):
        assert (ta.trial_id, ta.spec, ta.num_params) == (tb.trial_id, tb.spec, tb.num_params)
        assert validation_only(tb.metrics) == pytest.approx(validation_only(ta.metrics), rel=1e-6)
    test_accuracy = {c: [t.metrics["test_accuracy"] for t in runs[c]["trials"]] for c in "ab"}
    others = {c: [test_accuracy[c][i] for i in OTHERS] for c in "ab"}
    assert test_accuracy["b"][WEAK] == 1.0 > max(others["b"])  # on test, the weak trial is best...
    assert test_accuracy["a"][WEAK] < min(others["a"])  # ...but not on the true labels

    # The search's decisions: the ranking, the beam, the teacher, the student, every strategy's proposals.
    def ids(trials):
        return [t.trial_id for t in trials]

    order = ids(ranked(completed_search(a["trials"])))
    assert order == ids(ranked(completed_search(b["trials"]))) and order[-1] == a["trials"][WEAK].trial_id
    beam = BeamSearch(beam_size=2)
    assert ids(beam.beam(a["trials"])) == ids(beam.beam(b["trials"])) == order[:2]
    distillation = {**config.distillation, "mode": "soft_ce"}
    assert teacher_for(a["trials"], distillation) == teacher_for(b["trials"], distillation)
    def tries(trials):
        return [(c.parent.trial_id, c.mutation, c.spec) for c in student_candidates(trials, config.student)]

    students = tries(a["trials"])
    assert students == tries(b["trials"]) and len(students) > 1
    space = SearchSpace(config, schema["input_shape"])
    for name in strategies.names():
        strategy = create_strategy(SearchConfig.from_json({"strategy": name, "beam_size": 2, "min_completed": 2}))
        proposed = {c: [x.to_json() for x in strategy.propose(runs[c]["trials"], 4, space, random.Random(7))]
                    for c in "ab"}
        assert proposed["a"] == proposed["b"], name

    # The exploit stages, against the same previously pushed model (the weak trial's).
    destination = str(tmp_path / "serving")
    push_with_tfx(os.path.join(a["trials"][WEAK].model_uri, SERVING_DIR), destination, tmp_path / "push0")
    for run in (a, b):
        store, root, args = run["store"], run["root"], (run["examples"], transform)
        best = ranked(completed_search(store.trials("s")))[0]
        run["ensemble"] = build_ensemble(store, "s", config, *args, str(root / "ensemble"))
        run["student"] = distill(store, "s", config, run["ensemble"], *args, str(root / "student"))
        run["decision"] = decide(store, "s", config, [best, run["ensemble"], run["student"]], *args, destination)

    ea, eb = a["ensemble"], b["ensemble"]
    assert (ea.spec["method"], ea.spec["members"], ea.spec["pool"]) == (eb.spec["method"], eb.spec["members"],
                                                                        eb.spec["pool"])
    assert a["trials"][WEAK].trial_id not in ea.spec["pool"]
    assert eb.spec["weights"] == pytest.approx(ea.spec["weights"], abs=1e-6)
    for method, compared in ea.spec["compared"].items():
        other = eb.spec["compared"][method]
        assert np.asarray(other.get("fold_weights", [])) == pytest.approx(np.asarray(compared.get("fold_weights", [])),
                                                                           abs=1e-6)
        assert validation_only(other["metrics"]) == pytest.approx(validation_only(compared["metrics"]), rel=1e-6)
    assert ea.metrics["test_accuracy"] != eb.metrics["test_accuracy"]

    sa, sb = a["student"], b["student"]  # the kept ones of the students tried
    assert (sa.spec, sa.parent_id, sa.teacher_id, sa.mutation) == (sb.spec, sb.parent_id, sb.teacher_id, sb.mutation)
    assert (sa.parent_id, sa.mutation) in {(parent, mutation) for parent, mutation, _ in students}
    trained = {copy: [(t.parent_id, t.mutation) for t in runs[copy]["store"].completed("s", kinds=("student",))]
               for copy in ("a", "b")}
    assert trained["a"] == trained["b"] and set(trained["a"]) <= {(parent, mutation) for parent, mutation, _ in students}

    da, db = a["decision"], b["decision"]
    decided = ("winner_trial_id", "winner_kind", "pushed", "reason", "previous_version")
    assert {k: da[k] for k in decided} == {k: db[k] for k in decided}
    assert db["validation"] == pytest.approx(da["validation"])
    assert db["previous_validation"] == da["previous_validation"]
    assert da["pushed"] and da["reason"].startswith("validation accuracy")
    # Reported only: on the changed labels the pushed (weak) model is perfect on test and the winner is not, so
    # a push compared on test would have refused there what it pushed on the true labels.
    assert db["previous_test"]["accuracy"] == 1.0 > db["test"]["accuracy"]
    assert da["test"]["accuracy"] > da["previous_test"]["accuracy"]
