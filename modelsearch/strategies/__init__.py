"""Search strategies: one module each, all behind `Strategy.propose` (see base.py).

A new strategy is one file here plus one line in STRATEGIES.
"""
import importlib

STRATEGIES = {
    "random": "modelsearch.strategies.random_search:RandomSearch",
    "beam": "modelsearch.strategies.beam_search:BeamSearch",
    "evolution": "modelsearch.strategies.regularized_evolution:RegularizedEvolution",
}


def names() -> list[str]:
    return sorted(STRATEGIES)


def create(name: str, **settings):
    from modelsearch.errors import UserError
    if name not in STRATEGIES:
        raise UserError(f"unknown strategy {name!r}; choose one of {', '.join(names())}")
    module, cls = STRATEGIES[name].split(":")
    return getattr(importlib.import_module(module), cls)(**settings)
