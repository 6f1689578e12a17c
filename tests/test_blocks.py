"""blocks/: every built-in block builds and trains a step; specs validate; user blocks load."""

import numpy as np
import pytest

import blocks
from blocks import registry
from modelsearch.errors import UserError

SHAPES = {1: (5,), 2: (6, 3), 3: (8, 8, 1)}
CLS3 = {"type": "classification", "num_classes": 3}
BUILTINS = blocks.names()
EXAMPLE = "tests.user_blocks_example"


def _train_one_step(spec, input_shape, task=CLS3):
    model = blocks.build_model(spec, input_shape, task)
    blocks.compile_model(model, spec, task, run_eagerly=True)
    x = np.random.default_rng(0).normal(size=(4, *input_shape)).astype("float32")
    y = np.array([0, 1, 2, 1]) if task["type"] == "classification" else np.ones((4, 1), "float32")
    loss = model.train_on_batch(x, y)
    loss = loss[0] if isinstance(loss, (list, tuple)) else loss
    assert np.isfinite(loss)
    return model


@pytest.fixture
def user_blocks():
    """Registers user blocks for one test and removes them afterwards."""
    loaded = []

    def load(entries):
        out = blocks.load_user_blocks(entries)
        loaded.extend(b.name for b in out)
        return out

    yield load
    for name in loaded:
        registry.unregister(name)


def _cases():
    for name in BUILTINS:
        for rank in sorted(blocks.get(name).ranks):
            for variant in ("default", "last"):
                yield pytest.param(name, rank, variant, id=f"{name}-r{rank}-{variant}")


@pytest.mark.slow
@pytest.mark.parametrize("name,rank,variant", list(_cases()))
def test_every_block_trains_one_step(name, rank, variant):
    block = blocks.get(name)
    params = {} if variant == "default" else {k: v[-1] for k, v in block.space.items()}
    spec = {"blocks": [{"name": name, "params": params}], "head": "avg", "knobs": {"dropout": 0.1}}
    model = _train_one_step(spec, SHAPES[rank])
    assert model.output_shape == (None, 3)
    # out_rank respected: the head sees the rank the block declares
    out = model.get_layer("head_pool").input if rank > 1 else model.get_layer("logits").input
    assert len(out.shape) - 1 == block.output_rank(rank)
    assert all(layer.name == "x" or layer.name.startswith(("b0_", "head_", "logits")) for layer in model.layers)


def test_the_linear_model_builds_and_trains():
    """A spec with no blocks: the inputs go straight to the output layer (the first candidate on vectors)."""
    model = _train_one_step({"blocks": [], "head": "avg", "knobs": {}}, (5,))
    assert [layer.name for layer in model.layers] == ["x", "logits"] and model.count_params() == 5 * 3 + 3


def test_registry_basics():
    assert {"dense", "residual_dense", "bottleneck", "conv", "conv_1xk_kx1", "strided_conv", "resnet_block",
            "separable_conv", "max_pool", "avg_pool", "nasnet_cell", "conv1d", "lstm", "bidirectional_lstm",
            "gru", "transformer_encoder"} <= set(BUILTINS)
    assert [b.name for b in blocks.blocks_for_rank(1)] == ["bottleneck", "dense", "residual_dense"]
    assert [b.name for b in blocks.blocks_for_rank(3, families=["pool"])] == ["avg_pool", "max_pool"]
    assert blocks.default_params(blocks.get("dense"))["units"] == blocks.get("dense").space["units"][0]
    for name in BUILTINS:
        b = blocks.get(name)
        assert b.family in registry.FAMILIES and b.ranks <= {1, 2, 3}
        assert all(isinstance(v, list) and v for v in b.space.values())
    with pytest.raises(UserError, match="unknown block 'foo'.*custom_blocks"):
        blocks.get("foo")


@pytest.mark.parametrize(
    "spec,rank,match",
    [
        ({"blocks": [{"name": "nope"}]}, 1, "unknown block 'nope'"),
        ({"blocks": [{"name": "conv"}]}, 1, "rank"),
        ({"blocks": [{"name": "dense"}, {"name": "lstm"}]}, 1, "block 1 \\(lstm\\)"),
        ({"blocks": [{"name": "dense", "params": {"unitz": 3}}]}, 1, "unknown params \\['unitz'\\]"),
        ({"blocks": [{"name": "conv"}], "head": "mean"}, 3, "head"),
        ({"blocks": [{"params": {}}]}, 1, "name"),
        ({"blocks": []}, 4, "rank 4"),
    ],
)
def test_validate_spec_rejects(spec, rank, match):
    with pytest.raises(UserError, match=match):
        blocks.validate_spec(spec, rank)


