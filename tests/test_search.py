"""Search: random specs, mutation rules, beam selection, strategies. Nothing here trains."""
import random

import pytest

from modelsearch import strategies
from modelsearch.config import SearchConfig, load_config
from modelsearch.errors import UserError
from modelsearch.space import FLATTEN_LIMIT, START_SIDE, SearchSpace, narrow_half
from modelsearch.strategies.base import cheap_stalled
from modelsearch.strategies.beam_search import BeamSearch
from modelsearch.trialstore import Trial

import blocks


def make_trials(space, scores, rng):
    trials = []
    for i, s in enumerate(scores):
        spec = space.random_spec(rng)
        while space.key(spec) in {space.key(t.spec) for t in trials}:
            spec = space.random_spec(rng)
        trials.append(Trial(trial_id=i + 1, study="s", state="completed", spec=spec, metrics={"objective": s}))
    return trials


@pytest.mark.parametrize("shape", [(64,), (12, 3), (8, 8, 1)])
def test_mutations_are_valid_and_deterministic(shape):
    space = SearchSpace(SearchConfig(), shape)
    rng = random.Random(1)
    spec = space.random_spec(rng)
    kinds = set()
    for i in range(200):
        out = space.mutate(spec, random.Random(i), p_deeper=0.5)
        if out is None:
            continue
        child, mutation = out
        blocks.validate_spec(child, len(shape))
        assert space.key(child) != space.key(spec), mutation
        assert len(child["blocks"]) <= space.config.max_depth
        kinds.add(mutation.split(":")[0])
        assert space.mutate(spec, random.Random(i), 0.5) == out  # same seed, same mutation
    assert {"add_block", "replace_block", "knob", "width"} <= kinds


def test_p_deeper_one_always_appends():
    space = SearchSpace(SearchConfig(), (10,))
    spec = space.random_spec(random.Random(0))
    for i in range(20):
        child, mutation = space.mutate(spec, random.Random(i), p_deeper=1.0)
        assert mutation.startswith("add_block") and child["blocks"][:-1] == spec["blocks"]


def test_space_only_uses_blocks_that_fit_the_input():
    for shape, rank in [((5,), 1), ((6, 2), 2), ((8, 8, 3), 3)]:
        space = SearchSpace(SearchConfig(), shape)
        assert space.blocks and all(rank in b.ranks for b in space.blocks)


def test_key_ignores_explicit_defaults():
    space = SearchSpace(SearchConfig(), (10,))
    spec = {"blocks": [{"name": "dense", "params": {}}], "head": "avg", "knobs": {}}
    full = {"blocks": [{"name": "dense", "params": blocks.default_params(blocks.get("dense"))}],
            "head": "avg", "knobs": {}}
    assert space.key(spec) == space.key(full)


def test_beam_keeps_top_k_and_mutates_only_members():
    space = SearchSpace(SearchConfig(), (10,))
    trials = make_trials(space, [0.5, 0.9, 0.7, 0.95, 0.6], random.Random(0))
    strategy = BeamSearch(beam_size=2, p_deeper=0.5, min_completed=2)
    assert [t.trial_id for t in strategy.beam(trials)] == [4, 2]
    candidates = strategy.propose(trials, 6, space, random.Random(3))
    assert len(candidates) == 6
    assert {c.parent_id for c in candidates} <= {4, 2}
    keys = [space.key(c.spec) for c in candidates]
    assert len(set(keys)) == 6 and not set(keys) & {space.key(t.spec) for t in trials}
    again = strategy.propose(trials, 6, space, random.Random(3))
    assert [c.spec for c in again] == [c.spec for c in candidates]


def test_beam_starts_random_until_enough_trials():
    space = SearchSpace(SearchConfig(), (10,))
    strategy = BeamSearch(beam_size=3, min_completed=2)
    first = strategy.propose([], 3, space, random.Random(0))
    assert all(c.parent_id is None and c.mutation == "random" for c in first)
    assert first[0].spec["blocks"] == [] and all(1 <= len(c.spec["blocks"]) <= 2 for c in first[1:])
    one = make_trials(space, [0.5], random.Random(1))
    assert all(c.parent_id is None for c in strategy.propose(one, 2, space, random.Random(0)))


def test_never_repeats_even_in_a_tiny_space():
    config = SearchConfig(blocks=["dense"], knobs={"learning_rate": [0.001], "optimizer": ["adam"],
                                                   "dropout": [0.0], "batch_size": [64]},
                          initial_depth=[1, 1], max_depth=1)
    space = SearchSpace(config, (4,))
    strategy = strategies.create("random")
    seen, trials = set(), []
    for i in range(80):
        batch = strategy.propose(trials, 2, space, random.Random(i))
        for c in batch:
            assert space.key(c.spec) not in seen
            seen.add(space.key(c.spec))
            trials.append(Trial(trial_id=len(trials) + 1, study="s", state="completed", spec=c.spec))
        if not batch:
            break
    assert 0 < len(seen) < 160  # the space is finite (109 specs): the strategy stops instead of repeating


