"""Keras models of recorded trials: build a spec, or rebuild a completed trial with its trained weights.

An ensemble trial is rebuilt from its members (each a completed trial) and its recorded weights.
"""
from __future__ import annotations

import json
import os

from modelsearch.config import SearchConfig
from modelsearch.trialstore import ENSEMBLE, Trial, TrialStore

WEIGHTS_FILE = "weights.weights.h5"
SERVING_DIR = "Format-Serving"  # where TFX's Pusher looks for a SavedModel in a Model artifact


def read_schema(transform_dir: str) -> dict:
    from components.artifacts import SCHEMA_FILE
    with open(os.path.join(transform_dir, SCHEMA_FILE)) as f:
        return json.load(f)


def build(spec: dict, schema: dict, config: SearchConfig):
    import blocks
    blocks.load_user_blocks(config.custom_blocks)
    return blocks.build_model(spec, tuple(schema["input_shape"]), schema["task"])


def build_compiled(spec: dict, schema: dict, config: SearchConfig):
    import blocks
    return blocks.compile_model(build(spec, schema, config), spec, schema["task"])


def load_trial_model(store: TrialStore, trial: Trial, schema: dict, config: SearchConfig):
    """A completed trial's (uncompiled) Keras model with its trained weights."""
    if trial.kind == ENSEMBLE:
        from components.ensembler.mixture import ensemble_model
        members = [load_trial_model(store, store.get(i), schema, config) for i in trial.spec["members"]]
        return ensemble_model(members, schema, trial.spec["weights"])
    model = build(trial.spec, schema, config)  # uncompiled: the optimizer state is not wanted
    model.load_weights(os.path.join(trial.model_uri, WEIGHTS_FILE))
    return model
