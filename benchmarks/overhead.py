"""Overhead: the same N trials as plain Keras fits in a loop, and through the local TFX pipeline.

Two child processes, each timed from its launch to its exit:
- pipeline: `modelsearch run` (pipelines.cli.main, the real local pipeline: LocalDagRunner, SQLite
  trial store) for R rounds x K trainers of the search, without the exploit phase (no Ensembler or
  Distiller: they would train more models than the loop does). Timers wrapped around the pipeline's
  own functions break its wall time down: interpreter start, imports, Preprocess (Beam +
  tf.Transform), the search generator, and inside each trainer the Keras fit, model building, reading
  the splits, warm starts, evaluation, export and the trial store (ML Metadata); what is left of
  LocalDagRunner's time is TFX's orchestration (compiling the DAG, its own MLMD, drivers, publishers).
- loop: the same specs with the same seeds as `blocks.build_model` + `model.fit` on the same numpy
  splits, for the same number of epochs (early stopping is off in both: patience = max epochs, so
  both do exactly the same training work).

`--variants` also runs the pipeline with candidate cuts applied in the child (see CUTS), to
measure them before they are made in the code.

    uv run python -m benchmarks.overhead --out benchmarks/results/overhead.json
"""
from __future__ import annotations

import argparse
import collections
import datetime
import functools
import json
import os
import subprocess
import sys
import time

LAUNCH_ENV = "MODELSEARCH_BENCH_LAUNCH"  # the parent's time.time() when it started the child
STUDY = "default"

# Candidate cuts, applied in the pipeline child (monkeypatches of our code, or its environment); a variant
# is one cut or several joined by "+", e.g. "pure_python_protobuf+no_serving_export".
CUTS = {
    "baseline": "the pipeline as it is: protobuf's C implementation (upb), and os._exit once the work is "
                "written, as the `modelsearch` console script does (pipelines.cli.entry)",
    "pure_python_protobuf": "as before the cut: the pure-Python protobuf implementation and a normal interpreter "
                            "exit (the workaround for upb's segfault at exit after a tf.Transform trace)",
    "no_serving_export": "trainers save weights + spec only, no serving SavedModel per trial (export only "
                         "the models that can be pushed: best, ensemble, student)",
}


# -- timers ------------------------------------------------------------------------------------------
TIMES = collections.Counter()   # label -> seconds
CALLS = collections.Counter()   # label -> calls
_ACTIVE = set()                 # labels being timed now: a nested call of the same label is not counted twice


def timed(owner, attribute: str, label: str, within: str | None = None) -> None:
    """Wraps owner.attribute (a function or method) so that its time adds up in TIMES[label]
    (only while `within`, another label, is being timed, when given)."""
    original = getattr(owner, attribute)

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        if label in _ACTIVE or (within and within not in _ACTIVE):
            return original(*args, **kwargs)
        _ACTIVE.add(label)
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            TIMES[label] += time.perf_counter() - started
            CALLS[label] += 1
            _ACTIVE.discard(label)

    setattr(owner, attribute, wrapper)


def _timed_import(label: str, *modules: str) -> None:
    import importlib
    started = time.perf_counter()
    for module in modules:
        importlib.import_module(module)
    TIMES[label] += time.perf_counter() - started


def _since_launch() -> float:
    return time.time() - float(os.environ.get(LAUNCH_ENV, time.time()))


# -- the pipeline child --------------------------------------------------------------------------------
def instrument_pipeline(cuts: set) -> None:
    import keras

    import components.preprocess.executor as preprocess
    import components.preprocess.serving as serving
    import components.search_generator.executor as generator
    import components.trainer.executor as trainer
    import components.trainer.weight_sharing as weight_sharing
    import pipelines.pipeline
    from modelsearch.trialstore import TrialStore
    from tfx.orchestration.local.local_dag_runner import LocalDagRunner

    assert hasattr(pipelines.pipeline, "exploit_nodes"), "create_pipeline changed: update the benchmark"
    pipelines.pipeline.exploit_nodes = lambda *args, **kwargs: []  # the search only: N trials, no more
    timed(LocalDagRunner, "run", "pipeline: LocalDagRunner.run")
    timed(preprocess.Executor, "Do", "node: Preprocess (Beam + tf.Transform)")
    timed(generator.Executor, "Do", "node: SearchGenerator")
    timed(trainer.Executor, "Do", "node: Trainer")
    trainer_node = "node: Trainer"  # the trainer's parts are counted inside trainer nodes only
    for owner, attribute, label in (
            (keras.Model, "fit", "trainer: Keras fit"),
            (trainer, "build_compiled", "trainer: build + compile"),
            (preprocess, "load_split", "trainer: read splits (TFRecord -> numpy)"),
            (trainer, "load_trial_model", "trainer: warm start (rebuild parent, load weights)"),
            (weight_sharing, "copy_matching_weights", "trainer: warm start (copy weights)"),
            (trainer, "evaluate", "trainer: evaluate"),
            (trainer, "save_trial_model", "trainer: save (weights + spec + serving SavedModel)"),
            (serving, "export_serving_model", "trainer: save: serving SavedModel"),
            *((TrialStore, method, "trainer: trial store (ML Metadata, SQLite)")
              for method in ("__init__", "start_trial", "complete_trial", "fail_trial", "get", "trials"))):
        timed(owner, attribute, label, within=trainer_node)
    if "no_serving_export" in cuts:
        serving.export_serving_model = lambda *args, **kwargs: None
        timed(serving, "export_serving_model", "trainer: save: serving SavedModel", within=trainer_node)


