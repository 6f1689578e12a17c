"""A Python API for notebooks, in the spirit of AutoKeras and KerasTuner, over the same pipeline as the CLI:

    import modelsearch
    ms = modelsearch.ModelSearch(label="y", trials=20, output_dir="runs/nb")
    summary = ms.fit("data.csv")   # `modelsearch run --data data.csv --label y --trials 20 --output-dir runs/nb`
    model = ms.best_model()        # a Keras model; best_model(serving=True): the SavedModel on raw features
    ms.trials()                    # a pandas DataFrame, one row per trial
    ms.export("exported/")         # the winner's serving SavedModel, copied

There is no second implementation: the keyword arguments become the argv of `modelsearch run`, parsed by the
CLI's own parser (every option, default and check is the CLI's), and fit() calls the CLI's `search`. Trials are
read from the local run's trial store. A user mistake raises modelsearch.errors.UserError with the CLI's
message; nothing here ends or needs to end the process (the CLI's console script ends with os._exit for
protobuf's sake, see ARCHITECTURE.md "Pitfalls": fit() runs the nodes in processes forked from the forkserver,
so this process never traces a tf.Transform graph). Light to import: no TensorFlow until a method needs it.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import os
import re

from modelsearch.errors import UserError
from pipelines import cli, local_runner
from pipelines.trial_commands import architecture

DEFAULT_ROOT = "modelsearch_runs"  # output_dir default: ./modelsearch_runs/<study>
KINDS = ("search", "ensemble", "student", "pushed")
COLUMNS_BEFORE = ["trial_id", "kind", "state", "number", "architecture"]  # then the metrics, then:
COLUMNS_AFTER = ["num_params", "parent_id", "mutation", "train_seconds", "error"]


def _run_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.Action]]:
    """The CLI's parser and its `run` options by keyword (argparse's dest), less what the API sets itself
    (data: fit's argument; output_dir: a keyword of its own) and options the CLI hides (--rounds, gone)."""
    parser = cli.make_parser()
    [commands] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    run = commands.choices["run"]
    actions = {a.dest: a for a in run._actions
               if a.option_strings and a.dest not in ("help", "data", "output_dir") and a.help != argparse.SUPPRESS}
    return parser, actions


def option_names() -> list[str]:
    """The keyword arguments ModelSearch takes besides output_dir: `modelsearch run`'s options."""
    return sorted(_run_parser()[1])


class ModelSearch:
    """A study of Model Search, run from Python: fit() runs `modelsearch run` on the data in this process.

    Args:
      label: the column (CSV) or feature (TFRecords) to predict; None for a folder of images in class folders.
      trials: the study's budget of search trials, in all (a rerun goes on until the study holds this many).
      output_dir: where the trial store, models and summary.json go (default ./modelsearch_runs/<study>); a
        later ModelSearch on the same output_dir (and study) continues the study or reads it.
      **options: any other option of `modelsearch run`, by its long name with underscores: trainers, seed,
        strategy, beam_size, p_deeper, max_epochs, time_budget (seconds or "30m"), study, push_destination,
        push_policy, max_params, problem_type, input_kind, input_shape ("28,28,1" or (28, 28, 1)), pipeline_root,
        beam_args (a list), config (a JSON file's path, or a dict of the same settings). option_names() lists them.

    Raises TypeError for a keyword that is no option, UserError (the CLI's message) for a bad value.

    In a script (a notebook needs nothing), call fit() under `if __name__ == "__main__":`: the pipeline's nodes
    are forked from multiprocessing's forkserver, which imports the main module, as spawn does.
    """

    def __init__(self, label: str | None = None, *, trials: int | None = None,
                 output_dir: str | os.PathLike | None = None, **options):
        self._parser, self._actions = _run_parser()
        unknown = sorted(set(options) - set(self._actions))
        if unknown:
            raise TypeError(f"ModelSearch() got unexpected keyword argument(s) {', '.join(unknown)}; valid: "
                            f"output_dir, {', '.join(sorted(self._actions))}")
        self._options = {"label": label, "trials": trials, **options}
        args, _ = self._parse("<data>", self._options, "<output_dir>")  # checks every value now, as the CLI would
        self.study = args.study
        self.output_dir = os.path.abspath(os.fspath(output_dir) if output_dir is not None
                                          else os.path.join(DEFAULT_ROOT, self.study))
        self._summary = None

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self._options.items() if v is not None)
        return f"ModelSearch({shown}{', ' if shown else ''}output_dir={self.output_dir!r})"

    # -- the options, as the CLI reads them ------------------------------------------------------------------
    def _parse(self, data: str, options: dict, output_dir: str) -> tuple[argparse.Namespace, dict | None]:
        """(the parsed `modelsearch run` arguments, the search defaults): a `config` dict is passed as the
        search's defaults, as a demo's settings are (the options win over it, as they win over --config)."""
        config = options.get("config")
        if config is not None and not isinstance(config, (dict, str, os.PathLike)):
            raise TypeError(f"config must be a dict of search settings or the path of a JSON file, got "
                            f"{type(config).__name__}")
        argv, defaults = ["run", f"--data={data}", f"--output-dir={output_dir}"], None
        for name, value in options.items():
            if value is None:
                continue
            action = self._actions[name]
            flag = action.option_strings[-1]  # the long form; "--flag=value" even when the value starts with "-"
            if name == "config" and isinstance(value, dict):
                defaults = {"search": copy.deepcopy(value)}
            elif action.nargs == 0:  # a flag
                argv += [flag] if value else []
            elif isinstance(action, argparse._AppendAction):  # beam_args: a list
                argv += [f"{flag}={v}" for v in ([value] if isinstance(value, str) else value)]
            elif name == "input_shape" and isinstance(value, (list, tuple)):
                argv.append(f"{flag}={','.join(str(d) for d in value)}")
            else:
                argv.append(f"{flag}={os.fspath(value) if isinstance(value, os.PathLike) else value}")
        errors = io.StringIO()
        try:
            with contextlib.redirect_stderr(errors):  # argparse prints its usage and exits: raise it instead
                args = self._parser.parse_args(argv)
        except SystemExit:
            message = errors.getvalue().strip().splitlines()[-1].split(" error: ", 1)[-1]
            flags = {a.option_strings[-1]: dest for dest, a in self._actions.items()}
            message = re.sub(r"argument (--[\w-]+)", lambda m: flags.get(m[1], m[0]), message)
            raise UserError(f"ModelSearch: {message}") from None
        return args, defaults

    # -- searching -------------------------------------------------------------------------------------------
    def fit(self, data: str | os.PathLike, **options) -> dict:
        """Runs the search on `data` (a CSV file, a folder of images in class folders, or TFRecord files; a
        local path or gs://) and returns the summary (what summary.json holds). A rerun continues the study: it
        trains search trials until the study holds `trials`, then runs the exploit stages again. `options`
        override the constructor's for this call only, e.g. fit(data, trials=30) to search further."""
        if not isinstance(data, (str, os.PathLike)):
            raise TypeError(f"data must be the path of a CSV file, an image folder or TFRecords, got "
                            f"{type(data).__name__} (for a DataFrame: df.to_csv('data.csv', index=False), then "
                            "fit('data.csv'))")
        unknown = sorted(set(options) - set(self._actions))
        if unknown:
            raise TypeError(f"fit() got unexpected keyword argument(s) {', '.join(unknown)}; valid: "
                            f"{', '.join(sorted(self._actions))}")
        if options.get("study", self.study) != self.study:
            raise ValueError("fit() cannot change the study: make another ModelSearch for it")
        args, defaults = self._parse(os.fspath(data), {**self._options, **options}, self.output_dir)
        self._summary = cli.search(args, args.data, args.label, args.problem_type, args.input_kind,
                                   args.input_shape, defaults=defaults)
        return self._summary

    @property
    def summary(self) -> dict | None:
        """The last fit's summary (or the output directory's summary.json from an earlier run; None if none)."""
        if self._summary is None:
            path = os.path.join(self.output_dir, "summary.json")
            if os.path.exists(path):
                with open(path) as f:
                    return json.load(f)
        return self._summary

    # -- reading the study -----------------------------------------------------------------------------------
    def _paths(self) -> dict:
        return local_runner.paths(self.output_dir)

    def _store(self):
        from modelsearch.trialstore import TrialStore
        path = self._paths()["trial_store"]["sqlite"]
        if not os.path.exists(path):
            raise UserError(f"{self.output_dir} holds no study yet (no {os.path.basename(path)}): call fit(data) "
                            "first, or pass the output_dir of an earlier run")
        return TrialStore(self._paths()["trial_store"])

    def trials(self):
        """The study's trials as a pandas DataFrame, one row per trial, oldest first: trial_id, kind (search,
        replica, ensemble, student), state, number (a search trial's place in the study; -1 for the others),
        architecture (the block names joined by "+"; an ensemble's members), one column per metric (val_*,
        test_*, objective, epochs, kept_parent_weights), num_params, parent_id, mutation, train_seconds, error
        (its last line)."""
        import pandas as pd

        path = self._paths()["trial_store"]["sqlite"]
        trials = self._store().trials(self.study) if os.path.exists(path) else []
        metrics = sorted({name for t in trials for name in t.metrics})
        rows = [{"trial_id": t.trial_id, "kind": t.kind, "state": t.state, "number": t.number,
                 "architecture": architecture(t), **t.metrics, "num_params": t.num_params,
                 "parent_id": t.parent_id, "mutation": t.mutation, "train_seconds": t.train_seconds,
                 "error": t.error.strip().splitlines()[-1] if t.error.strip() else ""} for t in trials]
        frame = pd.DataFrame(rows, columns=COLUMNS_BEFORE + metrics + COLUMNS_AFTER)
        return frame.astype({"trial_id": "int64", "number": "int64", "num_params": "int64", "parent_id": "Int64",
                             "train_seconds": "float64", **{m: "float64" for m in metrics}})

    def _pushes(self, store) -> list[dict]:
        """The study's push decisions that pushed a model, oldest first (the last is what is served)."""
        return [d for d in store.decisions(self.study, "push")
                if d.get("pushed") and d.get("winner_trial_id") is not None]

    def _trial(self, kind: str):
        from pipelines.summary import build_summary
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        store = self._store()
        if kind == "pushed":
            pushed = self._pushes(store)
            if not pushed:
                raise UserError(f"study {self.study!r} in {self.output_dir} has pushed no model: pass "
                                "push_destination=DIR to push the winner when it beats the last pushed model")
            return store.get(pushed[-1]["winner_trial_id"])
        chosen = build_summary(store, self.study)["best" if kind == "search" else kind]
        if chosen is None:
            raise UserError(f"study {self.study!r} in {self.output_dir} has no completed {kind} trial"
                            + (" yet: call fit(data)" if kind == "search" else ""))
        return store.get(chosen["trial_id"])

    def _recorded(self):
        """The run's latest transform graph directory (its schema: the models' input shape and task) and the
        search configuration the trainers ran with (custom blocks to rebuild the models), from TFX's metadata."""
        from ml_metadata import metadata_store
        from ml_metadata.proto import metadata_store_pb2 as mlmd

        from modelsearch.config import SearchConfig
        from modelsearch.trialstore import connection_config

        path = self._paths()["tfx_metadata"]
        store = metadata_store.MetadataStore(connection_config({"sqlite": path})) if os.path.exists(path) else None
        graphs = [a for a in (store.get_artifacts_by_type("TransformGraph") if store else [])
                  if a.state == mlmd.Artifact.LIVE]
        configs = [e for e in (store.get_executions() if store else [])
                   if "search_config" in e.custom_properties
                   and e.last_known_state in (mlmd.Execution.COMPLETE, mlmd.Execution.CACHED)]
        if not graphs or not configs:
            raise UserError(f"{self.output_dir} holds no finished run to load a model from: call fit(data)")
        config = max(configs, key=lambda e: e.id).custom_properties["search_config"].string_value
        return max(graphs, key=lambda a: a.id).uri, SearchConfig.from_json(config)

    def best_model(self, kind: str = "search", serving: bool = False):
        """The study's best model of `kind`: "search" (the best search trial on validation, the default),
        "ensemble", "student" (the distilled one) or "pushed" (the latest model pushed to push_destination).

        A Keras model (uncompiled, with its trained weights) that takes the transformed input `x` (the
        features as the pipeline feeds them: scaled, one-hot, of the schema's input shape) and outputs logits
        (classification) or the prediction (regression: of the z-scored label, label = prediction * std + mean
        with the transform graph's schema["label_scale"]). serving=True: the exported SavedModel, loaded with
        tf.saved_model.load, which takes the raw features (`.signatures["serving_default"](column=...)`)."""
        trial = self._trial(kind)
        if serving:
            import tensorflow as tf
            from modelsearch.export import SERVING_DIR
            return tf.saved_model.load(os.path.join(trial.model_uri, SERVING_DIR))
        from modelsearch.export import load_trial_model, read_schema
        transform_dir, config = self._recorded()
        return load_trial_model(self._store(), trial, read_schema(transform_dir), config)

    def export(self, path: str | os.PathLike, kind: str | None = None) -> str:
        """Copies the serving SavedModel (raw features in) of the pushed model, or of the best search trial when
        nothing was pushed (or of `kind`, as in best_model), to `path` (a new or empty folder; local or gs://),
        and returns `path`. TF Serving wants it under a version: export("models/mine/1")."""
        import tensorflow as tf
        from tfx.utils import io_utils

        from modelsearch.export import SERVING_DIR

        path = os.fspath(path)
        if kind is None:
            kind = "pushed" if self._pushes(self._store()) else "search"
        source = os.path.join(self._trial(kind).model_uri, SERVING_DIR)
        if tf.io.gfile.exists(path) and (not tf.io.gfile.isdir(path) or tf.io.gfile.listdir(path)):
            raise UserError(f"export path {path} exists and is not an empty folder: pass a new path")
        io_utils.copy_dir(source, path)  # through tf.io.gfile: local or gs://
        return path