def test_config_errors(tmp_path):
    with pytest.raises(UserError, match="unknown setting"):
        SearchConfig.from_json({"beam": 3})
    with pytest.raises(UserError, match="p_deeper"):
        SearchConfig.from_json({"p_deeper": 2})
    with pytest.raises(UserError, match="unknown strategy"):
        SearchConfig.from_json({"strategy": "genetic"})
    bad = tmp_path / "c.json"
    bad.write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON"):
        load_config(str(bad))
    with pytest.raises(UserError, match="does not exist"):
        load_config(str(tmp_path / "missing.json"))
    with pytest.raises(UserError, match="unknown block"):
        SearchSpace(SearchConfig(blocks=["dense", "warp_drive"]), (4,))
    with pytest.raises(UserError, match="do not accept"):
        SearchSpace(SearchConfig(blocks=["conv"]), (4,))


def test_beam_reevaluates_the_best_before_trusting_it():
    space = SearchSpace(SearchConfig(), (10,))
    trials = make_trials(space, [0.5, 0.6, 0.55, 0.7, 0.65, 0.52, 0.58, 0.61, 0.9], random.Random(0))
    strategy = BeamSearch(beam_size=2, min_completed=2, evaluations=2, reevaluate_share=0.1)
    first, *rest = strategy.propose(trials, 3, space, random.Random(1))
    assert (first.spec, first.parent_id, first.mutation) == (trials[8].spec, None, "reevaluate:9")
    assert all(space.key(c.spec) not in {space.key(t.spec) for t in trials} for c in rest)
    # The second result is averaged in: 0.9 and 0.24 make 0.57, sixth of the architectures.
    again = Trial(trial_id=10, study="s", state="completed", spec=trials[8].spec, mutation="reevaluate:9",
                  metrics={"objective": 0.24})
    assert [ts[0].trial_id for _, ts in strategy.ranked(trials + [again])][:6] == [4, 5, 8, 2, 7, 9]
    # Enough results already, or re-evaluation's share of the trials spent: no more re-evaluations.
    assert not any(c.mutation.startswith("reevaluate")
                   for c in strategy.propose(trials + [again], 3, space, random.Random(1)))
    assert not any(c.mutation.startswith("reevaluate")
                   for c in BeamSearch(reevaluate_share=0.05).propose(trials, 3, space, random.Random(1)))
    assert not any(c.mutation.startswith("reevaluate")
                   for c in BeamSearch(evaluations=1).propose(trials, 3, space, random.Random(1)))


def test_beam_keeps_near_ties_once_noise_is_measured():
    space = SearchSpace(SearchConfig(), (10,))
    trials = make_trials(space, [0.80, 0.75, 0.60, 0.50], random.Random(0))
    strategy = BeamSearch(beam_size=1, tie_sigmas=2.0)
    assert [t.trial_id for t in strategy.beam(trials)] == [1]  # no repeated result yet: no noise estimate
    # Trial 1 again scores 0.76: mean 0.78, sigma 0.028, so 0.75 ties with it (within 2 sigma), 0.60 does not.
    repeat = Trial(trial_id=5, study="s", state="completed", spec=trials[0].spec, metrics={"objective": 0.76})
    assert [t.trial_id for t in strategy.beam(trials + [repeat])] == [1, 2]


def test_evolution_mutates_model_search_specs():
    space = SearchSpace(SearchConfig(), (10,))
    trials = make_trials(space, [0.1 * i for i in range(6)], random.Random(0))
    strategy = strategies.create("evolution", population=4, tournament=4, p_deeper=0.5)
    candidates = strategy.propose(trials, 4, space, random.Random(2))
    assert {c.parent_id for c in candidates} == {6}
    keys = {space.key(c.spec) for c in candidates}
    assert len(keys) == 4 and not keys & {space.key(t.spec) for t in trials}


# -- start small, grow ------------------------------------------------------------------------------------------
SHAPES = [(64,), (40, 1), (28, 28, 1), (8, 8, 3), (96, 96, 3)]
EXPENSIVE = {"nasnet_cell", "resnet_block", "bidirectional_lstm", "transformer_encoder"}


