"""How a trial ends, whatever ends it: completed with its learning curve and TensorBoard logs, diverged (a NaN
loss: recorded as such, no NaN in the store, no model files), failed by a custom block's sys.exit; and the
exploit stages, rerun on the same trials, reuse what they made instead of making it again."""
import math
import os

import numpy as np
import pytest

from modelsearch.config import SearchConfig
from modelsearch.trialstore import COMPLETED, DIVERGED, FAILED, TrialStore

KNOBS = {"learning_rate": 0.01, "optimizer": "adam", "dropout": 0.0, "batch_size": 32}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from components.preprocess.executor import run_preprocess
    from components.preprocess.schema import infer_schema
    root = tmp_path_factory.mktemp("outcomes")
    rng = np.random.default_rng(0)
    with open(root / "d.csv", "w") as f:
        f.write("a,b,y\n")
        for _ in range(200):
            v = rng.normal(size=2)
            f.write(f"{v[0]:.4f},{v[1]:.4f},{'p' if v[0] > 0 else 'q'}\n")
    examples, transform = str(root / "examples"), str(root / "transform")
    run_preprocess(str(root / "d.csv"), infer_schema(str(root / "d.csv"), "y"), examples, transform)
    # The median rule off: these trials end as asserted, whatever the curves before them (test_early_stopping.py).
    config = SearchConfig.from_json({"max_epochs": 4, "patience": 4, "ensemble": {"replicas": 0},
                                     "early_stopping": {"rule": "none"},
                                     "custom_blocks": [{"name": "exits", "path": "tests.user_blocks_example.exits",
                                                        "ranks": [1], "kind": "function"}]})
    return {"root": root, "examples": examples, "transform": transform, "config": config,
            "store": TrialStore({"sqlite": str(root / "trials.sqlite")})}


def _train(tiny, name, blocks, knobs=KNOBS, seed=0):
    from modelsearch.training import start_and_run
    spec = {"blocks": blocks, "head": "avg", "knobs": knobs}
    return start_and_run({"spec": spec, "seed": seed}, tiny["examples"], tiny["transform"], tiny["store"], "s",
                         tiny["config"], str(tiny["root"] / name))


@pytest.mark.slow
def test_a_trial_ends_completed_diverged_or_failed_and_says_why(tiny):
    done = _train(tiny, "ok", [{"name": "dense", "params": {"units": 8}}])
    assert done.state == COMPLETED, done.error
    assert [e["epoch"] for e in done.curve] == list(range(1, int(done.metrics["epochs"]) + 1))
    assert {"loss", "val_loss", "val_accuracy"} <= set(done.curve[0])
    assert os.listdir(os.path.join(done.model_uri, "tensorboard"))  # TensorBoard logs of the trial

    diverged = _train(tiny, "nan", [{"name": "dense", "params": {"units": 8}}],
                      {**KNOBS, "optimizer": "sgd", "learning_rate": 1e12})
    assert diverged.state == DIVERGED, (diverged.state, diverged.error)
    assert diverged.error.startswith("diverged:") and "learning rate" in diverged.error
    assert not os.path.exists(tiny["root"] / "nan")  # no model files kept
    assert all(math.isfinite(v) for v in diverged.metrics.values())  # nothing, or numbers: never a NaN
    assert all(v is None or math.isfinite(v) for e in diverged.curve for v in e.values())

    exited = _train(tiny, "exit", [{"name": "exits", "params": {}}])
    assert exited.state == FAILED and "sys.exit(3)" in exited.error
    assert not os.path.exists(tiny["root"] / "exit")

    # The search goes on after them: the next trial trains as ever.
    assert _train(tiny, "after", [{"name": "dense", "params": {"units": 4}}], seed=1).state == COMPLETED


@pytest.mark.slow
def test_exploit_stages_reuse_what_a_rerun_would_make_again(tiny):
    from modelsearch.distilling import distill
    from modelsearch.ensembling import build_ensemble
    store, config = tiny["store"], tiny["config"]
    for i in range(2):
        assert _train(tiny, f"m{i}", [{"name": "dense", "params": {"units": 4 + i}}], seed=10 + i).state == COMPLETED
    args = (store, "s", config, tiny["examples"], tiny["transform"])
    ensemble = build_ensemble(*args, str(tiny["root"] / "e1"))
    assert build_ensemble(*args, str(tiny["root"] / "e2")).trial_id == ensemble.trial_id
    assert not os.path.exists(tiny["root"] / "e2")
    student = distill(store, "s", config, ensemble, tiny["examples"], tiny["transform"], str(tiny["root"] / "s1"))
    assert student.state == COMPLETED, student.error
    again = distill(store, "s", config, ensemble, tiny["examples"], tiny["transform"], str(tiny["root"] / "s2"))
    assert again.trial_id == student.trial_id
    # Other ensemble settings (or another pool of best trials) make a new ensemble.
    other = SearchConfig.from_json({**config.to_json(), "ensemble": {"replicas": 0, "top_k": 2}})
    assert build_ensemble(store, "s", other, tiny["examples"], tiny["transform"],
                          str(tiny["root"] / "e3")).trial_id != ensemble.trial_id
