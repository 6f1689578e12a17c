"""User blocks named in the search configuration's `custom_blocks`.

Each entry: {"name": "my_block", "path": "pkg.module.attr" (or "pkg.module:attr"),
"ranks": [1], "params": {"units": [16, 32]}, "kind": "function" | "layer" | "network",
"out_rank": optional int, "expensive": optional bool}.

`expensive` true (a whole network, or much compute per unit of width) keeps the block out of a study's first
candidates and out of mutations until the cheap blocks stall, as for the built-in expensive blocks.

- function (default): attr(x, **params) -> tensor (also given name=... if it has a `name` parameter;
  name your layers from it so weights can be inherited between trials);
- layer: attr is a keras Layer class: attr(**params, name=...)(x);
- network: a whole network constructor such as keras.applications.MobileNetV2:
  attr(input_shape=x.shape[1:], include_top=False, weights=None, **params) applied to x.
"""

from __future__ import annotations

import importlib
import inspect
import re

import keras

from blocks import registry
from blocks.registry import Block
from common.errors import UserError

KINDS = ("function", "layer", "network")
_KEYS = {"name", "path", "ranks", "params", "kind", "out_rank", "expensive"}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def load_user_blocks(entries: list[dict]) -> list[Block]:
    """Validate, import and register every entry; returns the registered blocks."""
    if entries is None:
        return []
    if not isinstance(entries, (list, tuple)):
        raise UserError("custom_blocks must be a list of entries like "
                        '{"name": ..., "path": "package.module.attr", "ranks": [1]}')
    parsed, seen = [], set()
    for i, entry in enumerate(entries):
        block = _parse(entry, i)
        if block.name in seen:
            raise UserError(f"custom_blocks: block name {block.name!r} appears twice; give each block its own name")
        seen.add(block.name)
        parsed.append(block)
    return [registry.register(b) for b in parsed]


def _parse(entry, i: int) -> Block:
    where = f"custom_blocks[{i}]"
    if not isinstance(entry, dict):
        raise UserError(f"{where} must be a mapping with name, path and ranks, got {type(entry).__name__}")
    name = entry.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise UserError(f"{where}: 'name' is missing or not a plain identifier (letters, digits, _): {name!r}")
    where = f"custom block {name!r}"
    unknown = sorted(set(entry) - _KEYS)
    if unknown:
        raise UserError(f"{where}: unknown keys {unknown}; allowed keys: {sorted(_KEYS)}")
    if name in registry.names() and registry.get(name).family != "user":
        raise UserError(f"{where}: the name clashes with a built-in block; rename it")
    path = entry.get("path")
    if not isinstance(path, str) or not path.strip():
        raise UserError(f"{where}: 'path' is missing; give the dotted path of the function/class, "
                        "e.g. 'mypackage.blocks.my_block'")
    ranks = entry.get("ranks")
    if (not isinstance(ranks, (list, tuple)) or not ranks
            or not all(isinstance(r, int) and not isinstance(r, bool) and r in (1, 2, 3) for r in ranks)):
        raise UserError(f"{where}: 'ranks' must be a non-empty list drawn from 1 (vector), 2 (sequence), "
                        f"3 (image); got {ranks!r}")
    params = entry.get("params", {}) or {}
    if not isinstance(params, dict) or not all(
            isinstance(k, str) and isinstance(v, (list, tuple)) and len(v) > 0 for k, v in params.items()):
        raise UserError(f"{where}: 'params' must map each parameter name to a non-empty list of choices "
                        f"(the first is the default); got {params!r}")
    kind = entry.get("kind", "function")
    if kind not in KINDS:
        raise UserError(f"{where}: 'kind' must be one of {', '.join(KINDS)}; got {kind!r}")
    out_rank = entry.get("out_rank")
    if out_rank is not None and (isinstance(out_rank, bool) or out_rank not in (1, 2, 3)):
        raise UserError(f"{where}: 'out_rank' must be 1, 2 or 3 (or left out when the rank is unchanged)")
    expensive = entry.get("expensive", False)
    if not isinstance(expensive, bool):
        raise UserError(f"{where}: 'expensive' must be true or false; got {expensive!r}")
    target = _resolve(path, where)
    if kind == "layer" and not (inspect.isclass(target) and issubclass(target, keras.layers.Layer)):
        raise UserError(f"{where}: kind 'layer' needs a keras.layers.Layer subclass at {path!r}; "
                        "use kind 'function' for a function")
    if not callable(target):
        raise UserError(f"{where}: {path!r} is not callable")
    apply = _make_apply(name, kind, target, out_rank)
    return Block(name, "user", frozenset(ranks), {k: list(v) for k, v in params.items()}, apply, out_rank,
                 expensive=expensive)


def _resolve(path: str, where: str):
    path = path.strip()
    if ":" in path:
        module_name, _, attr = path.partition(":")
        candidates = [(module_name, attr.split("."))]
    else:
        parts = path.split(".")
        candidates = [(".".join(parts[:k]), parts[k:]) for k in range(len(parts) - 1, 0, -1)]
    if not candidates or not all(m and a and all(a) for m, a in candidates[:1]):
        raise UserError(f"{where}: path {path!r} must look like 'package.module.attr' or 'package.module:attr'")
    first_error = None
    for module_name, attrs in candidates:
        try:
            obj = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name and module_name != e.name and not module_name.startswith(e.name + "."):
                # the module exists but one of its own imports is missing
                raise UserError(f"{where}: importing {module_name!r} failed: {e}; install what it needs") from e
            first_error = first_error or e
            continue
        except Exception as e:  # the user's module itself raised while importing
            raise UserError(f"{where}: importing {module_name!r} failed: {type(e).__name__}: {e}") from e
        try:
            for a in attrs:
                obj = getattr(obj, a)
        except AttributeError:
            if first_error is not None:
                raise UserError(f"{where}: cannot import {path!r} ({first_error}); make sure its package is "
                                "installed or on PYTHONPATH") from first_error
            raise UserError(f"{where}: module {module_name!r} has no attribute {'.'.join(attrs)!r}; "
                            "check the path") from None
        return obj
    raise UserError(f"{where}: cannot import {path!r} ({first_error}); make sure its package is installed "
                    "or on PYTHONPATH") from first_error


def _accepts_name(fn) -> bool:
    try:
        return "name" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _make_apply(block_name: str, kind: str, target, out_rank):
    def apply(x, name, **params):
        in_rank = len(x.shape) - 1
        try:
            if kind == "layer":
                y = target(**params, name=f"{name}_layer")(x)
            elif kind == "network":
                kwargs = dict(input_shape=tuple(x.shape[1:]), include_top=False, weights=None, **params)
                if _accepts_name(target):
                    kwargs["name"] = f"{name}_net"
                net = target(**kwargs)
                net.name = f"{name}_net"
                y = net(x)
            else:
                y = target(x, name=name, **params) if _accepts_name(target) else target(x, **params)
        except UserError:
            raise
        except Exception as e:
            raise UserError(f"custom block {block_name!r} failed to build with params {params}: "
                            f"{type(e).__name__}: {e}") from e
        if not hasattr(y, "shape"):
            raise UserError(f"custom block {block_name!r} returned {type(y).__name__}, not a tensor")
        want = in_rank if out_rank is None else out_rank
        if len(y.shape) - 1 != want:
            raise UserError(f"custom block {block_name!r} returned rank {len(y.shape) - 1} (without batch), "
                            f"expected {want}; set out_rank in its entry")
        return y

    return apply