def test_expensive_blocks_are_marked():
    assert {b for b in blocks.names() if blocks.get(b).expensive} == EXPENSIVE
    assert {b for b in blocks.names() if blocks.get(b).downsamples} == {"strided_conv", "max_pool", "avg_pool"}
    # Narrow widths were added behind the defaults, which stay what they were.
    assert blocks.get("dense").space["units"][0] == 128 and {16, 32} <= set(blocks.get("dense").space["units"])
    assert narrow_half(blocks.get("dense").space["units"]) == [16, 32, 64]
    assert narrow_half(blocks.get("conv").space["filters"]) == [16, 32]


@pytest.mark.parametrize("shape", SHAPES)
def test_random_specs_are_cheap_shallow_and_narrow(shape):
    space = SearchSpace(SearchConfig(), shape)
    rng = random.Random(0)
    depths = []
    for _ in range(300):
        spec = space.random_spec(rng)
        assert space.is_valid(spec)
        names = [b["name"] for b in spec["blocks"]]
        assert not set(names) & EXPENSIVE, spec
        for b in spec["blocks"]:
            for param, value in b["params"].items():
                if param in ("units", "filters", "d_model", "ff_dim") and len(shape) > 1:  # vectors: any width
                    assert value in narrow_half(blocks.get(b["name"]).space[param]), spec
        if len(shape) == 3:  # a small CNN: something that learns first, downsampling after every size-keeping block
            assert not blocks.get(names[0]).downsamples or "filters" in spec["blocks"][0]["params"], spec
            for i, name in enumerate(names):
                if not blocks.get(name).downsamples:
                    assert i + 1 < len(names) and blocks.get(names[i + 1]).downsamples, spec
            if shape[0] > 2 * START_SIDE:  # a stem: nothing of the start runs at full resolution
                assert blocks.get(names[0]).downsamples and "filters" in spec["blocks"][0]["params"], spec
            # 96x96x3 needs extra pooling to flatten; where the flatten head is chosen, it stays small.
            assert spec["head"] == "flatten" and space.output_size(spec) <= FLATTEN_LIMIT, spec
        # A level: a block that learns, with the downsampling block that follows it on images.
        down = [blocks.get(n).downsamples for n in names]
        learns = ["filters" in blocks.get(n).space or not down[i] for i, n in enumerate(names)]
        depths.append(sum(1 for i in range(len(names)) if learns[i] and not (i and down[i] and not down[i - 1])))
        if len(shape) == 3:  # a level for every halving down to START_SIDE, as far as max_depth leaves room
            assert max(space.output_shape(spec["blocks"])[:2]) <= START_SIDE or len(names) >= 4, spec
    if len(shape) == 3 and shape[0] > 2 * START_SIDE:  # 28x28: two levels at least (28 -> 14 -> 7), as in a small CNN
        assert min(depths) == (2 if shape[0] <= 4 * START_SIDE else 3), depths  # 96x96: stem, then 48 -> 24 -> 12
    else:
        assert set(depths) == {1, 2} and depths.count(1) > 2 * depths.count(2)  # mostly the low end of [1, 2]


@pytest.mark.parametrize("shape", SHAPES[:3])
def test_expensive_blocks_and_wide_settings_are_reached_by_mutation(shape):
    space = SearchSpace(SearchConfig(), shape)
    spec, used, widths = space.random_spec(random.Random(0)), set(), set()
    for i in range(400):
        out = space.mutate(spec, random.Random(i), p_deeper=0.5)
        if out is not None:
            used |= {b["name"] for b in out[0]["blocks"]}
            widths |= {v for b in out[0]["blocks"] for k, v in b["params"].items() if k in ("units", "filters")}
    fitting = {b.name for b in space.blocks if b.expensive}
    assert fitting <= used and (fitting or len(shape) == 1)
    assert max(widths) >= 128


def test_cheap_stalled_counts_mutants_since_the_best_in_the_order_they_came():
    def results(*scores, parent=1):  # finished in the order given, ids in reverse (the finish time orders)
        return [Trial(trial_id=10 - i, study="s", state="completed", spec={}, metrics={"objective": v},
                      finished=100.0 + i, parent_id=parent) for i, v in enumerate(scores)]
    assert not cheap_stalled([]) and not cheap_stalled(results(0.5, 0.6, 0.7))
    assert not cheap_stalled(results(0.5, 0.9, 0.8))  # one result under the best: not yet
    assert cheap_stalled(results(0.5, 0.9, 0.8, 0.9))  # two in a row (a tie does not beat it)
    assert not cheap_stalled(results(0.5, 0.9, 0.8, 0.7, 0.95))  # beaten again: cheap growth pays again
    assert not cheap_stalled(results(0.9, 0.8, 0.7, parent=None))  # random starts are no growth
    failed = Trial(trial_id=1, study="s", state="failed", spec={}, finished=200.0, parent_id=1)
    assert not cheap_stalled(results(0.5, 0.9, 0.8) + [failed])  # a failure is no result


