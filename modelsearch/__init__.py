"""Model Search's library layer (search space, strategies, trial store, training, export).

`modelsearch.ModelSearch`, the notebook API (pipelines/api.py), is resolved lazily by __getattr__: the API runs
the whole pipeline, which lives in `pipelines`, a layer above this one (imports go downwards only,
ARCHITECTURE.md), and importing it here would also make every `import modelsearch...` (the CLI's --help, the
configuration checks, the executors) pay for TFX and TensorFlow. So `import modelsearch` imports nothing, and
pipelines.api is imported the first time someone asks for modelsearch.ModelSearch.
"""


def __getattr__(name: str):
    if name == "ModelSearch":
        from pipelines.api import ModelSearch
        return ModelSearch
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
