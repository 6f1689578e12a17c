"""The block registry: every block is a named, searchable function from a tensor to a tensor.

A block declares the input ranks it accepts (without the batch axis: 1 = feature vector,
2 = sequence (steps, features), 3 = image (h, w, c)), its search space (param -> choices, the
first choice being the default) and `apply(x, name, **params)`.

Two facts about cost steer where a search starts (modelsearch/space.py): `expensive` blocks (many layers or
much compute per unit of width: NASNet cells, residual conv pairs, bidirectional LSTMs, attention) are
never in a study's first, random candidates, only reached by mutation once the cheap blocks stall
(modelsearch/strategies/base.py); `downsamples` blocks halve the spatial (or step) axes, which a cheap image
start pairs with its convolutions. User blocks are cheap unless their entry says `"expensive": true`.
Width choices (units, filters, d_model, ff_dim) are ordered by value there; their first element stays the
default, so adding narrower choices changes no block's default params. Every Keras layer a block creates
is named f"{name}_<something>", so a spec always yields the same layer names (the trainer copies
weights from parent to child by layer name and shape).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from common.errors import UserError

FAMILIES = ("dense", "conv", "pool", "cell", "conv1d", "recurrent", "transformer", "user")

_REGISTRY: dict[str, Block] = {}


@dataclass(frozen=True)
class Block:
    name: str
    family: str
    ranks: frozenset
    space: dict = field(hash=False)
    apply: Callable = field(hash=False)
    out_rank: int | None = None
    expensive: bool = False
    downsamples: bool = False

    def output_rank(self, input_rank: int) -> int:
        return input_rank if self.out_rank is None else self.out_rank


def register(block: Block) -> Block:
    """Add a block to the registry (re-registering the same name replaces it)."""
    _REGISTRY[block.name] = block
    return block


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def get(name: str) -> Block:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UserError(
            f"unknown block {name!r}; known blocks: {', '.join(names())}; "
            "add your own with custom_blocks in the search configuration"
        ) from None


def names() -> list[str]:
    return sorted(_REGISTRY)


def blocks_for_rank(rank: int, families: Iterable[str] | None = None) -> list[Block]:
    wanted = None if families is None else set(families)
    return [
        b
        for _, b in sorted(_REGISTRY.items())
        if rank in b.ranks and (wanted is None or b.family in wanted)
    ]


def default_params(block: Block) -> dict:
    return {k: v[0] for k, v in block.space.items()}