def test_validate_spec_accepts_defaults():
    blocks.validate_spec({"blocks": [{"name": "conv"}, {"name": "max_pool", "params": {"pool_size": 3}}]}, 3)
    blocks.validate_spec({"blocks": []}, 2)


@pytest.mark.parametrize(
    "task,shape,out",
    [
        ({"type": "classification", "num_classes": 2}, (5,), (None, 2)),
        ({"type": "classification", "num_classes": 10}, (8, 8, 1), (None, 10)),
        ({"type": "regression"}, (6, 3), (None, 1)),
    ],
)
def test_output_shapes(task, shape, out):
    first = {1: "dense", 2: "conv1d", 3: "conv"}[len(shape)]
    model = blocks.build_model({"blocks": [{"name": first}], "head": "max"}, shape, task)
    assert model.output_shape == out
    assert model.layers[-1].name == ("logits" if task["type"] == "classification" else "prediction")
    assert model.layers[-1].get_config()["activation"] == "linear"
    assert model.layers[0].name == "x"


@pytest.mark.slow
def test_regression_and_flatten_head_train():
    spec = {"blocks": [{"name": "conv"}, {"name": "strided_conv"}], "head": "flatten",
            "knobs": {"optimizer": "sgd", "learning_rate": 0.01}}
    model = _train_one_step(spec, SHAPES[3], {"type": "regression"})
    assert "head_flatten" in [layer.name for layer in model.layers]


@pytest.mark.parametrize("shape, maps", [((8, 8, 1), 32), ((8, 8, 3), 30), ((8, 8, 64), 64)])
def test_separable_conv_makes_about_filters_maps_on_few_channels(shape, maps):
    # On a grayscale image one depthwise filter would leave 32 scaled copies of one map: it makes 32 instead.
    spec = {"blocks": [{"name": "separable_conv", "params": {"filters": 32}}], "head": "avg"}
    model = blocks.build_model(spec, shape, CLS3)
    depthwise = next(w for w in model.weights if "depthwise" in w.path)
    assert depthwise.shape[2] * depthwise.shape[3] == maps


def test_layer_names_deterministic():
    spec = {"blocks": [{"name": "resnet_block"}, {"name": "nasnet_cell", "params": {"filters": 16}},
                       {"name": "avg_pool"}], "head": "avg", "knobs": {"dropout": 0.2}}

    def names_and_shapes():
        model = blocks.build_model(spec, (8, 8, 1), CLS3)
        return [(w.path, tuple(w.shape)) for w in model.weights], [layer.name for layer in model.layers]

    first, second = names_and_shapes(), names_and_shapes()
    assert first == second
    layer_names = first[1]
    assert len(set(layer_names)) == len(layer_names)
    assert "head_dropout" in layer_names and "head_pool" in layer_names
    assert all(n in ("x", "logits") or n.startswith(("b0_resnet_block_", "b1_nasnet_cell_", "b2_avg_pool_", "head_"))
               for n in layer_names)


def test_compile_model_optimizers():
    model = blocks.build_model({"blocks": [{"name": "dense", "params": {"units": 4}}]}, (5,), CLS3)
    for name in ("adam", "sgd", "rmsprop", "adamw"):
        blocks.compile_model(model, {"knobs": {"optimizer": name, "learning_rate": 0.01}}, CLS3)
        assert type(model.optimizer).__name__.lower() == name
    assert float(model.optimizer.learning_rate) == pytest.approx(0.01)
    with pytest.raises(UserError, match="unknown optimizer 'lion'"):
        blocks.compile_model(model, {"knobs": {"optimizer": "lion"}}, CLS3)


