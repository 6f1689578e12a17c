"""Real data, equal budget: our search against KerasTuner (RandomSearch, Hyperband) and AutoKeras.

For each dataset and seed our pipeline runs first (`modelsearch run`: the local TFX pipeline, in its own
process); every peer then trains on the same transformed train split, is tuned on the same validation
split and is scored on the same held-out test split (the arrays our Preprocess wrote for that seed).

Budget: N trained models per tool, each at most E epochs, early stopping on validation loss with the
same patience. Ours counts every model it may train: its search trials, the Ensembler's replicas and the
Distiller's student tries (at most 1 + smallest + len(widths) of the benchmark's "student" settings: the
searched trial near the best, the smallest other searched ones, the best at narrower widths; they train
smallest first and stop at the first near enough the best, so ours often trains fewer than N: "trials"
reports what it trained, read from its trial store). Its search gets what is left: N - replicas - tries.
RandomSearch and AutoKeras run N trials. Hyperband's trials are short by design, so it gets the same epoch
budget, N x E epochs, and runs as many trials as fit in it. Our reported model is the kept student (see
BENCHMARKS.md); the best search trial, the ensemble and the pushed model are reported beside it. The peers'
results depend only on the splits and their budget, so `--peers-from FILE` takes them from an earlier
result file of the same peer budget and only ours runs again.

    uv run python -m benchmarks.peers --out benchmarks/results/peers.json
    uv run python -m benchmarks.peers --data my_table.csv --label species --seeds 0,1,2 --out runs/mine.json
"""
from __future__ import annotations

import argparse
import collections
import csv
import datetime
import glob
import json
import os
import statistics
import subprocess
import sys
import time

