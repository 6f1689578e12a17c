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

HEADS = ["avg", "max", "flatten"]
WIDTH_PARAMS = ("units", "filters", "d_model")
RANK_NAMES = {1: "tabular", 2: "sequence", 3: "image"}


class SearchSpace:
    def __init__(self, config: SearchConfig, input_shape):
        self.config = config
        self.rank = len(input_shape)
        blocks.load_user_blocks(config.custom_blocks)
        if config.blocks:
            chosen = [blocks.get(name) for name in config.blocks]
            unfit = [b.name for b in chosen if self.rank not in b.ranks]
            if unfit:
                raise UserError(f"block(s) {', '.join(unfit)} do not accept {RANK_NAMES.get(self.rank)} inputs "
                                f"(rank {self.rank}); remove them from 'blocks' in the search configuration")
        else:
            chosen = blocks.blocks_for_rank(self.rank, config.families)
            if config.families:
                chosen += [b for b in blocks.blocks_for_rank(self.rank, ["user"]) if b not in chosen]
        if not chosen:
            raise UserError(f"no block fits {RANK_NAMES.get(self.rank)} inputs with families {config.families}; "
                            "widen 'families' in the search configuration")
        self.blocks = sorted(chosen, key=lambda b: b.name)
        self.knobs = config.knobs

    # -- specs -------------------------------------------------------------------------------
    def _random_block(self, rng: random.Random, block=None) -> dict:
        block = block or rng.choice(self.blocks)
        return {"name": block.name, "params": {k: rng.choice(v) for k, v in sorted(block.space.items())}}

    def default_knobs(self) -> dict:
        return {name: choices[0] for name, choices in sorted(self.knobs.items())}

    def random_spec(self, rng: random.Random) -> dict:
        low, high = self.config.initial_depth
        for _ in range(100):
            spec = {"blocks": [self._random_block(rng) for _ in range(rng.randint(low, high))],
                    "head": "avg",  # ignored by the builder for vectors
                    "knobs": self.default_knobs()}
            if self.is_valid(spec):
                return spec
        raise UserError("could not build a valid random architecture from the configured blocks; "
                        "check the ranks of your custom blocks")

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
    def mutate(self, spec: dict, rng: random.Random, p_deeper: float) -> tuple[dict, str] | None:
        """One mutation of `spec`: (child, description), or None when it produced no valid child."""
        child = copy.deepcopy(spec)
        layers = child["blocks"]
        if len(layers) < self.config.max_depth and rng.random() < p_deeper:
            new = self._random_block(rng)
            layers.append(new)
            mutation = f"add_block:{new['name']}"
        else:
            ops = ["replace_block", "knob", "width"] + (["head"] if self.rank > 1 else [])
            op = rng.choice(ops)
            if op == "replace_block":
                i = rng.randrange(len(layers))
                others = [b for b in self.blocks if b.name != layers[i]["name"]] or self.blocks
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
        current = block["params"].get(param, blocks.get(block["name"]).space[param][0])
        value = rng.choice([c for c in blocks.get(block["name"]).space[param] if c != current])
        block["params"][param] = value
        return f"width:{i}:{param}={value}"
