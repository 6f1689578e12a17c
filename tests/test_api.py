"""The notebook API (pipelines/api.py): modelsearch.ModelSearch runs the CLI's pipeline in this process."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import modelsearch
from modelsearch.errors import UserError
from pipelines.api import COLUMNS_AFTER, COLUMNS_BEFORE, ModelSearch, option_names
from tests.test_pipeline_e2e import ONE_STUDENT, write_tiny_csv


def write_csv(path, n=120, seed=0):
    write_tiny_csv(path, n=n, seed=seed)
    return str(path)


def test_import_is_light():
    """`import modelsearch` imports neither TensorFlow nor the pipelines layer; ModelSearch comes on demand."""
    code = ("import modelsearch, sys\n"
            "assert 'tensorflow' not in sys.modules and 'pipelines' not in sys.modules\n"
            "ms = modelsearch.ModelSearch(label='y', trials=3)\n"
            "assert 'tensorflow' not in sys.modules, 'ModelSearch() imported tensorflow'\n"
            "from modelsearch import config\n"
            "print(type(ms).__module__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "pipelines.api"
    assert modelsearch.ModelSearch is ModelSearch
    with pytest.raises(AttributeError):
        modelsearch.NoSuchThing  # noqa: B018


def test_unknown_keyword_is_a_type_error(tmp_path):
    with pytest.raises(TypeError, match="max_epocs") as error:
        ModelSearch(label="y", max_epocs=3)
    assert "max_epochs" in str(error.value) and "output_dir" in str(error.value)  # the valid ones are named
    with pytest.raises(TypeError, match="nope"):
        ModelSearch(label="y", output_dir=tmp_path).fit(str(tmp_path / "d.csv"), nope=1)
    with pytest.raises(TypeError, match="to_csv"):
        ModelSearch(label="y", output_dir=tmp_path).fit([[1, 2]])
    with pytest.raises(TypeError, match="config must be"):
        ModelSearch(label="y", config=3)


def test_options_are_the_clis():
    from pipelines.cli import make_parser
    assert {"trials", "trainers", "seed", "strategy", "max_epochs", "problem_type", "input_kind", "input_shape",
            "push_destination", "study", "config", "label"} <= set(option_names())
    assert not {"data", "output_dir", "rounds", "help"} & set(option_names())
    make_parser()  # the same parser builds the options
    with pytest.raises(UserError, match="^ModelSearch: trials: invalid int value: 'many'"):
        ModelSearch(label="y", trials="many")
    with pytest.raises(UserError, match="problem_type: invalid choice"):
        ModelSearch(label="y", problem_type="ranking")


def test_defaults_and_reading_an_empty_study(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ms = ModelSearch(label="y", study="mine")
    assert ms.output_dir == str(tmp_path / "modelsearch_runs" / "mine") and ms.study == "mine"
    frame = ms.trials()
    assert list(frame.columns) == COLUMNS_BEFORE + COLUMNS_AFTER and len(frame) == 0
    assert ms.summary is None
    with pytest.raises(UserError, match="holds no study yet"):
        ms.best_model()
    assert not (tmp_path / "modelsearch_runs").exists()  # reading created nothing


def test_a_bad_configuration_raises_before_any_pipeline(tmp_path):
    data = write_csv(tmp_path / "d.csv", n=30)
    ms = ModelSearch(label="kind", output_dir=tmp_path / "o", config={"knobs": {"optimizer": ["nope"]}})
    with pytest.raises(UserError, match="knob optimizer: unknown optimizer 'nope'; choose from adam, adamw"):
        ms.fit(data)
    config = tmp_path / "x.json"
    config.write_text(json.dumps({"knobs": {"dropout": [1.5]}}))
    with pytest.raises(UserError, match=f"search configuration {config}: knob dropout: 1.5 is not a dropout rate"):
        ModelSearch(label="kind", output_dir=tmp_path / "o", config=config).fit(data)
    assert not (tmp_path / "o" / "trials.sqlite").exists()  # nothing was started


@pytest.mark.slow
def test_fit_trials_best_model_export_and_continue(tmp_path):
    import tensorflow as tf

    from modelsearch.trialstore import TrialStore

    data = write_csv(tmp_path / "tiny.csv")
    out = tmp_path / "run"
    ms = modelsearch.ModelSearch(label="kind", trials=2, output_dir=out, trainers=2, max_epochs=2, seed=1,
                                 push_destination=tmp_path / "serving",
                                 config={"ensemble": {"replicas": 0}, **ONE_STUDENT})
    summary = ms.fit(data)
    assert summary == json.loads((out / "summary.json").read_text()) and ms.summary is summary
    assert summary["trials_completed"] == 2 and summary["trials_failed"] == 0
    assert summary["ensemble"] and summary["student"] and summary["push"]["pushed"]

    # trials(): one row per trial of the store, the metrics as columns.
    store = TrialStore({"sqlite": str(out / "trials.sqlite")})
    recorded = store.trials("default")
    frame = ms.trials()
    assert list(frame["trial_id"]) == [t.trial_id for t in recorded]
    assert list(frame.columns[:5]) == COLUMNS_BEFORE and list(frame.columns[-5:]) == COLUMNS_AFTER
    assert {"val_accuracy", "test_accuracy", "val_loss", "objective", "epochs"} <= set(frame.columns)
    search = frame[frame["kind"] == "search"]
    assert sorted(search["number"]) == [0, 1] and (search["state"] == "completed").all()
    assert search["architecture"].str.len().gt(0).all() and (search["num_params"] > 0).all()
    assert set(frame["kind"]) == {"search", "ensemble", "student"}
    best = frame.set_index("trial_id").loc[summary["best"]["trial_id"]]
    assert best["val_accuracy"] == pytest.approx(summary["best"]["metrics"]["val_accuracy"])

    # best_model(): Keras models on the transformed input `x`, logits of the 3 classes out.
    for kind in ("search", "ensemble", "student", "pushed"):
        model = ms.best_model(kind)
        x = np.zeros((5, *model.input_shape[1:]), np.float32)
        assert model.predict(x, verbose=0).shape == (5, 3), kind
    raw = {"x1": tf.constant([0.5, -1.0]), "x2": tf.constant([0.1, 0.2]), "x3": tf.constant([0.0, 0.0]),
           "shape": tf.constant(["round", "square"])}
    served = ms.best_model(serving=True).signatures["serving_default"](**raw)
    np.testing.assert_allclose(served["probabilities"].numpy().sum(axis=1), 1.0, rtol=1e-5)

    # export(): the pushed model's serving SavedModel, loadable and serving on raw features.
    exported = ms.export(tmp_path / "exported" / "1")
    assert exported == str(tmp_path / "exported" / "1")
    assert os.path.exists(os.path.join(exported, "saved_model.pb"))
    outputs = tf.saved_model.load(exported).signatures["serving_default"](**raw)
    assert outputs["probabilities"].shape == (2, 3) and set(outputs["classes"].numpy()) <= {b"a", b"b", b"c"}
    with pytest.raises(UserError, match="not an empty folder"):
        ms.export(exported)

    # A second fit in the same process continues the study (the forkserver lives on; nothing needs an exit).
    summary = ms.fit(data, trials=3)
    assert summary["trials_completed"] == 3
    search = ms.trials().query("kind == 'search'")
    assert sorted(search["number"]) == [0, 1, 2] and (search["state"] == "completed").all()

    # Another ModelSearch on the same output directory reads the same study.
    again = ModelSearch(label="kind", output_dir=out)
    assert len(again.trials()) == len(store.trials("default")) and again.summary == summary