# Our pipeline may run in this process (in_process=True): protobuf's upb extension segfaults at exit
# after a tensorflow-transform trace unless the pure-Python protobuf is chosen first (ARCHITECTURE.md, "Pitfalls").
os.environ.setdefault("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "python")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from pipelines.cli import EXIT_INTERRUPTED, EXIT_TERMINATED  # noqa: E402  (light: no TensorFlow)

DATASETS = ("digits", "breast_cancer", "mnist1d", "digits-images", "mnist1d-sequence")
TOOLS = ("ours", "random_search", "hyperband", "autokeras")
PEERS = TOOLS[1:]
# How our pipeline reads a dataset that is not a plain table, which peers run on it, and whose peers it is
# compared with. digits-images: the digits as PNG files in class folders; the image peer is AutoKeras's image
# search (run_autokeras). mnist1d-sequence: mnist1d's CSV read by our sequence route; no peer runs again (their
# spaces take the 40 values as a table either way): it is compared with mnist1d's peers on the same rows.
ROUTES = {
    "digits-images": {"peers": ("autokeras",)},
    "mnist1d-sequence": {"data": "mnist1d", "input_kind": "sequence", "input_shape": "40",
                         "peers": (), "compared_with": "mnist1d"},
}
LABEL = "label"
STUDY = "default"
NAMES = {"ours": "**ours (student)**", "ours_best": "ours: best search trial", "ours_ensemble": "ours: ensemble",
         "ours_pushed": "ours: pushed by the default policy",
         "random_search": "KerasTuner RandomSearch", "hyperband": "KerasTuner Hyperband", "autokeras": "AutoKeras"}
PARAMS_TARGET = 0.6  # ours must have at most this fraction of a peer's winner's parameters


def route(dataset: str, key: str, default=None):
    """One setting of a dataset's route (ROUTES); `default` for a plain table."""
    return ROUTES.get(dataset, {}).get(key, default)


def route_args(dataset: str) -> list[str]:
    """The `modelsearch run` arguments that declare the route's input (none for a plain table)."""
    return [arg for key in ("input_kind", "input_shape") if route(dataset, key)
            for arg in (f"--{key.replace('_', '-')}", route(dataset, key))]


def own_dataset(path: str, label: str = LABEL) -> str:
    """A user's data (`--data`) as a dataset of this benchmark, by its file or folder name: a CSV table of
    classes with a `label` column (every peer runs), or a folder of class folders of images (AutoKeras's image
    search runs, as on digits-images)."""
    name = os.path.splitext(os.path.basename(os.path.normpath(path)))[0]
    if not os.path.exists(path):
        raise SystemExit(f"--data {path}: no such file or folder; give a CSV table or a folder of class folders")
    if name in DATASETS or (name in ROUTES and route(name, "path") != os.path.abspath(path)):
        raise SystemExit(f"--data {path}: its name {name!r} is taken; rename the file or folder")
    if os.path.isfile(path):
        if not path.lower().endswith(".csv"):
            raise SystemExit(f"--data {path}: not a .csv table; give a CSV table or a folder of class folders")
        with open(path, newline="") as f:
            header = next(csv.reader(f), [])
        if label not in header:
            raise SystemExit(f"--data {path}: no column {label!r} (it has {', '.join(header[:8]) or 'none'}"
                             f"{', ...' if len(header) > 8 else ''}); name its label column with --label")
    ROUTES[name] = {"path": os.path.abspath(path), "label": label,
                    "peers": ("autokeras",) if os.path.isdir(path) else PEERS}
    return name


def chosen_datasets(parser: argparse.ArgumentParser, names: str | None, data: list[str], label: str,
                    default) -> list[str]:
    """--datasets (comma-separated names; `default` when not given, none when there is --data) and then the
    user's own --data; an unknown name is a usage error."""
    datasets = names.split(",") if names else ([] if data else list(default))
    unknown = [d for d in datasets if d not in DATASETS]
    if unknown:
        parser.error(f"unknown dataset {', '.join(unknown)}: choose from {', '.join(DATASETS)}, "
                     "or give your own with --data")
    return datasets + [own_dataset(path, label) for path in data]


# -- data ----------------------------------------------------------------------------------------
def load_dataset(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Features and integer labels; nothing is downloaded (scikit-learn's bundled sets, mnist1d's generator)."""
    name = route(name, "data", name)
    if name == "digits":
        from sklearn.datasets import load_digits
        return load_digits(return_X_y=True)
    if name == "breast_cancer":
        from sklearn.datasets import load_breast_cancer
        return load_breast_cancer(return_X_y=True)
    if name == "mnist1d":
        from mnist1d.data import get_dataset_args, make_dataset
        data = make_dataset(get_dataset_args())  # the paper's defaults: 5,000 series of 40 steps, seed 42
        return np.concatenate([data["x"], data["x_test"]]), np.concatenate([data["y"], data["y_test"]])
    raise ValueError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")


def write_data(name: str, data_dir: str) -> str:
    """The dataset as our pipeline reads it: a CSV table, or (digits-images) a folder of class folders of PNGs.
    Datasets on the same rows share one file, so our Preprocess splits them alike."""
    if route(name, "path"):  # the user's own (--data): read where it is
        return route(name, "path")
    if name == "digits-images":
        from benchmarks.image_sets import write_image_set

        return write_image_set(name, os.path.join(data_dir, "digits_images"))
    path = os.path.join(data_dir, f"{route(name, 'data', name)}.csv")
    return path if os.path.exists(path) else write_csv(name, path)


def peers_of(dataset: str) -> tuple:
    """The peers that run on this dataset."""
    return route(dataset, "peers", PEERS)


def runs_on(dataset: str, tools) -> list:
    """Of these tools, the ones a cell of this dataset runs: ours and the dataset's peers."""
    return [t for t in tools if t == "ours" or t in peers_of(dataset)]


def write_csv(name: str, path: str) -> str:
    """The dataset as a CSV table (one column per feature, then the label): what our pipeline reads."""
    x, y = load_dataset(name)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        f.write(",".join([*(f"f{i}" for i in range(x.shape[1])), LABEL]) + "\n")
        for row, label in zip(x, y):
            f.write(",".join([*(f"{v:.6g}" for v in row), str(int(label))]) + "\n")
    return path


def pipeline_splits(output_dir: str) -> tuple[dict, dict]:
    """(schema, {split: (x, y)}) of the transformed examples our Preprocess wrote under output_dir."""
    from modelsearch.data import load_arrays as load_split

    root = os.path.join(output_dir, "pipeline", "Preprocess")
    latest = lambda kind: max(glob.glob(os.path.join(root, kind, "*")), key=lambda p: int(os.path.basename(p)))  # noqa: E731
    with open(os.path.join(latest("transform_graph"), "modelsearch_schema.json")) as f:
        schema = json.load(f)
    examples = latest("transformed_examples")
    return schema, {s: load_split(examples, s, schema) for s in ("train", "validation", "test")}


def write_splits(data: str, output_dir: str, seed: int, dataset: str) -> None:
    """Only our Preprocess, as `modelsearch run` would run it on this data and seed: the splits every tool of a
    cell trains on (a function of the data and the seed alone), where the result of ours is kept but its run's
    files are gone (a resumed benchmark on another machine), instead of a whole search to get them again."""
    from tfx.orchestration import metadata, pipeline as tfx_pipeline
    from tfx.orchestration.local.local_dag_runner import LocalDagRunner

    from modelsearch.data_versions import fingerprint
    from pipelines.local_runner import PIPELINE_NAME, absolute, paths
    from pipelines.pipeline import input_nodes

    where = paths(output_dir)
    LocalDagRunner().run(tfx_pipeline.Pipeline(
        pipeline_name=PIPELINE_NAME, pipeline_root=where["pipeline_root"],
        components=input_nodes(absolute(data), route(dataset, "label", LABEL), "classification", seed,
                               fingerprint(data), route(dataset, "input_kind", ""), route(dataset, "input_shape", ""),
                               None),
        metadata_connection_config=metadata.sqlite_metadata_connection_config(where["tfx_metadata"])))


# -- ours ----------------------------------------------------------------------------------------


def search_config(budget: dict) -> dict:
    config = {"max_epochs": budget["max_epochs"], "patience": budget["patience"],
              "ensemble": {"replicas": budget["replicas"]}}
    return {**config, "student": budget["student"]} if "student" in budget else config


def run_ours(data: str, output_dir: str, seed: int, budget: dict, in_process: bool = False,
             route: tuple = (), label: str = LABEL, settings: dict | None = None) -> dict:
    """`modelsearch run` on the CSV (a fresh study); its student, best trial and ensemble with their scores.
    `settings`: config sections beside the budget's (another benchmark's variant, e.g. early stopping off)."""
    os.makedirs(output_dir, exist_ok=True)
    config = os.path.join(output_dir, "search.json")
    with open(config, "w") as f:
        json.dump({**search_config(budget), **(settings or {})}, f)
    argv = ["run", "--data", data, "--label", label, "--problem-type", "classification",
            "--output-dir", output_dir, "--trials", str(search_trials(budget)),
            "--trainers", str(budget["trainers"]),
            "--seed", str(seed), "--config", config, *route]
    started = time.perf_counter()
    if in_process:
        from pipelines.cli import main
        code = main(argv)
    else:
        with open(os.path.join(output_dir, "run.log"), "w") as log:
            code = subprocess.run([sys.executable, "-m", "pipelines.cli", *argv], stdout=log, stderr=log).returncode
    wall = time.perf_counter() - started
    if code in (EXIT_INTERRUPTED, EXIT_TERMINATED):  # stopped, not failed: no result to record (a resumed benchmark runs it again)
        raise KeyboardInterrupt(f"modelsearch run was stopped (exit {code})")
    if code != 0:
        raise RuntimeError(f"modelsearch run exited {code}; see {output_dir}/run.log")
    return ours_result(output_dir, wall)


def ours_result(output_dir: str, wall: float) -> dict:
    """The result of a finished run of ours, read from its files (its summary and trial store)."""
    from modelsearch.exploit import choose_winner
    from modelsearch.trialstore import ENSEMBLE, TrialStore

    with open(os.path.join(output_dir, "summary.json")) as f:
        summary = json.load(f)
    trials = {t.trial_id: t for t in TrialStore({"sqlite": os.path.join(output_dir, "trials.sqlite")}).trials(STUDY)}
    trained = [t for t in trials.values() if t.kind != ENSEMBLE]
    winner = summary["student"] or summary["best"]
    # What the pipeline pushes under its default policy (best validation accuracy among best, ensemble, student).
    pushed, _ = choose_winner([trials[summary[k]["trial_id"]] for k in ("best", "ensemble", "student") if summary[k]],
                              "best_accuracy", None)

    def scores(model):
        return None if model is None else {
            "test_accuracy": model["metrics"]["test_accuracy"], "val_accuracy": model["metrics"]["val_accuracy"],
            "num_params": model["num_params"], "trial_id": model["trial_id"]}

    return {**scores(winner), "wall_s": wall, "trials": len(trained),
            "models": dict(collections.Counter(t.kind for t in trained)),
            "epochs": epochs_run(trained), "epochs_from": "curves",
            "search_s": max(t.finished for t in trained) - min(t.started for t in trained),
            "winner": "student" if summary["student"] else "best",
            "architecture": "+".join(b["name"] for b in winner["architecture"].get("blocks", [])) or "linear",
            "best": scores(summary["best"]), "ensemble": scores(summary["ensemble"]),
            "pushed": {**scores({"metrics": pushed.metrics, "num_params": pushed.num_params,
                                 "trial_id": pushed.trial_id}), "kind": pushed.kind}}


# -- peers ---------------------------------------------------------------------------------------
EPOCHS_RUN = collections.Counter()  # per tool: epochs actually trained (early stopping included)


def _callbacks(tool: str, patience: int) -> list:
    import keras

    class CountEpochs(keras.callbacks.Callback):
        """Counts trained epochs in EPOCHS_RUN (tuners deep-copy callbacks, so the count lives outside)."""

        def on_epoch_end(self, epoch, logs=None):
            EPOCHS_RUN[tool] += 1

    EPOCHS_RUN[tool] = 0
    return [keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True),
            CountEpochs()]


def dense_hypermodel(input_dim: int, num_classes: int):
    """KerasTuner's space: 1-3 dense ReLU layers of 32-512 units, dropout, Adam's learning rate, batch size."""
    import keras
    import keras_tuner as kt

    class Dense(kt.HyperModel):
        def build(self, hp):
            x = inputs = keras.Input((input_dim,))
            dropout = hp.Float("dropout", 0.0, 0.5, step=0.1)
            for i in range(hp.Int("layers", 1, 3)):
                x = keras.layers.Dense(hp.Int(f"units_{i}", 32, 512, step=32), activation="relu")(x)
                x = keras.layers.Dropout(dropout)(x)
            model = keras.Model(inputs, keras.layers.Dense(num_classes)(x))
            model.compile(optimizer=keras.optimizers.Adam(hp.Float("learning_rate", 1e-4, 1e-2, sampling="log")),
                          loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
            return model

        def fit(self, hp, model, *args, **kwargs):
            return model.fit(*args, batch_size=hp.Choice("batch_size", [32, 64, 128]), **kwargs)

    return Dense()


def cap_epochs(oracle, budget: int) -> None:
    """Stops a Hyperband oracle before the epochs it has handed out would pass `budget`."""
    spent, populate = [0], oracle.populate_space

    def populate_space(trial_id):
        response = populate(trial_id)
        if response.get("status") == "RUNNING":
            values = response["values"]
            cost = values["tuner/epochs"] - values["tuner/initial_epoch"]
            if spent[0] + cost > budget:
                return {"status": "STOPPED", "values": None}
            spent[0] += cost
        return response

    oracle.populate_space = populate_space


def run_keras_tuner(tool: str, splits: dict, num_classes: int, seed: int, budget: dict, directory: str) -> dict:
    import keras
    import keras_tuner as kt

    (x_train, y_train), validation, (x_test, y_test) = splits["train"], splits["validation"], splits["test"]
    keras.utils.set_random_seed(seed)
    hypermodel = dense_hypermodel(x_train.shape[1], num_classes)
    common = {"objective": "val_accuracy", "seed": seed, "directory": directory, "project_name": tool,
              "overwrite": True}
    started = time.perf_counter()
    if tool == "random_search":
        tuner = kt.RandomSearch(hypermodel, max_trials=budget["trials"], **common)
    else:  # repeated Hyperband iterations until the shared epoch budget is spent
        tuner = kt.Hyperband(hypermodel, max_epochs=budget["max_epochs"], factor=3, hyperband_iterations=None,
                             **common)
        cap_epochs(tuner.oracle, budget["trials"] * budget["max_epochs"])
    tuner.search(x_train, y_train, validation_data=validation, epochs=budget["max_epochs"],
                 callbacks=_callbacks(tool, budget["patience"]), verbose=0)
    best = tuner.get_best_models(1)[0]
    test = best.evaluate(x_test, y_test, verbose=0, return_dict=True)
    hp = tuner.get_best_hyperparameters(1)[0].values
    return {"test_accuracy": float(test["accuracy"]), "val_accuracy": float(tuner.oracle.get_best_trials(1)[0].score),
            "num_params": int(best.count_params()), "wall_s": time.perf_counter() - started,
            "trials": len(tuner.oracle.trials), "epochs": EPOCHS_RUN[tool],
            "architecture": "+".join(str(hp[f"units_{i}"]) for i in range(hp["layers"]))}


def _autokeras_int_shapes() -> None:
    """AutoKeras 3.0.0 hands numpy int64 widths to keras.layers.Dense, which Keras 3.15 rejects
    ("expected a positive integer"): its shape helper is made to give Python ints."""
    import tree
    from autokeras.utils import data_utils

    data_utils.dataset_shape = lambda data: tree.map_structure(
        lambda x: np.array([int(d) for d in x.shape], dtype=object), data)


def run_autokeras(splits: dict, num_classes: int, seed: int, budget: dict, directory: str) -> dict:
    import autokeras as ak
    import keras

    _autokeras_int_shapes()
    (x_train, y_train), validation, (x_test, y_test) = splits["train"], splits["validation"], splits["test"]
    keras.utils.set_random_seed(seed)
    if x_train.ndim == 4:
        # Images: AutoKeras's image search (ImageClassifier's ImageBlock) on its own CNN space. Its other block
        # types are ImageNet networks resized to 224x224 or 32x32 (hours a trial on this machine's 2 cores), and
        # one of ImageClassifier's first trials wants pretrained EfficientNet-B7 weights (a download).
        inputs = ak.ImageInput()
        block = ak.ImageBlock(block_type="vanilla")(inputs)
    else:
        inputs = ak.Input()
        block = ak.DenseBlock()(inputs)
    outputs = ak.ClassificationHead(num_classes=int(num_classes))(block)
    started = time.perf_counter()
    model = ak.AutoModel(inputs=inputs, outputs=outputs, max_trials=budget["trials"], objective="val_accuracy",
                         seed=seed, directory=directory, project_name="autokeras", overwrite=True)
    model.fit(x_train, y_train, validation_data=validation, epochs=budget["max_epochs"],
              callbacks=_callbacks("autokeras", budget["patience"]), verbose=0)
    # Decoded labels: strings of the classes ("7") or, for two classes, floats (1.0).
    predicted = np.asarray(model.predict(x_test, verbose=0)).reshape(-1).astype(float)
    exported = model.export_model()
    return {"test_accuracy": float(np.mean(predicted == y_test.astype(float))),
            "val_accuracy": float(model.tuner.oracle.get_best_trials(1)[0].score),
            "num_params": int(exported.count_params()), "wall_s": time.perf_counter() - started,
            "trials": len(model.tuner.oracle.trials), "epochs": EPOCHS_RUN["autokeras"],
            "architecture": "+".join(str(layer.units) for layer in exported.layers if hasattr(layer, "units"))}


# -- the benchmark -------------------------------------------------------------------------------
def cell_dir(workdir: str, dataset: str, seed: int, part: str) -> str:
    """Where a cell's run keeps its files: `part` is "ours", "peers" or another benchmark's variant."""
    return os.path.join(workdir, dataset, f"seed{seed}", part)


def run_cell(dataset: str, seed: int, budget: dict, tools, workdir: str, in_process: bool = False,
             on_result=None) -> list[dict]:
    """Every tool on one dataset and seed: ours first (it writes the splits), then the peers on its splits.
    `on_result` is called with each tool's result as it ends (a resumable benchmark saves it there)."""
    import keras

    base = {"dataset": dataset, "seed": seed, "commit": _commit()}
    data = write_data(dataset, os.path.join(workdir, "data"))
    ours_dir = cell_dir(workdir, dataset, seed, "ours")
    results = []

    def record(result: dict):
        results.append(result)
        print(_line(result), file=sys.stderr, flush=True)
        if on_result:
            on_result(result)
    if "ours" in tools or not os.path.exists(os.path.join(ours_dir, "summary.json")):
        if os.path.exists(ours_dir):
            import shutil
            shutil.rmtree(ours_dir)
        if "ours" not in tools:  # the result of ours is kept already: only its splits are needed again
            write_splits(data, ours_dir, seed, dataset)
        else:
            try:
                outcome = run_ours(data, ours_dir, seed, budget, in_process, route_args(dataset),
                                   route(dataset, "label", LABEL))
            except RuntimeError as e:  # no splits for the peers either: the cell ends here
                outcome = {"error": str(e)}
            record({**base, "tool": "ours", **outcome})
            if "error" in outcome:
                return results
    peer_tools = [t for t in tools if t in peers_of(dataset)]
    if not peer_tools:
        return results
    schema, splits = pipeline_splits(ours_dir)
    num_classes = schema["task"]["num_classes"]
    for tool in peer_tools:
        keras.backend.clear_session()
        directory = cell_dir(workdir, dataset, seed, "peers")
        try:
            if tool == "autokeras":
                outcome = run_autokeras(splits, num_classes, seed, budget, directory)
            else:
                outcome = run_keras_tuner(tool, splits, num_classes, seed, budget, directory)
        except Exception as e:  # a peer that fails is a result too; the others still run
            outcome = {"error": f"{type(e).__name__}: {e}"}
        record({**base, "tool": tool, **outcome})
    return results


def epochs_run(trials) -> int:
    """Every epoch the trials trained, read from their curves: their metrics' `epochs` said 0, in trial stores
    written before 2026-12-03, for a trial that ended below its inherited weights and kept them."""
    return sum(len(t.curve or []) for t in trials)


def own_trials(result: dict, workdir: str) -> list | None:
    """The trials of an earlier result of ours, read from its trial store in `workdir` when that store is still
    that run's (same trial count and winner); None when it is gone or another run's (another budget) since."""
    from modelsearch.trialstore import ENSEMBLE, TrialStore

    path = os.path.join(cell_dir(workdir, result["dataset"], result["seed"], "ours"), "trials.sqlite")
    if result["tool"] != "ours" or "error" in result or not os.path.exists(path):
        return None
    trials = TrialStore({"sqlite": path}).trials(STUDY)
    winner = next((t for t in trials if t.trial_id == result.get("trial_id")), None)
    if sum(t.kind != ENSEMBLE for t in trials) != result["trials"] or winner is None or \
            abs(winner.metrics.get("test_accuracy", -1) - result["test_accuracy"]) > 1e-6:
        return None
    return trials


def recount_epochs(result: dict, workdir: str) -> dict:
    """An earlier result of ours with its epochs counted again from its trial store (`epochs_run`), when the
    store still in `workdir` is that run's; otherwise the result as it is."""
    from modelsearch.trialstore import ENSEMBLE

    trials = None if result.get("epochs_from") else own_trials(result, workdir)
    if trials is None:
        return result
    return {**result, "epochs": epochs_run([t for t in trials if t.kind != ENSEMBLE]), "epochs_from": "curves"}


def _line(r: dict) -> str:
    if "error" in r:
        return f"[peers] {r['dataset']} seed {r['seed']} {r['tool']}: FAILED {r['error']}"
    return (f"[peers] {r['dataset']} seed {r['seed']} {r['tool']}: test_accuracy={r['test_accuracy']:.4f} "
            f"params={r['num_params']:,} trials={r['trials']} epochs={r['epochs']} wall={r['wall_s']:.0f}s")


STUDENT = {"widths": [0.5, 0.25], "smallest": 0}  # the benchmark's student tries: the near one, two widths


def student_tries(student: dict) -> int:
    """The most students the Distiller trains under these settings (modelsearch/exploit.py, student_candidates)."""
    return 1 + student["smallest"] + len(student["widths"])


def search_trials(budget: dict) -> int:
    """Our search trials: what the budget leaves after the replicas and the student tries (older result files
    gave rounds x trainers)."""
    return budget["search_trials"] if "search_trials" in budget else budget["rounds"] * budget["trainers"]


def budget_of(models: int, trainers: int, replicas: int, max_epochs: int, patience: int,
              student: dict | None = None) -> dict:
    """N = `models` per tool; ours: N - replicas - student tries search trials (at least 1)."""
    student = dict(STUDENT if student is None else student)
    search = models - replicas - student_tries(student)
    if search < 1:
        raise ValueError(f"{models} models leave no search trial after {replicas} replicas and "
                         f"{student_tries(student)} student tries; raise the budget")
    return {"models": models, "search_trials": search, "trainers": trainers, "replicas": replicas,
            "student": student, "max_epochs": max_epochs, "patience": patience, "trials": models}


def peer_budget(budget: dict) -> dict:
    """What the peers' results depend on (besides the splits): their trials and epochs."""
    return {k: budget[k] for k in ("trials", "max_epochs", "patience")}


def earlier_peer_runs(path: str | None, budget: dict, tools) -> list[dict]:
    """The successful peer runs of an earlier result file with the same peer budget (`--peers-from`)."""
    if not path:
        return []
    with open(path) as f:
        earlier = json.load(f)
    if peer_budget(earlier.get("settings", {}).get("budget", {})) != peer_budget(budget):
        raise ValueError(f"{path} holds peers of another budget ({earlier['settings']['budget']}); "
                         "run the peers again or pass a file of the same budget")
    return [r for r in earlier.get("runs", []) if r["tool"] in tools and r["tool"] in PEERS and "error" not in r]


def summarize(runs: list[dict]) -> dict:
    """Per dataset and tool: means over seeds; then, per dataset and peer, whether ours meets the targets."""
    groups = collections.defaultdict(list)
    for r in runs:
        if "error" not in r:
            groups[(r["dataset"], r["tool"])].append(r)
        if r["tool"] == "ours":
            for part in ("best", "ensemble", "pushed"):
                if r.get(part):
                    groups[(r["dataset"], f"ours_{part}")].append({**r, **r[part]})
    table = {}
    for (dataset, tool), rs in groups.items():
        accuracy = [r["test_accuracy"] for r in rs]
        table.setdefault(dataset, {})[tool] = {
            "seeds": len(rs), "test_accuracy": statistics.fmean(accuracy),
            "test_accuracy_sd": statistics.stdev(accuracy) if len(rs) > 1 else 0.0,
            "num_params": statistics.fmean(r["num_params"] for r in rs),
            "wall_s": statistics.fmean(r["wall_s"] for r in rs),
            "trials": statistics.fmean(r["trials"] for r in rs), "epochs": statistics.fmean(r["epochs"] for r in rs)}
    targets = []
    for dataset, tools in table.items():
        # The target is the pushed model's (what users serve); the student when no pushed one was recorded.
        ours = tools.get("ours_pushed") or tools.get("ours")
        peers = table.get(route(dataset, "compared_with", dataset), {})
        for peer in (p for p in PEERS if p in peers and ours):
            ratio = ours["num_params"] / peers[peer]["num_params"]
            gap = ours["test_accuracy"] - peers[peer]["test_accuracy"]
            targets.append({"dataset": dataset, "peer": peer, "accuracy_gap": gap, "params_ratio": ratio,
                            "accuracy_met": gap >= 0, "params_met": ratio <= PARAMS_TARGET,
                            "seeds": min(ours["seeds"], peers[peer]["seeds"])})
    return {"table": table, "targets": targets}


def complete_cells(runs: list[dict], tools=TOOLS) -> tuple[list[dict], list[str]]:
    """(the runs of the cells where every tool the cell runs has a result, a failure included; a line per cell
    left out): a cell still running compares ours with a part of the peers, or the peers with no ours."""
    have = collections.defaultdict(set)
    for r in runs:
        have[(r["dataset"], r["seed"])].add(r["tool"])
    partial = {cell: [t for t in runs_on(cell[0], tools) if t not in done] for cell, done in have.items()}
    partial = {cell: lacking for cell, lacking in partial.items() if lacking}
    kept = [r for r in runs if (r["dataset"], r["seed"]) not in partial]
    return kept, [f"{d} seed {s} (lacks {', '.join(lacking)})" for (d, s), lacking in sorted(partial.items())]


def verdict(met: bool, target: dict, seeds: int | None) -> str:
    """A target cell: met or not, only once every seed the benchmark asks for is in (fewer is not a verdict)."""
    if seeds and target.get("seeds", seeds) < seeds:
        return f"({target['seeds']} of {seeds} seeds)"
    return "met" if met else "not met"


def per_seed(results: dict) -> str:
    """Test accuracy (and the winner's parameters) of every tool, seed by seed: where the means' ties and gaps
    come from. Ours is the pushed model; its validation accuracy beside it (what the push chose on)."""
    cells = collections.defaultdict(dict)
    for r in results["runs"]:
        cells[(r["dataset"], r["seed"])][r["tool"]] = r
    rows = ["| dataset | seed | ours pushed: test (val), parameters | "
            + " | ".join(NAMES[t] for t in PEERS) + " |", "|---|---:|---|" + "---|" * len(PEERS)]

    def cell(r):
        if r is None:
            return "-"
        return "failed" if "error" in r else f"{r['test_accuracy']:.4f}, {r['num_params']:,}"
    for (dataset, seed), tools in sorted(cells.items()):
        ours = tools.get("ours")
        pushed = (ours.get("pushed") or ours) if ours and "error" not in ours else None
        mine = (f"{pushed['test_accuracy']:.4f} ({pushed['val_accuracy']:.4f}), {pushed['num_params']:,}"
                if pushed else cell(ours))
        rows.append(f"| {dataset} | {seed} | {mine} | " + " | ".join(cell(tools.get(t)) for t in PEERS) + " |")
    return "\n".join(rows)


def markdown(results: dict) -> str:
    summary = results["summary"]
    rows = ["| dataset | tool | test accuracy (mean ± sd) | winner's parameters | wall s | models trained | epochs run |",
            "|---|---|---:|---:|---:|---:|---:|"]
    for dataset, tools in summary["table"].items():
        for tool in (t for t in NAMES if t in tools):
            s = tools[tool]
            wall = f"{s['wall_s']:.0f}" if tool in TOOLS else "(in ours)"
            rows.append(f"| {dataset} | {NAMES[tool]} | {s['test_accuracy']:.4f} ± {s['test_accuracy_sd']:.4f} | "
                        f"{s['num_params']:,.0f} | {wall} | {s['trials']:.0f} | {s['epochs']:.0f} |")
    rows += ["", "| dataset | peer | accuracy: pushed − peer | parameters: pushed / peer | accuracy target | "
                 f"parameter target (≤ {PARAMS_TARGET:.0%}) |", "|---|---|---:|---:|---|---|"]
    seeds = len(results.get("settings", {}).get("seeds", []))
    for t in summary["targets"]:
        rows.append(f"| {t['dataset']} | {NAMES[t['peer']]} | {t['accuracy_gap']:+.4f} | {t['params_ratio']:.0%} | "
                    f"{verdict(t['accuracy_met'], t, seeds)} | {verdict(t['params_met'], t, seeds)} |")
    if results.get("partial"):
        rows += ["", "Not in the tables, not every tool done yet: " + "; ".join(results["partial"]) + "."]
    return "\n".join(rows)


def finished_runs(out: str | None, budget: dict, tools=None) -> list[dict]:
    """The successful runs (of `tools`, or all) an earlier result file holds for the same budget (a resumed
    benchmark keeps them)."""
    if not out or not os.path.exists(out):
        return []
    with open(out) as f:
        earlier = json.load(f)
    if earlier.get("settings", {}).get("budget") != budget:
        return []
    return [r for r in earlier.get("runs", []) if (tools is None or r["tool"] in tools) and "error" not in r]


def run(datasets, seeds, budget: dict, tools=TOOLS, workdir: str = "runs/bench-peers", out: str | None = None,
        in_process: bool = False, resume: bool = False, peers_from: str | None = None) -> dict:
    """Every tool on every dataset and seed. `resume`: every result `out` holds for the same budget is kept
    (cells outside this grid too) and only the tools a cell lacks run, so a long benchmark that stopped goes on
    where it was; the file is rewritten after every tool's run, the kept results with it."""
    from benchmarks.report import keeper, machine, save_json

    kept = [recount_epochs(r, workdir) for r in finished_runs(out, budget, tools)] if resume else []
    reused = earlier_peer_runs(peers_from, budget, tools)
    # The settings name every cell the file holds, the kept ones too: --markdown asks for a verdict at that many seeds.
    grid = {"datasets": list(dict.fromkeys([*datasets, *(r["dataset"] for r in kept)])),
            "seeds": sorted({*seeds, *(r["seed"] for r in kept)})}
    results = {"benchmark": "peers", "date": datetime.date.today().isoformat(), "machine": machine(),
               "versions": _versions(), "settings": {**grid, "budget": budget, "tools": list(tools)},
               "runs": list(kept)}

    keep = keeper(results, out, summarize)  # after every tool's run

    for dataset in datasets:
        for seed in seeds:
            have = {r["tool"] for r in kept if (r["dataset"], r["seed"]) == (dataset, seed)}
            cell = [r for r in reused if (r["dataset"], r["seed"]) == (dataset, seed) and r["tool"] not in have]
            missing = [t for t in runs_on(dataset, tools) if t not in have | {r["tool"] for r in cell}]
            if not missing:
                results["runs"] += cell
                continue
            run_cell(dataset, seed, budget, missing, workdir, in_process, on_result=keep)
            results["runs"] += cell
    results["summary"] = summarize(results["runs"])
    if out:  # the peers' results taken from --peers-from after the last run are in the file too
        save_json(results, out)
    return results


def merged(paths) -> dict:
    """The runs of several result files of one budget as one result, summarized over the complete cells (while
    benchmarks still run, the others are listed in `partial`); a cell's tool in two files is refused: which of
    the two to report is not for this function to guess."""
    runs, seen, budgets, seeds, tools = [], {}, {}, set(), set()
    for path in paths:
        with open(path) as f:
            result = json.load(f)
        settings = result.get("settings", {})
        budgets[path] = settings.get("budget")
        seeds.update(settings.get("seeds", []))
        tools.update(settings.get("tools", TOOLS))
        if len({json.dumps(b, sort_keys=True) for b in budgets.values()}) > 1:
            raise SystemExit(f"the files have different budgets ({budgets}): their runs are not one table")
        for r in result["runs"]:
            key = (r["dataset"], r["seed"], r["tool"])
            if key in seen:
                raise SystemExit(f"{r['dataset']} seed {r['seed']} {r['tool']} is in both {seen[key]} and {path}: "
                                 "give files of disjoint cells")
            seen[key] = path
            runs.append(r)
    kept, partial = complete_cells(runs, [t for t in TOOLS if t in tools])
    return {"runs": runs, "settings": {"budget": next(iter(budgets.values()), None), "seeds": sorted(seeds)},
            "partial": partial, "summary": summarize(kept)}


def _commit() -> str | None:
    """The commit our pipeline ran at (a long benchmark resumed over days may span several)."""
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=os.path.dirname(os.path.abspath(__file__)), check=True).stdout.strip() or None
    except (OSError, subprocess.CalledProcessError):
        return None


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("tensorflow", "keras", "keras-tuner", "autokeras", "tfx", "mnist1d"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.peers", description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", help="comma-separated, from " + ", ".join(DATASETS)
                        + " (default: all of them, or none when --data is given)")
    parser.add_argument("--data", metavar="PATH", nargs="+", default=[],
                        help="your own data too: a CSV table of classes (its label column: --label) or a folder "
                             "of class folders of images; named by its file or folder name")
    parser.add_argument("--label", default=LABEL, help="the label column of the --data tables")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (splits, search and training)")
    parser.add_argument("--tools", default=",".join(TOOLS), help="comma-separated, from " + ", ".join(TOOLS))
    parser.add_argument("--models", type=int, default=8,
                        help="N: models each tool trains (ours: search trials + replicas + student tries)")
    parser.add_argument("--trainers", type=int, default=2, help="our trainers at once K")
    parser.add_argument("--replicas", type=int, default=1, help="our Ensembler's replicas of the best trial")
    parser.add_argument("--max-epochs", type=int, default=30, help="epoch cap of every model (E)")
    parser.add_argument("--patience", type=int, default=5, help="early-stopping patience of every model")
    parser.add_argument("--workdir", default="runs/bench-peers", help="CSV files, our runs and the tuners' files")
    parser.add_argument("--out", default="benchmarks/results/peers.json", help="where the JSON goes")
    parser.add_argument("--markdown", metavar="JSON", nargs="+",
                        help="only print the tables of earlier result files (several: of their runs together, as "
                             "left by benchmarks run at once on disjoint datasets); only cells every tool has "
                             "finished, and a verdict only for a dataset at every seed the files ask for")
    parser.add_argument("--per-seed", action="store_true",
                        help="with --markdown: also every tool's test accuracy and parameters seed by seed")
    parser.add_argument("--peers-from", metavar="JSON",
                        help="take the peers' results from this earlier result file (same N, E and patience)")
    parser.add_argument("--resume", action="store_true",
                        help="keep the results --out already holds for this budget; run only the missing cells")
    args = parser.parse_args(argv)
    if args.markdown:
        result = merged(args.markdown)
        print(markdown(result))
        if args.per_seed:
            print("\n" + per_seed(result))
        return
    budget = budget_of(args.models, args.trainers, args.replicas, args.max_epochs, args.patience)
    datasets = chosen_datasets(parser, args.datasets, args.data, args.label, DATASETS)
    results = run(datasets, [int(s) for s in args.seeds.split(",")], budget,
                  args.tools.split(","), args.workdir, args.out, resume=args.resume, peers_from=args.peers_from)
    print(markdown(results))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