def pipeline_child(args) -> dict:
    TIMES["process: interpreter start"] = _since_launch()
    _timed_import("imports: TensorFlow + Keras", "tensorflow", "keras")
    _timed_import("imports: TFX, Beam, tf.Transform, our components", "tfx.orchestration.local.local_dag_runner",
                  "apache_beam", "tensorflow_transform.beam", "pipelines.pipeline", "pipelines.cli")
    instrument_pipeline(set(args.variant.split("+")))
    from pipelines.cli import main

    config = os.path.join(args.run_dir, "search.json")
    os.makedirs(args.run_dir, exist_ok=True)
    with open(config, "w") as f:  # early stopping off: the loop and the pipeline train the same epochs
        json.dump({"max_epochs": args.max_epochs, "patience": args.max_epochs}, f)
    started = time.perf_counter()
    code = main(["run", "--data", args.data, "--label", "label", "--problem-type", "classification",
                 "--output-dir", args.run_dir, "--rounds", str(args.rounds), "--trainers", str(args.trainers),
                 "--seed", str(args.seed), "--config", config])
    TIMES["pipeline: modelsearch run (in process)"] = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"modelsearch run exited {code}")
    started = time.perf_counter()
    _export_trials(args.run_dir)
    TIMES["benchmark: export the trials for the loop"] = time.perf_counter() - started
    return {"times": dict(TIMES), "calls": dict(CALLS)}


def _export_trials(run_dir: str) -> None:
    """The trials' specs and seeds, and the splits as numpy, for the loop (which imports no TFX)."""
    import numpy as np

    from benchmarks.peers import pipeline_splits
    from modelsearch.trialstore import TrialStore

    trials = TrialStore({"sqlite": os.path.join(run_dir, "trials.sqlite")}).trials(STUDY)
    schema, splits = pipeline_splits(run_dir)
    with open(os.path.join(run_dir, "loop.json"), "w") as f:
        json.dump({"schema": {"input_shape": schema["input_shape"], "task": schema["task"]},
                   "trials": [{"trial_id": t.trial_id, "spec": t.spec, "seed": t.seed, "state": t.state,
                               "num_params": t.num_params, "epochs": t.metrics.get("epochs")} for t in trials]}, f)
    np.savez(os.path.join(run_dir, "splits.npz"), **{f"{s}_{xy}": a for s, (x, y) in splits.items()
                                                      for xy, a in (("x", x), ("y", y))})


# -- the loop child ------------------------------------------------------------------------------------
def loop_child(args) -> dict:
    TIMES["process: interpreter start"] = _since_launch()
    _timed_import("imports: TensorFlow + Keras", "tensorflow", "keras")
    _timed_import("imports: our blocks", "blocks")
    import keras
    import numpy as np

    import blocks

    timed(keras.Model, "fit", "trainer: Keras fit")
    started = time.perf_counter()
    with open(os.path.join(args.run_dir, "loop.json")) as f:
        plan = json.load(f)
    arrays = np.load(os.path.join(args.run_dir, "splits.npz"))
    split = {s: (arrays[f"{s}_x"], arrays[f"{s}_y"]) for s in ("train", "validation", "test")}
    TIMES["loop: read splits (numpy)"] = time.perf_counter() - started
    task, shape = plan["schema"]["task"], tuple(plan["schema"]["input_shape"])
    results = []
    for trial in plan["trials"]:
        started = time.perf_counter()
        keras.utils.set_random_seed(int(trial["seed"]))
        model = blocks.compile_model(blocks.build_model(trial["spec"], shape, task), trial["spec"], task)
        stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=args.max_epochs, restore_best_weights=True)
        history = model.fit(*split["train"], validation_data=split["validation"], epochs=args.max_epochs,
                            batch_size=int(trial["spec"]["knobs"].get("batch_size", 64)), callbacks=[stop], verbose=0)
        test = model.evaluate(*split["test"], verbose=0, return_dict=True, batch_size=256)
        results.append({"trial_id": trial["trial_id"], "epochs": len(history.history["loss"]),
                        "test_accuracy": float(test.get("accuracy", float("nan"))), "num_params": model.count_params()})
        TIMES["loop: trials (build, fit, evaluate)"] += time.perf_counter() - started
    return {"times": dict(TIMES), "calls": dict(CALLS), "trials": results}


