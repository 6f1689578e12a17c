"""The first trials against a CNN written by hand: does a search's start pay on a small image set?

The bar (issue 11): on a small image set, the best of our first 6 search trials (chosen on validation, as the
search chooses) at least matches the test accuracy of a two-convolution CNN (Conv2D 32 -> MaxPool -> Conv2D 64
-> MaxPool -> Flatten -> Dense 128 -> Dense classes) trained by hand on the same transformed splits with the same
early stopping (validation loss, the same patience and epoch cap, best weights restored), and those 6 trials
take at most 6x that CNN's training time.

Our search runs as a user runs it (`modelsearch run` in a subprocess, benchmarks/peers.py's run_ours); the CNN
then trains in this process on the arrays our Preprocess wrote (benchmarks/peers.py's pipeline_splits). Our
time is the span of the search trials (first start to last end: what the trials cost with K trainers at once,
Ensembler and Distiller left out); the CNN's is its `fit`.

    uv run python -m benchmarks.image_baseline                       # scikit-learn's digits as 8x8 PNGs
    uv run python -m benchmarks.image_baseline --dataset warped-digits  # 8,000 warped digits, 28x28
    uv run python -m benchmarks.image_baseline --data path/to/folder  # any folder of class folders of images
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time

from benchmarks import peers
from benchmarks.image_sets import IMAGE_SETS, write_image_set

OUT = "benchmarks/results/image_baseline.json"
TIME_FACTOR = 6  # the trials may take at most this many times the CNN's training time


def hand_cnn(input_shape, num_classes: int):
    """The textbook CNN. Padding "same" so that images as small as 8x8 keep a size through both poolings."""
    import keras

    return keras.Sequential([
        keras.Input(shape=input_shape),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(2, padding="same"),
        keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(2, padding="same"),
        keras.layers.Flatten(),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(num_classes),
    ])


def run_cnn(splits: dict, num_classes: int, seed: int, max_epochs: int, patience: int, batch_size: int) -> dict:
    """Trains the CNN with our trainer's early stopping and default knobs (Adam 0.001, batch 64)."""
    import keras

    keras.utils.set_random_seed(seed)
    (x, y), (xv, yv), (xt, yt) = splits["train"], splits["validation"], splits["test"]
    model = hand_cnn(x.shape[1:], num_classes)
    model.compile(optimizer=keras.optimizers.Adam(0.001),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", mode="min", patience=patience, restore_best_weights=True)
    started = time.perf_counter()
    history = model.fit(x, y, validation_data=(xv, yv), epochs=max_epochs, batch_size=batch_size, callbacks=[stop],
                        verbose=0)
    train_s = time.perf_counter() - started
    return {"test_accuracy": float(model.evaluate(xt, yt, verbose=0)[1]),
            "val_accuracy": float(model.evaluate(xv, yv, verbose=0)[1]),
            "num_params": int(model.count_params()), "epochs": len(history.history["loss"]), "train_s": train_s}


def search_trials(output_dir: str) -> list[dict]:
    """Our search trials, oldest first: what each was, how it scored and how long it took."""
    from modelsearch.trialstore import SEARCH, TrialStore
    from pipelines.trial_commands import architecture

    store = TrialStore({"sqlite": os.path.join(output_dir, "trials.sqlite")})
    trials = sorted((t for t in store.trials(peers.STUDY) if t.kind == SEARCH), key=lambda t: t.trial_id)
    return [{"trial_id": t.trial_id, "state": t.state, "mutation": t.mutation, "architecture": architecture(t),
             "head": (t.spec or {}).get("head"), "num_params": t.num_params,
             "val_accuracy": t.metrics.get("val_accuracy"), "test_accuracy": t.metrics.get("test_accuracy"),
             "epochs": t.metrics.get("epochs"), "started": t.started or None, "finished": t.finished or None,
             "seconds": (t.finished - t.started) if t.started and t.finished else None,
             "train_seconds": t.train_seconds} for t in trials]


def back_to_back(output_dir: str, trial_id: int, cnn_args: tuple) -> dict:
    """One of our trials and the CNN trained one after the other in this process, so that both see the same
    machine load (the search ran earlier, beside other jobs): our trial again (same spec and seed, through
    training.run_trial as a trainer runs it: fit, evaluations, export, trial store), then the CNN again. The
    trial is recorded in a store of its own (the search's record stays untouched; with no completed trials there,
    the median rule cannot cut it: as for the search's first trials)."""
    import glob

    from modelsearch.config import load_config
    from modelsearch.training import run_trial
    from modelsearch.trialstore import TrialStore

    root = os.path.join(output_dir, "pipeline", "Preprocess")
    latest = lambda kind: max(glob.glob(os.path.join(root, kind, "*")), key=lambda p: int(os.path.basename(p)))  # noqa: E731
    original = TrialStore({"sqlite": os.path.join(output_dir, "trials.sqlite")}).get(trial_id)
    own = os.path.join(output_dir, "back_to_back.sqlite")
    if os.path.exists(own):
        os.remove(own)
    store = TrialStore({"sqlite": own})
    again = store.start_trial(peers.STUDY, original.spec, seed=original.seed)
    started = time.perf_counter()
    trial = run_trial(store.get(again), latest("transformed_examples"), latest("transform_graph"), store,
                      load_config(os.path.join(output_dir, "search.json")),
                      os.path.join(output_dir, "back_to_back_model"))
    trial_s = time.perf_counter() - started
    cnn = run_cnn(*cnn_args)
    return {"trial_id": trial_id, "trial_s": trial_s, "trial_train_s": trial.train_seconds,
            "trial_epochs": trial.metrics.get("epochs"), "cnn_train_s": cnn["train_s"], "cnn_epochs": cnn["epochs"],
            "ratio": trial_s / cnn["train_s"]}


def verdict(trials: list[dict], cnn: dict, factor: float = TIME_FACTOR) -> dict:
    """The bar, from our trials and the CNN's result: the best trial on validation (ties: the older) against the
    CNN's test accuracy, and the trials' span against `factor` times the CNN's training time."""
    scored = [t for t in trials if t["val_accuracy"] is not None]
    best = max(scored, key=lambda t: (t["val_accuracy"], -t["trial_id"]))
    timed = [t for t in trials if t["started"] is not None and t["finished"] is not None]
    span = max(t["finished"] for t in timed) - min(t["started"] for t in timed)
    ratio = span / cnn["train_s"]
    return {"best_trial": best, "span_s": span, "trial_seconds": sum(t["seconds"] for t in timed),
            "time_ratio": ratio, "accuracy_holds": best["test_accuracy"] >= cnn["test_accuracy"],
            "time_holds": ratio <= factor,
            "holds": best["test_accuracy"] >= cnn["test_accuracy"] and ratio <= factor}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.image_baseline", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="a folder with one sub-folder of images per class (default: --dataset)")
    parser.add_argument("--dataset", choices=IMAGE_SETS, default=IMAGE_SETS[0],
                        help="an image set made under --workdir (benchmarks/image_sets.py) when --data is not given: "
                             "the digits as 8x8 PNGs, or 8,000 warped 28x28 digits")
    parser.add_argument("--trials", type=int, default=6, help="our search trials (the bar counts the first 6)")
    parser.add_argument("--trainers", type=int, default=2, help="our trainers at once (must divide --trials)")
    parser.add_argument("--max-epochs", type=int, default=30, help="epoch cap of every model")
    parser.add_argument("--patience", type=int, default=5, help="early-stopping patience of every model")
    parser.add_argument("--seed", type=int, default=0, help="splits, search and the CNN's initialisation")
    parser.add_argument("--workdir", default="runs/bench-image-baseline", help="the image folder and our run")
    parser.add_argument("--out", default=OUT, help="where the JSON goes")
    args = parser.parse_args(argv)
    if args.trials % args.trainers:
        parser.error(f"--trainers ({args.trainers}) must divide --trials ({args.trials})")
    data = args.data or write_image_set(args.dataset, os.path.join(args.workdir, "data", args.dataset))
    ours_dir = os.path.join(args.workdir, "ours")
    if os.path.exists(ours_dir):
        import shutil
        shutil.rmtree(ours_dir)
    budget = {"rounds": args.trials // args.trainers, "trainers": args.trainers, "replicas": 0,
              "max_epochs": args.max_epochs, "patience": args.patience}
    ours = peers.run_ours(data, ours_dir, args.seed, budget)
    schema, splits = peers.pipeline_splits(ours_dir)
    cnn_args = (splits, schema["task"]["num_classes"], args.seed, args.max_epochs, args.patience, 64)
    cnn = run_cnn(*cnn_args)
    trials = search_trials(ours_dir)
    pair = back_to_back(ours_dir, trials[0]["trial_id"], cnn_args)
    command = " ".join(["python -m benchmarks.image_baseline", *(sys.argv[1:] if argv is None else argv)])
    result = {"data": data, "date": datetime.date.today().isoformat(),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores", "command": command,
              "budget": budget, "seed": args.seed, "input_shape": schema["input_shape"],
              "examples": {s: int(len(v[1])) for s, v in splits.items()},
              "ours": {"wall_s": ours["wall_s"], "trials": trials}, "cnn": cnn, "back_to_back": pair,
              "verdict": verdict(trials, cnn)}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    v = result["verdict"]
    print(f"best of {len(trials)} trials: {v['best_trial']['architecture']} test_accuracy="
          f"{v['best_trial']['test_accuracy']:.4f}; CNN test_accuracy={cnn['test_accuracy']:.4f}; "
          f"trials {v['span_s']:.0f}s = {v['time_ratio']:.1f}x the CNN's {cnn['train_s']:.0f}s; "
          f"bar {'holds' if v['holds'] else 'does not hold'}; back to back: trial {pair['trial_id']} "
          f"{pair['trial_s']:.1f}s ({pair['trial_epochs']:.0f} epochs) vs the CNN's {pair['cnn_train_s']:.1f}s "
          f"({pair['cnn_epochs']} epochs) = {pair['ratio']:.2f}x; wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