@pytest.mark.parametrize("shape", [(8, 8, 1), (12, 3)])
def test_beam_brings_in_expensive_blocks_only_once_the_cheap_ones_stall(shape):
    space = SearchSpace(SearchConfig(), shape)
    expensive = {b.name for b in space.expensive_blocks}
    assert expensive

    def proposed_blocks(scores):
        trials = make_trials(space, scores, random.Random(0))
        for i, t in enumerate(trials):
            t.finished, t.parent_id = float(i), (i or None)  # the first a random start, then mutants
        candidates = BeamSearch(beam_size=2, p_deeper=0.5, min_completed=2).propose(
            trials, 40, space, random.Random(1))
        return {b["name"] for c in candidates for b in c.spec["blocks"]}

    assert not proposed_blocks([0.5, 0.6, 0.7]) & expensive  # still improving: cheap mutations only
    assert proposed_blocks([0.5, 0.9, 0.8, 0.7]) & expensive  # the best stood twice: expensive ones come in


def test_width_mutation_steps_to_a_neighbouring_choice():
    space = SearchSpace(SearchConfig(knobs={"learning_rate": [0.001]}), (10,))
    spec = {"blocks": [{"name": "dense", "params": {"units": 32}}], "head": "avg", "knobs": space.default_knobs()}
    steps = {space._mutate_width(json_copy(spec), random.Random(i)) for i in range(40)}
    assert steps == {"width:0:units=16", "width:0:units=64"}


def json_copy(spec):
    import json
    return json.loads(json.dumps(spec))


@pytest.mark.parametrize("strategy", ["beam", "random", "evolution"])
def test_the_first_candidate_on_vectors_is_linear(strategy):
    space = SearchSpace(SearchConfig(), (10,))
    chooser = strategies.create(strategy, min_completed=2)
    first = chooser.propose([], 1, space, random.Random(0))[0]
    assert first.spec == {"blocks": [], "head": "avg", "knobs": space.default_knobs()} and first.parent_id is None
    # Taken (running) it is not proposed again; the next candidates are random networks.
    running = [Trial(trial_id=1, study="s", state="running", spec=first.spec)]
    assert all(c.spec["blocks"] for c in chooser.propose(running, 3, space, random.Random(1)))
    # Not on images or sequences: there the first candidates are small networks.
    for shape in ((8, 8, 1), (12, 3)):
        assert chooser.propose([], 1, SearchSpace(SearchConfig(), shape), random.Random(0))[0].spec["blocks"]
    # Nor where the configuration names the blocks to search.
    named = SearchSpace(SearchConfig.from_json({"blocks": ["dense"]}), (10,))
    assert chooser.propose([], 1, named, random.Random(0))[0].spec["blocks"]


def test_mutating_the_linear_model_adds_a_block_or_changes_a_knob():
    space = SearchSpace(SearchConfig(), (10,))
    linear = space.first_specs()[0]
    kinds = set()
    for i in range(100):
        child, mutation = space.mutate(linear, random.Random(i), p_deeper=0.5)
        blocks.validate_spec(child, 1)
        kinds.add(mutation.split(":")[0])
        assert (mutation.startswith("add_block") and len(child["blocks"]) == 1) or not child["blocks"]
    assert kinds == {"add_block", "knob"}


def test_beam_grows_from_the_linear_model():
    space = SearchSpace(SearchConfig(), (10,))
    linear = Trial(trial_id=1, study="s", state="completed", spec=space.first_specs()[0], metrics={"objective": 0.9})
    other = make_trials(space, [0.5], random.Random(0))[0]
    other.trial_id = 2
    candidates = BeamSearch(beam_size=1, min_completed=2).propose([linear, other], 4, space, random.Random(0))
    assert {c.parent_id for c in candidates} == {1} and all(len(c.spec["blocks"]) <= 1 for c in candidates)


def test_random_search_leaves_the_start_once_min_completed_trials_are_in():
    space = SearchSpace(SearchConfig(), (12, 8, 1))
    chooser = strategies.create("random", min_completed=2)
    done = make_trials(space, [0.5, 0.6], random.Random(0))
    later = chooser.propose(done, 60, space, random.Random(0))
    assert {b["name"] for c in later for b in c.spec["blocks"]} & EXPENSIVE
    early = chooser.propose(done[:1], 60, space, random.Random(0))
    assert not {b["name"] for c in early for b in c.spec["blocks"]} & EXPENSIVE
