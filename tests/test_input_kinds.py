"""Input kinds: the declared-shape -> model-shape mapping, and block families by kind (nothing trains here)."""
import random

import pytest

import blocks
from blocks import registry
from modelsearch import strategies
from modelsearch.config import SearchConfig
from modelsearch.errors import UserError
from modelsearch.kinds import KIND_FAMILIES, KIND_RANKS, kind_of_shape, model_shape, parse_shape
from modelsearch.space import SearchSpace

SHAPES = {"tabular": (12,), "sequence": (40, 1), "image": (8, 8, 1)}


@pytest.mark.parametrize("kind, declared, expected", [
    ("sequence", [40], [40, 1]), ("sequence", [40, 1], [40, 1]), ("sequence", [20, 3], [20, 3]),
    ("image", [28, 28], [28, 28, 1]), ("image", [28, 28, 1], [28, 28, 1]), ("image", [32, 32, 3], [32, 32, 3]),
    ("tabular", [64], [64]),
])
def test_model_shape_by_kind(kind, declared, expected):
    assert model_shape(kind, declared) == expected
    assert len(expected) == KIND_RANKS[kind]


@pytest.mark.parametrize("kind, declared, match", [
    ("tabular", [8, 8], "does not fit tabular"), ("image", [784], "does not fit image"),
    ("sequence", [4, 4, 4], "does not fit sequence"), ("image", [8, 8, 2], "channels"),
])
def test_model_shape_errors(kind, declared, match):
    with pytest.raises(UserError, match=match):
        model_shape(kind, declared)


def test_parse_shape_and_kind_of_shape():
    assert parse_shape("28,28,1") == [28, 28, 1] == parse_shape(" 28, 28 ,1") == parse_shape("28x28x1")
    assert parse_shape("40") == [40] and parse_shape("") is None and parse_shape(None) is None
    for bad in ("a,b", "0,3", "1,2,3,4", ","):
        with pytest.raises(UserError, match="is not a shape"):
            parse_shape(bad)
    assert kind_of_shape([28, 28, 1]) == "image"
    assert kind_of_shape([40]) == kind_of_shape([40, 1]) == "sequence"


def test_kind_families_fit_their_rank():
    """Every built-in block belongs to exactly one kind's families, and accepts that kind's rank."""
    for kind, families in KIND_FAMILIES.items():
        chosen = blocks.blocks_for_rank(KIND_RANKS[kind], families)
        assert chosen and {b.family for b in chosen} == set(families)
        assert all(b.family in families for b in blocks.blocks_for_rank(KIND_RANKS[kind])
                   if b.family != "user")
    built_in = [b for b in map(blocks.get, blocks.names()) if b.family != "user"]
    for block in built_in:
        assert sum(block.family in families for families in KIND_FAMILIES.values()) == 1, block.name


@pytest.mark.parametrize("kind", list(SHAPES))
@pytest.mark.parametrize("strategy", ["random", "beam"])
def test_generator_never_proposes_a_family_that_does_not_fit(kind, strategy):
    """Random specs, every mutation and every strategy's proposals use only the kind's families."""
    from modelsearch.trialstore import Trial

    space = SearchSpace(SearchConfig(), SHAPES[kind])
    assert space.kind == kind and {b.family for b in space.blocks} == set(KIND_FAMILIES[kind])
    rng = random.Random(0)
    chooser = strategies.create(strategy, beam_size=2, p_deeper=0.7, min_completed=2)
    trials = []
    for i in range(12):
        for candidate in chooser.propose(trials, 2, space, rng):
            families = {blocks.get(b["name"]).family for b in candidate.spec["blocks"]}
            assert families <= set(KIND_FAMILIES[kind]), candidate.spec
            blocks.validate_spec(candidate.spec, len(SHAPES[kind]))
            trials.append(Trial(trial_id=len(trials) + 1, study="s", state="completed", spec=candidate.spec,
                                metrics={"objective": rng.random()}))
    assert len(trials) == 24


def test_families_restrict_and_fail_clearly():
    space = SearchSpace(SearchConfig(families=["recurrent"]), SHAPES["sequence"])
    assert {b.name for b in space.blocks} == {"lstm", "bidirectional_lstm", "gru"}
    space = SearchSpace(SearchConfig(families=["conv", "pool"]), SHAPES["image"])
    assert {b.family for b in space.blocks} == {"conv", "pool"}
    with pytest.raises(UserError, match="recurrent has no block for image inputs.*conv, pool, cell"):
        SearchSpace(SearchConfig(families=["conv", "recurrent"]), SHAPES["image"])
    with pytest.raises(UserError, match="unknown block family warp"):
        SearchSpace(SearchConfig(families=["warp"]), SHAPES["tabular"])
    with pytest.raises(UserError, match="dense has no block for sequence inputs"):
        SearchSpace(SearchConfig(families=["dense"]), SHAPES["sequence"])


def test_families_extend_through_a_rank_changing_custom_block():
    """A custom block with out_rank 1 lets the user add dense blocks to an image search."""
    config = SearchConfig(families=["conv", "dense"], custom_blocks=[
        {"name": "to_vec", "path": "tests.user_blocks_example.to_vector", "ranks": [3], "out_rank": 1}])
    try:
        space = SearchSpace(config, SHAPES["image"])
        assert {b.family for b in space.blocks} == {"conv", "dense", "user"}
        rng = random.Random(3)
        specs = [space.random_spec(rng) for _ in range(200)]
        for spec in specs:
            blocks.validate_spec(spec, 3)
        used = {b["name"] for spec in specs for b in spec["blocks"]}
        assert "to_vec" in used and used & {"dense", "residual_dense", "bottleneck"}
    finally:
        registry.unregister("to_vec")