# -- the parent ------------------------------------------------------------------------------------
def _child(role: str, args, run_dir: str, variant: str = "baseline") -> dict:
    out = os.path.join(run_dir, f"{role}-{variant}.json")
    command = [sys.executable, "-m", "benchmarks.overhead", "--child", role, "--run-dir", run_dir, "--data", args.data,
               "--rounds", str(args.rounds), "--trainers", str(args.trainers), "--max-epochs", str(args.max_epochs),
               "--seed", str(args.seed), "--variant", variant, "--child-out", out]
    # protobuf's default, upb, as the console script and a plain Keras script use it; or the old workaround.
    python = role == "pipeline" and "pure_python_protobuf" in variant.split("+")
    env = {**os.environ, "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION": "python" if python else "upb"}
    launched = time.time()
    with open(os.path.join(run_dir, f"{role}-{variant}.log"), "w") as log:
        code = subprocess.run(command, env={**env, LAUNCH_ENV: repr(launched)}, stdout=log, stderr=log).returncode
    wall = time.time() - launched
    if code != 0:
        raise RuntimeError(f"the {role} child exited {code}; see {log.name}")
    with open(out) as f:
        result = json.load(f)
    result["times"]["process: exit"] = wall - result["finished_after_launch"]
    # The pipeline child's hand-over of the trials to the loop is the benchmark's work, not the pipeline's.
    result["wall_s"] = wall - result["times"].get("benchmark: export the trials for the loop", 0.0)
    return result


def breakdown(pipeline: dict) -> list[dict]:
    """Where the pipeline's wall time goes, as disjoint parts that add up to it (nested timers subtracted)."""
    t = collections.defaultdict(float, pipeline["times"])
    trainer_parts = ["trainer: Keras fit", "trainer: build + compile", "trainer: read splits (TFRecord -> numpy)",
                     "trainer: warm start (rebuild parent, load weights)", "trainer: warm start (copy weights)",
                     "trainer: evaluate", "trainer: save: serving SavedModel"]
    save_other = t["trainer: save (weights + spec + serving SavedModel)"] - t["trainer: save: serving SavedModel"]
    nodes = sum(t[k] for k in ("node: Preprocess (Beam + tf.Transform)", "node: SearchGenerator", "node: Trainer"))
    parts = {
        "interpreter start": t["process: interpreter start"],
        "imports: TensorFlow + Keras": t["imports: TensorFlow + Keras"],
        "imports: TFX, Beam, tf.Transform, our components": t["imports: TFX, Beam, tf.Transform, our components"],
        "CLI before and after the pipeline (schema, config, summary.json)":
            t["pipeline: modelsearch run (in process)"] - t["pipeline: LocalDagRunner.run"],
        "TFX orchestration (DAG compile, TFX's MLMD, drivers, publishers)": t["pipeline: LocalDagRunner.run"] - nodes,
        "Preprocess (Beam + tf.Transform)": t["node: Preprocess (Beam + tf.Transform)"],
        "SearchGenerator": t["node: SearchGenerator"],
        **{part: t[part] for part in trainer_parts},
        "trainer: save weights + spec": save_other,
        "trainer: trial store (ML Metadata, SQLite)": t["trainer: trial store (ML Metadata, SQLite)"],
        "trainer: other (Python between the timed calls)": t["node: Trainer"] - sum(t[p] for p in trainer_parts)
        - save_other - t["trainer: trial store (ML Metadata, SQLite)"],
        "instrumentation and other": pipeline["finished_after_launch"] - t["process: interpreter start"]
        - t["imports: TensorFlow + Keras"] - t["imports: TFX, Beam, tf.Transform, our components"]
        - t["pipeline: modelsearch run (in process)"] - t["benchmark: export the trials for the loop"],
        "interpreter exit": t["process: exit"],
    }
    return [{"part": k, "seconds": v, "share": v / pipeline["wall_s"]} for k, v in parts.items()]


