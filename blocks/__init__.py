"""Keras 3 blocks (keras.layers / keras.ops only, so every backend runs them), their registry,
user-block loading and the builder from an architecture spec to a keras.Model.

Importing this package registers the built-in blocks of every family.
"""

from blocks import image, sequence, tabular  # noqa: F401  (registers the built-in blocks)
from blocks.builder import build_model, compile_model, validate_spec
from blocks.registry import Block, blocks_for_rank, default_params, get, names, register
from blocks.user import load_user_blocks

__all__ = [
    "Block",
    "blocks_for_rank",
    "build_model",
    "compile_model",
    "default_params",
    "get",
    "load_user_blocks",
    "names",
    "register",
    "validate_spec",
]
