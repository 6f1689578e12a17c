"""Input kinds: what the model's input `x` is, and which block families fit it.

    tabular   x is a feature vector        (n,)        rank 1   dense families
    sequence  x is (steps, features)       (40, 1)     rank 2   conv1d, recurrent, transformer
    image     x is (height, width, chans)  (28, 28, 1) rank 3   conv (plain, residual), pool, cell

The rank of the model's input decides the kind; this module is the one place that maps a declared
shape (`--input-shape`, possibly without its trailing feature / channel axis) to the model's shape.
No TensorFlow here: the CLI uses it before loading anything heavy.
"""
from __future__ import annotations

import math

from modelsearch.errors import UserError

KIND_RANKS = {"tabular": 1, "sequence": 2, "image": 3}
RANK_KINDS = {rank: kind for kind, rank in KIND_RANKS.items()}
KINDS = tuple(KIND_RANKS)
# The block families the generator proposes for each kind by default (user blocks that accept the
# rank are always added); the configuration's `families` restricts or extends them.
KIND_FAMILIES = {"tabular": ("dense",), "sequence": ("conv1d", "recurrent", "transformer"),
                 "image": ("conv", "pool", "cell")}


def parse_shape(text: str | list | tuple | None, option: str = "--input-shape") -> list[int] | None:
    """"28,28,1" (or [28, 28, 1]) -> [28, 28, 1]; None or "" -> None."""
    if text is None or text == "" or text == []:
        return None
    parts = text.replace("x", ",").split(",") if isinstance(text, str) else list(text)
    try:
        shape = [int(str(p).strip()) for p in parts]
    except ValueError:
        shape = []
    if not shape or len(shape) > 3 or any(d < 1 for d in shape):
        raise UserError(f"{option} {text!r} is not a shape; give 1 to 3 positive whole numbers separated by "
                        f"commas, e.g. 40 or 40,1 (a sequence) or 28,28,1 (an image)")
    return shape


def check_kind(kind: str | None, option: str = "--input-kind") -> str | None:
    if kind in (None, ""):
        return None
    if kind not in KIND_RANKS:
        raise UserError(f"{option} {kind!r} is not an input kind; use one of {', '.join(KINDS)}")
    return kind


def kind_of_shape(declared: list[int]) -> str:
    """The kind a declared shape means when no kind is given: (h, w, c) an image, else a sequence."""
    return "image" if len(declared) == 3 else "sequence"


def model_shape(kind: str, declared: list[int]) -> list[int]:
    """The model's input shape for a declared shape of that kind.

    sequence: (steps,) -> (steps, 1); (steps, features) as is.
    image:    (h, w) -> (h, w, 1); (h, w, c) as is (c is 1, 3 or 4).
    tabular:  (n,) as is.
    """
    declared = [int(d) for d in declared]
    rank, wanted = len(declared), KIND_RANKS[kind]
    if kind == "image" and rank == 3 and declared[2] not in (1, 3, 4):
        raise UserError(f"an image shape ends with its channels (1 grayscale, 3 RGB, 4 RGBA), got "
                        f"{shape_text(declared)}; give height,width or height,width,channels")
    if rank == wanted:
        return declared
    if rank == wanted - 1 and kind != "tabular":
        return [*declared, 1]
    examples = {"tabular": "the number of features, e.g. 64", "sequence": "steps or steps,features, e.g. 40 or 40,1",
                "image": "height,width or height,width,channels, e.g. 28,28 or 28,28,1"}
    raise UserError(f"input shape {shape_text(declared)} does not fit {kind} inputs (rank {wanted}); give "
                    f"{examples[kind]}, or another --input-kind")


def size(shape: list[int]) -> int:
    return math.prod(int(d) for d in shape)


def square_shape(n: int, what: str) -> list[int]:
    """[side, side] for n values forming a square grayscale image; `what` names the n values in the error."""
    side = math.isqrt(n)
    if side * side != n:
        raise UserError(f"{what}, not a square number of pixels: pass --input-shape HEIGHT,WIDTH[,CHANNELS] "
                        f"for an image")
    return [side, side]


def shape_text(shape) -> str:
    """[28, 28, 1] -> "28,28,1", as --input-shape takes it."""
    return ",".join(str(d) for d in shape)