def run(args) -> dict:
    from benchmarks.nasbench201 import machine
    from benchmarks.peers import write_csv

    os.makedirs(args.workdir, exist_ok=True)
    args.data = os.path.abspath(os.path.join(args.workdir, f"{args.dataset}.csv"))
    if not os.path.exists(args.data):
        write_csv(args.dataset, args.data)
    results = {"benchmark": "overhead", "date": datetime.date.today().isoformat(), "machine": machine(),
               "load_average": os.getloadavg(),
               "settings": {"dataset": args.dataset, "rounds": args.rounds, "trainers": args.trainers,
                            "trials": args.rounds * args.trainers, "max_epochs": args.max_epochs, "seed": args.seed},
               "variants": {}}
    for variant in args.variants.split(","):
        unknown = set(variant.split("+")) - set(CUTS)
        if unknown:
            raise SystemExit(f"unknown cut(s) {', '.join(sorted(unknown))}; known: {', '.join(CUTS)}")
        run_dir = os.path.abspath(os.path.join(args.workdir, variant))
        if os.path.exists(run_dir):
            import shutil
            shutil.rmtree(run_dir)
        os.makedirs(run_dir)
        pipeline = _child("pipeline", args, run_dir, variant)
        loop = _child("loop", args, run_dir)
        results["variants"][variant] = {
            "description": " + ".join(CUTS[c] for c in variant.split("+")), "pipeline_wall_s": pipeline["wall_s"], "loop_wall_s": loop["wall_s"],
            "ratio": pipeline["wall_s"] / loop["wall_s"], "breakdown": breakdown(pipeline),
            "pipeline": pipeline, "loop": loop}
        print(f"[overhead] {variant}: pipeline {pipeline['wall_s']:.1f}s, loop {loop['wall_s']:.1f}s, "
              f"ratio {pipeline['wall_s'] / loop['wall_s']:.2f}", file=sys.stderr, flush=True)
    return results


def markdown(results: dict) -> str:
    variants = results["variants"]
    rows = ["| variant | pipeline wall s | plain loop wall s | ratio | Keras fit s (pipeline / loop) | "
            "all but the fit s (pipeline / loop) |", "|---|---:|---:|---:|---:|---:|"]
    for name, v in variants.items():
        fits = (v["pipeline"]["times"].get("trainer: Keras fit", 0), v["loop"]["times"].get("trainer: Keras fit", 0))
        rows.append(f"| {name} | {v['pipeline_wall_s']:.1f} | {v['loop_wall_s']:.1f} | {v['ratio']:.2f} | "
                    f"{fits[0]:.1f} / {fits[1]:.1f} | {v['pipeline_wall_s'] - fits[0]:.1f} / "
                    f"{v['loop_wall_s'] - fits[1]:.1f} |")
    names = list(variants)
    rows += ["", "| where the pipeline's time goes | " + " | ".join(f"{n} s (share)" for n in names) + " |",
             "|---|" + "---:|" * len(names)]
    for i, part in enumerate(variants[names[0]]["breakdown"]):
        cells = [variants[n]["breakdown"][i] for n in names]
        rows.append(f"| {part['part']} | " + " | ".join(f"{c['seconds']:.1f} ({c['share']:.0%})" for c in cells) + " |")
    loop = variants[names[0]]["loop"]["times"]
    rows += ["", "| where the plain loop's time goes | s |", "|---|---:|"]
    rows += [f"| {k} | {v:.1f} |" for k, v in loop.items()]
    return "\n".join(rows)


def main(argv=None):
    from benchmarks.peers import save_json

    parser = argparse.ArgumentParser(prog="python -m benchmarks.overhead", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="digits", help="a dataset of benchmarks.peers (default digits)")
    parser.add_argument("--rounds", type=int, default=3, help="search rounds R (N = R x K trials)")
    parser.add_argument("--trainers", type=int, default=2, help="candidates per round K")
    parser.add_argument("--max-epochs", type=int, default=20, help="epochs every trial trains (no early stopping)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", default="baseline,pure_python_protobuf,no_serving_export",
                        help="comma-separated variants, each a cut or cuts joined by +, from " + ", ".join(CUTS))
    parser.add_argument("--workdir", default="runs/bench-overhead")
    parser.add_argument("--out", default="benchmarks/results/overhead.json", help="where the JSON goes")
    parser.add_argument("--markdown", metavar="JSON", help="only print the tables of an earlier result file")
    # Internal: the two timed child processes.
    parser.add_argument("--child", choices=["pipeline", "loop"], help=argparse.SUPPRESS)
    parser.add_argument("--run-dir", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--variant", default="baseline", help=argparse.SUPPRESS)
    parser.add_argument("--child-out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.markdown:
        with open(args.markdown) as f:
            print(markdown(json.load(f)))
        return
    if args.child:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # protobuf's implementation comes from the parent
        result = (pipeline_child if args.child == "pipeline" else loop_child)(args)
        result["finished_after_launch"] = _since_launch()
        with open(args.child_out, "w") as f:
            json.dump(result, f, indent=1)
        if args.child == "pipeline" and "pure_python_protobuf" not in args.variant.split("+"):
            sys.stdout.flush()  # as pipelines.cli.entry ends: upb would crash in the teardown
            sys.stderr.flush()
            os._exit(0)
        return
    results = run(args)
    save_json(results, args.out)
    print(markdown(results))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
