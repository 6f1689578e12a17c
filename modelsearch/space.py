"""The search space over architecture specs: random specs, mutations, and the identity of a spec.

A spec is JSON: {"blocks": [{"name", "params"}...], "head": "avg", "knobs": {...}}. The space only
reads the block registry's metadata (ranks, parameter choices); it never builds or trains a model.
"""
from __future__ import annotations

import copy
import json
import random

import blocks
from modelsearch.config import SearchConfig
from modelsearch.errors import UserError
from modelsearch import kinds
from modelsearch.kinds import KIND_FAMILIES, RANK_KINDS

HEADS = ["avg", "max", "flatten"]
WIDTH_PARAMS = ("units", "filters", "d_model", "ff_dim")
FLATTEN_LIMIT = 4096  # a random start flattens when its last block outputs at most this many values
# A random start on images has a level (a block that learns, then one that downsamples) for every halving down to
# this side at least, as a small CNN has (28x28 -> 14 -> 7): features of one level see 3x3 pixels of a large image.
START_SIDE = 8


class SearchSpace:
    def __init__(self, config: SearchConfig, input_shape):
        self.config = config
        self.rank = len(input_shape)
        self.input_shape = tuple(input_shape)
        self.input_size = kinds.size(input_shape)
        if self.rank not in RANK_KINDS:
            raise UserError(f"input shape {list(input_shape)} is not supported; inputs must be vectors (rank 1), "
                            "sequences (rank 2) or images (rank 3)")
        self.kind = RANK_KINDS[self.rank]
        blocks.load_user_blocks(config.custom_blocks)
        if config.blocks:
            chosen = [blocks.get(name) for name in config.blocks]
            unfit = [b.name for b in chosen if self.rank not in b.ranks]
            if unfit:
                raise UserError(f"block(s) {', '.join(unfit)} do not accept {self.kind} inputs "
                                f"(rank {self.rank}); remove them from 'blocks' in the search configuration")
        else:
            chosen = self._blocks_of_families(config.families)
        if not chosen:
            raise UserError(f"no block fits {self.kind} inputs with families {config.families}; "
                            "widen 'families' in the search configuration")
        self.blocks = sorted(chosen, key=lambda b: b.name)
        self.knobs = config.knobs

    def _blocks_of_families(self, families: list | None) -> list:
        """The blocks of `families` (default: the kind's own, see modelsearch/kinds.py; custom blocks always)
        that can stand somewhere in a spec: they accept the input's rank, or a rank another chosen block
        outputs (a custom block with out_rank 1 lets dense blocks follow convolutions)."""
        families = [*(families or KIND_FAMILIES[self.kind]), "user"]
        unknown = [f for f in families if f not in blocks.registry.FAMILIES]
        if unknown:
            raise UserError(f"unknown block famil{'ies' if len(unknown) > 1 else 'y'} {', '.join(unknown)}; "
                            f"families: {', '.join(blocks.registry.FAMILIES)}")
        ranks, grown = {self.rank}, True
        while grown:  # the ranks a spec can reach from the input through the chosen blocks
            reachable = {b.output_rank(r) for r in ranks for b in blocks.blocks_for_rank(r, families)}
            grown = not reachable <= ranks
            ranks |= reachable
        chosen = []
        for rank in sorted(ranks):
            chosen += [b for b in blocks.blocks_for_rank(rank, families) if b not in chosen]
        unfit = [f for f in families if f != "user" and not any(b.family == f for b in chosen)]
        if unfit:
            fitting = ", ".join(KIND_FAMILIES[self.kind])
            raise UserError(f"block famil{'ies' if len(unfit) > 1 else 'y'} {', '.join(unfit)} "
                            f"{'have' if len(unfit) > 1 else 'has'} no block for {self.kind} inputs "
                            f"(rank {self.rank}); {self.kind} inputs take {fitting} (and user blocks): "
                            f"remove {', '.join(unfit)} from 'families' in the search configuration")
        return chosen

    # -- specs -------------------------------------------------------------------------------
    # A study starts small and grows. Its first candidates (random specs) are cheap, shallow and narrow: no
    # expensive block (blocks/registry.py), widths from the narrow half of each block's choices where a block
    # sees positions (sequences, images: its cost is width x positions; on vectors a wide layer costs no more
    # time than the input's width, and a narrow start there only loses accuracy the student wins back), depth mostly
    # initial_depth's low end, and on images each size-keeping block followed by a downsampling one (the shape
    # of a small CNN, whose output stays small enough to flatten, with levels down to START_SIDE; above twice
    # that side a strided stem first), a pooling block never alone. Mutation grows
    # them: add_block and replace_block draw from the cheap blocks and all of their choices, and from the
    # expensive ones too once the cheap ones have stalled (the strategy says when: strategies/base.py,
    # cheap_stalled), width steps to the next wider (or narrower) choice. A start this cheap is beaten quickly
    # when it is weak, and nothing is spent on a large network before small ones have stopped improving. On
    # vectors the very first candidate is the linear model (no block, `first_specs`), so the search's best is
    # never worse than it on validation.
    @property
    def expensive_blocks(self) -> list:
        return [b for b in self.blocks if b.expensive]

    def _cheap_blocks(self) -> list:
        return [b for b in self.blocks if not b.expensive] or self.blocks  # only expensive blocks: use them

    def _random_block(self, rng: random.Random, block=None, narrow: bool = False) -> dict:
        block = block or rng.choice(self.blocks)
        return {"name": block.name,
                "params": {k: rng.choice(narrow_half(v) if narrow and k in WIDTH_PARAMS else v)
                           for k, v in sorted(block.space.items())}}

    def default_knobs(self) -> dict:
        return {name: choices[0] for name, choices in sorted(self.knobs.items())}

    def first_specs(self) -> list[dict]:
        """The candidates every study tries before any random one: the linear model on vectors, unless the
        configuration names the blocks to search (then it searches networks of those)."""
        if self.rank != 1 or self.config.blocks:
            return []
        return [{"blocks": [], "head": "avg", "knobs": self.default_knobs()}]

    def random_spec(self, rng: random.Random) -> dict:
        """A random start: cheap, shallow and narrow (see above)."""
        for _ in range(100):
            spec = self._start_spec(rng)
            if self.is_valid(spec):
                return spec
        raise UserError("could not build a valid random architecture from the configured blocks; "
                        "check the ranks of your custom blocks")

    def any_spec(self, rng: random.Random) -> dict:
        """A random spec from the whole space: any block, any choice, any depth of initial_depth, any head
        (random search once its start is over)."""
        low, high = self.config.initial_depth
        for _ in range(100):
            spec = {"blocks": [self._random_block(rng) for _ in range(rng.randint(low, high))],
                    "head": self._random_head(rng), "knobs": self.default_knobs()}
            if self.is_valid(spec):
                return spec
        return self.random_spec(rng)

    def _start_spec(self, rng: random.Random) -> dict:
        low, high = self.config.initial_depth
        depth = low if rng.random() < 0.5 else rng.randint(low, high)  # mostly the low end
        cheap = self._cheap_blocks()
        downsamplers = [b for b in cheap if b.downsamples and 3 in b.ranks and b.output_rank(3) == 3]
        layers, rank = [], self.rank
        levels = 0
        stems = [b for b in downsamplers if _has_width(b)]  # downsamplers that learn
        if rank == 3 and stems and self._side(layers) > 2 * START_SIDE:
            # A large image starts with a stem, as efficient CNNs do: a convolution at stride 2 learns while it
            # halves the resolution, so no block of the start runs at full resolution (there one level costs
            # four times the next: the first trials must stay cheap in time, not only in parameters).
            layers.append(self._random_block(rng, rng.choice(stems), narrow=True))
            levels = 1
        while levels < depth or (rank == 3 and self._side(layers) > START_SIDE
                                 and len(layers) + 2 < self.config.max_depth):  # room for a pool to flatten
            levels += 1
            fitting = [b for b in cheap if rank in b.ranks]
            if not fitting:
                break
            learning = [b for b in fitting if _has_width(b) or not b.downsamples]
            block = rng.choice(learning or fitting)  # a pooling block alone learns nothing: it only follows
            layers.append(self._random_block(rng, block, narrow=rank > 1))
            rank = block.output_rank(rank)
            if rank == 3 and not block.downsamples and downsamplers and len(layers) < self.config.max_depth:
                layers.append(self._random_block(rng, rng.choice(downsamplers), narrow=True))
        spec = {"blocks": layers, "knobs": self.default_knobs()}
        # Shallow features are local: a global pool after one or two blocks throws away where they are, so
        # the start flattens when that stays small, downsampling once more where that makes it so; pooling
        # heads are a mutation away.
        pools = [b for b in downsamplers if not _has_width(b)] or downsamplers
        flat = self.output_size(spec)
        while (rank == 3 and pools and flat is not None and flat > FLATTEN_LIMIT
               and len(layers) < self.config.max_depth):
            layers.append(self._random_block(rng, rng.choice(pools), narrow=True))
            flat = self.output_size(spec)
        spec["head"] = "flatten" if self.rank > 1 and flat is not None and flat <= FLATTEN_LIMIT else "avg"
        return spec

    def output_shape(self, layers: list) -> list | None:
        """The shape these blocks output, estimated from the block metadata (downsampling halves the spatial
        axes, rounding up; a width param sets the channels); None when a block changes the rank (a custom
        block: its shape is unknown here)."""
        shape = [int(d) for d in self.input_shape]
        for b in layers:
            block = blocks.get(b["name"])
            if block.output_rank(len(shape)) != len(shape):
                return None
            params = {**blocks.default_params(block), **b.get("params", {})}
            if block.downsamples:
                shape[:-1] = [-(-d // 2) for d in shape[:-1]]
            width = next((params[p] for p in ("filters", "units", "d_model") if p in params), None)
            if isinstance(width, int):
                shape[-1] = width
        return shape

    def output_size(self, spec: dict) -> int | None:
        """The number of values a spec's last block outputs (see output_shape); None when unknown."""
        shape = self.output_shape(spec["blocks"])
        return None if shape is None else kinds.size(shape)

    def _side(self, layers: list) -> int:
        """The longest spatial side these blocks output on an image (0 when unknown: nothing to add)."""
        shape = self.output_shape(layers)
        return max(shape[:-1]) if shape and len(shape) == 3 else 0

    def _random_head(self, rng: random.Random) -> str:
        """Vectors: "avg" (the builder ignores it). Sequences and images: any head when flattening the input's
        values stays small (small images and short sequences often need positions: flatten), else global
        average pooling; a mutation can still change it."""
        if self.rank == 1 or self.input_size > FLATTEN_LIMIT:
            return "avg"
        return rng.choice(HEADS)

    def is_valid(self, spec: dict) -> bool:
        try:
            blocks.validate_spec(spec, self.rank)
        except UserError:
            return False
        return len(spec["blocks"]) <= self.config.max_depth

    @staticmethod
    def key(spec: dict) -> str:
        """The identity of an architecture: two specs that build the same network share a key."""
        normal = copy.deepcopy(spec)
        for b in normal["blocks"]:
            b["params"] = {**blocks.default_params(blocks.get(b["name"])), **b.get("params", {})}
        return json.dumps(normal, sort_keys=True)

    # -- mutation ----------------------------------------------------------------------------
    def mutate(self, spec: dict, rng: random.Random, p_deeper: float,
               expensive: bool = True) -> tuple[dict, str] | None:
        """One mutation of `spec`: (child, description), or None when it produced no valid child. `expensive`
        False: a new or replacing block is a cheap one (the strategy decides when expensive ones may come)."""
        child = copy.deepcopy(spec)
        layers = child["blocks"]
        pool = self.blocks if expensive else self._cheap_blocks()
        if len(layers) < self.config.max_depth and rng.random() < p_deeper:
            new = self._random_block(rng, rng.choice(pool))
            layers.append(new)
            mutation = f"add_block:{new['name']}"
        else:
            # The linear model has no block to replace: it grows by add_block, or changes a knob.
            ops = (["replace_block"] if layers else []) + ["knob", "width"] + (["head"] if self.rank > 1 else [])
            op = rng.choice(ops)
            if op == "replace_block":
                i = rng.randrange(len(layers))
                others = [b for b in pool if b.name != layers[i]["name"]] or pool
                old = layers[i]["name"]
                layers[i] = self._random_block(rng, rng.choice(others))
                mutation = f"replace_block:{i}:{old}->{layers[i]['name']}"
            elif op == "head":
                child["head"] = rng.choice([h for h in HEADS if h != child.get("head")])
                mutation = f"head:{child['head']}"
            else:
                mutation = self._mutate_width(child, rng) if op == "width" else None
                mutation = mutation or self._mutate_knob(child, rng)
                if mutation is None:
                    return None
        return (child, mutation) if self.is_valid(child) else None

    def _mutate_knob(self, spec: dict, rng: random.Random) -> str | None:
        names = [n for n, choices in sorted(self.knobs.items()) if len(choices) > 1]
        if not names:
            return None
        name = rng.choice(names)
        value = rng.choice([c for c in self.knobs[name] if c != spec["knobs"].get(name)])
        spec["knobs"][name] = value
        return f"knob:{name}={value}"

    def _mutate_width(self, spec: dict, rng: random.Random) -> str | None:
        options = []
        for i, b in enumerate(spec["blocks"]):
            space = blocks.get(b["name"]).space
            options += [(i, p) for p in WIDTH_PARAMS if len(space.get(p, [])) > 1]
        if not options:
            return None
        i, param = rng.choice(options)
        block = spec["blocks"][i]
        choices = blocks.get(block["name"]).space[param]
        current = block["params"].get(param, choices[0])
        ordered = ordered_choices(choices)
        if current in ordered:  # one step wider or narrower: a network grows by steps, from a narrow start
            at = ordered.index(current)
            value = rng.choice([ordered[j] for j in (at - 1, at + 1) if 0 <= j < len(ordered)])
        else:
            value = rng.choice([c for c in choices if c != current])
        block["params"][param] = value
        return f"width:{i}:{param}={value}"


def _has_width(block) -> bool:
    """Whether the block has a width to learn with (a pooling block has none)."""
    return bool(set(block.space) & set(WIDTH_PARAMS))


def ordered_choices(choices: list) -> list:
    """A width's choices from narrowest to widest (a block lists its default first)."""
    if all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in choices):
        return sorted(set(choices))
    return list(choices)


def narrow_half(choices: list) -> list:
    """The narrower half of a width's choices (at least one): where a random start draws from."""
    ordered = ordered_choices(choices)
    return ordered[:max(1, len(ordered) // 2)]