@pytest.mark.slow
def test_user_blocks_each_kind(user_blocks):
    loaded = user_blocks([
        {"name": "my_dense", "path": f"{EXAMPLE}.double_dense", "ranks": [1, 2], "params": {"units": [8, 16]}},
        {"name": "my_plain", "path": f"{EXAMPLE}:plain_function", "ranks": [1]},
        {"name": "my_scale", "path": f"{EXAMPLE}.Scale", "ranks": [1, 2, 3], "kind": "layer",
         "params": {"init": [1.0, 0.5]}},
        {"name": "my_net", "path": f"{EXAMPLE}.tiny_cnn", "ranks": [3], "kind": "network",
         "params": {"filters": [4, 8]}},
        {"name": "my_flat", "path": f"{EXAMPLE}.to_vector", "ranks": [2, 3], "out_rank": 1},
    ])
    assert [b.family for b in loaded] == ["user"] * 5
    assert "my_scale" in [b.name for b in blocks.blocks_for_rank(3, families=["user"])]

    m = _train_one_step({"blocks": [{"name": "my_dense"}, {"name": "my_scale"}, {"name": "my_plain"}]}, (5,))
    assert {"b0_my_dense_a", "b0_my_dense_b", "b1_my_scale_layer"} <= {layer.name for layer in m.layers}
    m = _train_one_step({"blocks": [{"name": "my_net", "params": {"filters": 8}}, {"name": "conv"}]}, (8, 8, 1))
    assert "b0_my_net_net" in [layer.name for layer in m.layers]
    # out_rank: after my_flat the spec is rank 1, so dense fits and conv does not
    _train_one_step({"blocks": [{"name": "conv"}, {"name": "my_flat"}, {"name": "dense"}]}, (8, 8, 1))
    with pytest.raises(UserError, match="rank"):
        blocks.validate_spec({"blocks": [{"name": "my_flat"}, {"name": "conv"}]}, 3)
    # re-loading the same configuration is fine
    user_blocks([{"name": "my_plain", "path": f"{EXAMPLE}.plain_function", "ranks": [1]}])


def test_user_block_network_keras_application(user_blocks):
    user_blocks([{"name": "mobilenet", "path": "keras.applications.MobileNetV2", "ranks": [3],
                  "kind": "network", "params": {"alpha": [0.35]}}])
    model = blocks.build_model({"blocks": [{"name": "mobilenet"}]}, (32, 32, 3), CLS3)
    assert [layer.name for layer in model.layers] == ["x", "b0_mobilenet_net", "head_pool", "logits"]


GOOD = {"name": "ok_block", "path": f"{EXAMPLE}.double_dense", "ranks": [1]}


@pytest.mark.parametrize(
    "change,match",
    [
        ({"path": f"{EXAMPLE}_missing.fn"}, "cannot import"),
        ({"path": f"{EXAMPLE}.no_such_fn"}, "no attribute 'no_such_fn'"),
        ({"path": "nodots"}, "package.module.attr"),
        ({"path": f"{EXAMPLE}.NOT_CALLABLE"}, "not callable"),
        ({"name": None}, "name"),
        ({"name": "has space"}, "name"),
        ({"path": None}, "'path' is missing"),
        ({"ranks": None}, "'ranks'"),
        ({"ranks": [4]}, "'ranks'"),
        ({"ranks": []}, "'ranks'"),
        ({"params": [1, 2]}, "'params'"),
        ({"params": {"units": []}}, "'params'"),
        ({"params": {"units": 8}}, "'params'"),
        ({"name": "dense"}, "clashes with a built-in"),
        ({"kind": "model"}, "'kind'"),
        ({"kind": "layer"}, "Layer subclass"),
        ({"out_rank": 0}, "out_rank"),
        ({"expensive": "yes"}, "'expensive' must be true or false"),
        ({"rnaks": [1]}, "unknown keys"),
    ],
)
def test_user_block_mistakes(user_blocks, change, match):
    entry = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    with pytest.raises(UserError, match=match):
        user_blocks([entry])
    assert "ok_block" not in blocks.names()


def test_user_block_marked_expensive_is_not_in_a_cheap_start(user_blocks):
    import random

    from modelsearch.config import SearchConfig
    from modelsearch.space import SearchSpace

    [heavy, light] = user_blocks([{**GOOD, "name": "heavy", "expensive": True}, {**GOOD, "name": "light"}])
    assert heavy.expensive and not light.expensive
    space = SearchSpace(SearchConfig(families=["user"]), (10,))
    assert [b.name for b in space.expensive_blocks] == ["heavy"]
    starts = {b["name"] for i in range(30) for b in space.random_spec(random.Random(i))["blocks"]}
    assert starts == {"light"}


def test_user_block_list_mistakes(user_blocks):
    with pytest.raises(UserError, match="list"):
        user_blocks({"name": "x"})
    with pytest.raises(UserError, match="mapping"):
        user_blocks(["x"])
    with pytest.raises(UserError, match="twice"):
        user_blocks([GOOD, GOOD])


def test_user_block_failures_at_build(user_blocks):
    user_blocks([{"name": "boom", "path": f"{EXAMPLE}.broken", "ranks": [1]},
                 {"name": "flat_no_out_rank", "path": f"{EXAMPLE}.to_vector", "ranks": [3]}])
    with pytest.raises(UserError, match="'boom' failed to build.*boom"):
        blocks.build_model({"blocks": [{"name": "boom"}]}, (5,), CLS3)
    with pytest.raises(UserError, match="set out_rank"):
        blocks.build_model({"blocks": [{"name": "flat_no_out_rank"}]}, (8, 8, 1), CLS3)
