"""Trainer pieces without an orchestrator: weight sharing, and one real trial recorded in the store."""
import numpy as np
import pytest

import blocks
from modelsearch.weight_sharing import copy_matching_weights

TASK = {"type": "classification", "num_classes": 3}


def data(n=300, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8)).astype("float32")
    y = (x[:, 0] + x[:, 1] > 0).astype("int64") + (x[:, 2] > 1).astype("int64")
    return x, y


def model_for(spec, seed):
    import keras
    keras.utils.set_random_seed(seed)
    model = blocks.build_model(spec, (8,), TASK)
    blocks.compile_model(model, spec, TASK)
    return model


@pytest.mark.slow
def test_child_from_parent_weights_starts_with_lower_loss():
    x, y = data()
    knobs = {"learning_rate": 0.01, "optimizer": "adam", "dropout": 0.0, "batch_size": 32}
    parent_spec = {"blocks": [{"name": "dense", "params": {"units": 32}}], "head": "avg", "knobs": knobs}
    child_spec = {**parent_spec, "blocks": parent_spec["blocks"] + [
        {"name": "residual_dense", "params": {"units": 32}}]}
    parent = model_for(parent_spec, 1)
    parent.fit(x, y, epochs=30, verbose=0, batch_size=32)

    warm = model_for(child_spec, 2)
    copied = copy_matching_weights(warm, parent)
    cold = model_for(child_spec, 2)
    assert copied >= 2  # the first block's kernel and bias at least
    warm_loss = warm.evaluate(x, y, verbose=0, return_dict=True)["loss"]
    cold_loss = cold.evaluate(x, y, verbose=0, return_dict=True)["loss"]
    assert warm_loss < cold_loss


@pytest.mark.slow
def test_same_architecture_inherits_every_tensor():
    spec = {"blocks": [{"name": "dense", "params": {"units": 16}}], "head": "avg", "knobs": {}}
    parent, child = model_for(spec, 1), model_for(spec, 2)
    assert copy_matching_weights(child, parent) == len(parent.weights)
    x, _ = data(5)
    np.testing.assert_allclose(child.predict(x, verbose=0), parent.predict(x, verbose=0), rtol=1e-5)
