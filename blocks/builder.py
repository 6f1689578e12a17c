"""Architecture spec -> keras.Model.

A spec is plain JSON:
    {"blocks": [{"name": "dense", "params": {"units": 128}}, ...],   # missing params take defaults
     "head": "avg",            # rank 2/3 outputs: "avg" | "max" | "flatten"; ignored for rank 1
     "knobs": {"dropout": 0.1, "learning_rate": 0.001, "optimizer": "adam", "batch_size": 64}}

Layer names are deterministic: block i uses the prefix f"b{i}_{block_name}", the head uses
"head_pool" / "head_flatten" / "head_dropout", the output is "logits" (classification, no
activation) or "prediction" (regression). Trainers copy weights between models by these names.
"""

from __future__ import annotations

import keras

from blocks import registry
from blocks.registry import default_params
from common.errors import UserError

HEADS = ("avg", "max", "flatten")
OPTIMIZERS = ("adam", "sgd", "rmsprop", "adamw")


def _blocks_of(spec) -> list:
    if not isinstance(spec, dict):
        raise UserError(f"an architecture spec must be a mapping with 'blocks', got {type(spec).__name__}")
    blocks = spec.get("blocks", [])
    if not isinstance(blocks, (list, tuple)):
        raise UserError("spec 'blocks' must be a list of {'name': ..., 'params': {...}}")
    for i, b in enumerate(blocks):
        if not isinstance(b, dict) or not isinstance(b.get("name"), str):
            raise UserError(f"spec block {i} must be a mapping with a 'name', got {b!r}")
        if not isinstance(b.get("params", {}) or {}, dict):
            raise UserError(f"spec block {i} ({b['name']}): 'params' must be a mapping")
    return list(blocks)


def validate_spec(spec: dict, input_rank: int) -> None:
    """Raise UserError naming the first problem: unknown block, a block that does not accept the
    rank at its position, params outside the block's space, or a bad head."""
    if input_rank not in (1, 2, 3):
        raise UserError(f"input rank {input_rank} is not supported; inputs must be vectors (1), "
                        "sequences (2) or images (3)")
    rank = input_rank
    for i, b in enumerate(_blocks_of(spec)):
        block = registry.get(b["name"])
        if rank not in block.ranks:
            raise UserError(f"spec block {i} ({block.name}) accepts input rank {sorted(block.ranks)}, "
                            f"but gets rank {rank} at that position")
        unknown = sorted(set(b.get("params", {}) or {}) - set(block.space))
        if unknown:
            raise UserError(f"spec block {i} ({block.name}): unknown params {unknown}; "
                            f"known params: {sorted(block.space)}")
        rank = block.output_rank(rank)
    head = spec.get("head", "avg")
    if head not in HEADS:
        raise UserError(f"spec head {head!r} is not one of {', '.join(HEADS)}")
    knobs = spec.get("knobs", {}) or {}
    if not isinstance(knobs, dict):
        raise UserError("spec 'knobs' must be a mapping")
    dropout = knobs.get("dropout", 0.0) or 0.0
    if not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
        raise UserError(f"spec knob dropout must be a number in [0, 1), got {dropout!r}")


def _output_layer(task: dict):
    kind = (task or {}).get("type")
    if kind == "classification":
        n = task.get("num_classes")
        if not isinstance(n, int) or n < 2:
            raise UserError(f"classification needs num_classes >= 2, got {n!r}")
        return keras.layers.Dense(n, name="logits")
    if kind == "regression":
        return keras.layers.Dense(1, name="prediction")
    raise UserError(f"task type must be 'classification' or 'regression', got {kind!r}")


def build_model(spec: dict, input_shape: tuple, task: dict) -> keras.Model:
    """Build the (uncompiled) model for a spec on inputs of `input_shape` (no batch axis)."""
    input_shape = tuple(int(d) for d in input_shape)
    validate_spec(spec, len(input_shape))
    output = _output_layer(task)
    inputs = keras.Input(shape=input_shape, name="x")
    x = inputs
    for i, b in enumerate(_blocks_of(spec)):
        block = registry.get(b["name"])
        params = {**default_params(block), **(b.get("params") or {})}
        x = block.apply(x, f"b{i}_{block.name}", **params)
    rank = len(x.shape) - 1
    if rank > 1:
        head = spec.get("head", "avg")
        if head == "flatten":
            x = keras.layers.Flatten(name="head_flatten")(x)
        elif rank == 2:
            pool = keras.layers.GlobalAveragePooling1D if head == "avg" else keras.layers.GlobalMaxPooling1D
            x = pool(name="head_pool")(x)
        else:
            pool = keras.layers.GlobalAveragePooling2D if head == "avg" else keras.layers.GlobalMaxPooling2D
            x = pool(name="head_pool")(x)
    dropout = float((spec.get("knobs") or {}).get("dropout", 0.0) or 0.0)
    if dropout > 0:
        x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    return keras.Model(inputs, output(x), name="candidate")


def make_optimizer(knobs: dict):
    knobs = knobs or {}
    name = str(knobs.get("optimizer", "adam")).lower()
    lr = float(knobs.get("learning_rate", 0.001))
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=lr)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=lr, momentum=0.9)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate=lr)
    if name == "adamw":
        return keras.optimizers.AdamW(learning_rate=lr)
    raise UserError(f"unknown optimizer {knobs.get('optimizer')!r}; choose one of {', '.join(OPTIMIZERS)}")


def compile_model(model: keras.Model, spec: dict, task: dict, **compile_kwargs) -> keras.Model:
    """Compile with the spec's optimizer knobs and the task's loss and metric; returns the model.
    Extra keyword arguments (jit_compile, run_eagerly, steps_per_execution) go to model.compile."""
    optimizer = make_optimizer((spec or {}).get("knobs") or {})
    if (task or {}).get("type") == "classification":
        model.compile(optimizer=optimizer,
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"], **compile_kwargs)
    else:
        model.compile(optimizer=optimizer, loss=keras.losses.MeanSquaredError(), metrics=["mae"], **compile_kwargs)
    return model
