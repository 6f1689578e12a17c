"""Overhead: the same N trials as plain Keras fits in a loop, and through the local TFX pipeline.

Two child processes, each timed from its launch to its exit:
- pipeline: `modelsearch run` (pipelines.cli.main, the real local pipeline: ConcurrentDagRunner, SQLite
  trial store) with `--trials N --trainers 1`, without the exploit phase (no Ensembler or Distiller: they
  would train more models than the loop does). K = 1 by default so that, like the loop, one trial trains
  at a time on all the cores; `--trainers K` shows what K at once does to the wall time.
- loop: the same specs with the same seeds as `blocks.build_model` + `model.fit` on the same splits (as
  numpy), for the same number of epochs (early stopping is off in both: patience = max epochs, so both do
  exactly the same training work).

What the breakdown can see: every node now runs in its own process, forked from a forkserver (a fresh
interpreter that imports TensorFlow and TFX itself, so nothing patched in the CLI's process reaches it),
and every trial in a process forked from its trainer node. The old timers, monkeypatched around the
pipeline's functions in the CLI's process, see none of that, so the pipeline's wall time is now split
from the outside: TFX's ML Metadata times each node's execution (Preprocess), and the trial store times
each trial (`started` when its trainer reserves it, `finished` when its process records it,
`train_seconds` the build, warm start, fit, evaluation and export inside it). The loop's per-trial time
against the pipeline's trial wall is the per-trial overhead. Patches still work in the CLI's own
process, which builds the DAG: they cut the exploit nodes and note when the CLI hands the DAG to the
runner.

`--variants` also runs the pipeline with candidate cuts that can be applied from outside its processes
(environment variables, which the forkserver and every node inherit; see CUTS).

    uv run python -m benchmarks.overhead --out benchmarks/results/overhead.json
"""
from __future__ import annotations

import argparse
import collections
import datetime
import json
import os
import subprocess
import sys
import time

LAUNCH_ENV = "MODELSEARCH_BENCH_LAUNCH"  # the parent's time.time() when it started the child
STUDY = "default"

# Candidate cuts: a variant is one cut or several joined by "+". `no_serving_export` (a monkeypatch of the
# trainers' export) is gone: a patch made in the CLI's process never reaches the nodes.
CUTS = {
    "baseline": "the pipeline as it is: ConcurrentDagRunner (each node a forkserver child, each trial a fork "
                "of its trainer), protobuf's C implementation (upb), and os._exit once the work is written, "
                "as the `modelsearch` console script does (pipelines.cli.entry)",
    "pure_python_protobuf": "as before the protobuf cut: the pure-Python protobuf implementation (inherited "
                            "by the forkserver, every node and every trial) and a normal interpreter exit",
}


def _since_launch() -> float:
    return time.time() - float(os.environ.get(LAUNCH_ENV, time.time()))


# -- the pipeline child --------------------------------------------------------------------------------
def _patch_cli(times: dict) -> None:
    """Patches the CLI's own process (the nodes are out of reach): cut the exploit phase, the search only,
    N trials, no more (the DAG is built here), and note when the CLI hands the DAG to the runner. The cut
    is made right after the CLI starts its forkserver, not before: importing pipelines.pipeline first
    would delay the forkserver's imports, which the CLI overlaps with its own."""
    from pipelines import local_runner, node_server
    start, run = node_server.start, local_runner.run

    def start_then_cut():
        start()
        import pipelines.pipeline
        assert hasattr(pipelines.pipeline, "exploit_nodes"), "create_pipeline changed: update the benchmark"
        pipelines.pipeline.exploit_nodes = lambda *args, **kwargs: []

    def timed_run(*args, **kwargs):
        times["pipeline: CLI calls the runner"] = _since_launch()
        return run(*args, **kwargs)

    node_server.start, local_runner.run = start_then_cut, timed_run


def pipeline_child(args) -> dict:
    times = {"process: interpreter start": _since_launch()}
    _patch_cli(times)
    from pipelines.cli import main

    config = os.path.join(args.run_dir, "search.json")
    os.makedirs(args.run_dir, exist_ok=True)
    with open(config, "w") as f:  # early stopping off: the loop and the pipeline train the same epochs
        json.dump({"max_epochs": args.max_epochs, "patience": args.max_epochs}, f)
    code = main(["run", "--data", args.data, "--label", "label", "--problem-type", "classification",
                 "--output-dir", args.run_dir, "--trials", str(args.trials), "--trainers", str(args.trainers),
                 "--seed", str(args.seed), "--config", config])
    times["pipeline: modelsearch run returned"] = _since_launch()
    if code != 0:
        raise SystemExit(f"modelsearch run exited {code}")
    started = time.perf_counter()
    result = {"times": times, "nodes": _node_times(args.run_dir), "trials": _export_trials(args.run_dir)}
    times["benchmark: export the trials for the loop"] = time.perf_counter() - started
    return result


def _node_times(run_dir: str) -> dict:
    """{node type: [first start, last end]} in seconds since launch, as TFX's ML Metadata recorded them
    (an execution is created when its node's driver starts and updated when its publisher ends)."""
    from ml_metadata import metadata_store
    from tfx.orchestration import metadata

    launched = float(os.environ[LAUNCH_ENV])
    store = metadata_store.MetadataStore(
        metadata.sqlite_metadata_connection_config(os.path.join(run_dir, "tfx_metadata.sqlite")))
    types = {t.id: t.name.rsplit(".", 1)[-1] for t in store.get_execution_types()}
    nodes = {}
    for e in store.get_executions():
        start, end = e.create_time_since_epoch / 1000 - launched, e.last_update_time_since_epoch / 1000 - launched
        first, last = nodes.get(types[e.type_id], (start, end))
        nodes[types[e.type_id]] = [min(first, start), max(last, end)]
    return nodes


def _export_trials(run_dir: str) -> list[dict]:
    """The trials' specs, seeds and timings, and the splits as numpy for the loop (which imports no TFX)."""
    import numpy as np

    from benchmarks.peers import pipeline_splits
    from modelsearch.trialstore import SEARCH, TrialStore

    launched = float(os.environ[LAUNCH_ENV])
    trials = [t for t in TrialStore({"sqlite": os.path.join(run_dir, "trials.sqlite")}).trials(STUDY)
              if t.kind == SEARCH]
    schema, splits = pipeline_splits(run_dir)
    exported = [{"trial_id": t.trial_id, "spec": t.spec, "seed": t.seed, "state": t.state,
                 "num_params": t.num_params, "epochs": t.metrics.get("epochs", -1), "started": t.started - launched,
                 "finished": t.finished - launched, "train_seconds": t.train_seconds, "peak_rss_mb": t.peak_rss_mb}
                for t in trials]
    with open(os.path.join(run_dir, "loop.json"), "w") as f:
        json.dump({"schema": {"input_shape": schema["input_shape"], "task": schema["task"]}, "trials": exported}, f)
    np.savez(os.path.join(run_dir, "splits.npz"), **{f"{s}_{xy}": a for s, (x, y) in splits.items()
                                                      for xy, a in (("x", x), ("y", y))})
    return exported


# -- the loop child ------------------------------------------------------------------------------------
def loop_child(args) -> dict:
    times = collections.Counter({"process: interpreter start": _since_launch()})
    started = time.perf_counter()
    import keras
    import numpy as np
    times["imports: TensorFlow + Keras"] = time.perf_counter() - started
    started = time.perf_counter()
    import blocks
    times["imports: our blocks"] = time.perf_counter() - started

    started = time.perf_counter()
    with open(os.path.join(args.run_dir, "loop.json")) as f:
        plan = json.load(f)
    arrays = np.load(os.path.join(args.run_dir, "splits.npz"))
    split = {s: (arrays[f"{s}_x"], arrays[f"{s}_y"]) for s in ("train", "validation", "test")}
    times["loop: read splits (numpy)"] = time.perf_counter() - started
    task, shape = plan["schema"]["task"], tuple(plan["schema"]["input_shape"])
    results = []
    for trial in plan["trials"]:
        started = time.perf_counter()
        keras.utils.set_random_seed(int(trial["seed"]))
        model = blocks.compile_model(blocks.build_model(trial["spec"], shape, task), trial["spec"], task)
        stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=args.max_epochs, restore_best_weights=True)
        fit_started = time.perf_counter()
        history = model.fit(*split["train"], validation_data=split["validation"], epochs=args.max_epochs,
                            batch_size=int(trial["spec"]["knobs"].get("batch_size", 64)), callbacks=[stop], verbose=0)
        fit = time.perf_counter() - fit_started
        test = model.evaluate(*split["test"], verbose=0, return_dict=True, batch_size=256)
        seconds = time.perf_counter() - started
        results.append({"trial_id": trial["trial_id"], "epochs": len(history.history["loss"]), "seconds": seconds,
                        "fit_seconds": fit, "test_accuracy": float(test.get("accuracy", float("nan"))),
                        "num_params": model.count_params()})
        times["loop: Keras fit"] += fit
        times["loop: trials (build, fit, evaluate)"] += seconds
    return {"times": dict(times), "trials": results}


# -- the parent ------------------------------------------------------------------------------------
def _child(role: str, args, run_dir: str, variant: str = "baseline") -> dict:
    out = os.path.join(run_dir, f"{role}-{variant}.json")
    command = [sys.executable, "-m", "benchmarks.overhead", "--child", role, "--run-dir", run_dir, "--data", args.data,
               "--trials", str(args.trials), "--trainers", str(args.trainers), "--max-epochs", str(args.max_epochs),
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
    """Where the pipeline's wall time goes, as disjoint parts that add up to it, from the timestamps the
    pipeline records itself (TFX's ML Metadata, the trial store). With K > 1 the trials overlap: their rows
    add up over the trainers and "between trials" goes negative by the overlap."""
    t, trials = pipeline["times"], pipeline["trials"]
    preprocess = pipeline["nodes"]["Preprocess"]
    first, last = min(x["started"] for x in trials), max(x["finished"] for x in trials)
    walls = sum(x["finished"] - x["started"] for x in trials)
    train = sum(x["train_seconds"] for x in trials)
    parts = {
        "interpreter start": t["process: interpreter start"],
        "CLI until it calls the runner (its imports of TensorFlow + TFX, schema, config)":
            t["pipeline: CLI calls the runner"] - t["process: interpreter start"],
        "until Preprocess runs (DAG compile, waiting for the forkserver's imports, node launch)":
            preprocess[0] - t["pipeline: CLI calls the runner"],
        "Preprocess (Beam + tf.Transform)": preprocess[1] - preprocess[0],
        "from Preprocess to the first trial (SearchGenerator, node launches, TFX drivers and publishers)":
            first - preprocess[1],
        "trials: train_seconds (TensorFlow's start in the trial's process, build, warm start, fit, evaluate, "
        "save + serving export)": train,
        "trials: the rest of their wall (fork, trial store writes)": walls - train,
        "between trials (the trainer's next decision and reservation)": last - first - walls,
        "after the last trial (trainer node's end, TFX publisher, CLI summary.json)":
            t["pipeline: modelsearch run returned"] - last,
        "interpreter exit": pipeline["wall_s"] - t["pipeline: modelsearch run returned"],
    }
    return [{"part": k, "seconds": v, "share": v / pipeline["wall_s"]} for k, v in parts.items()]


def per_trial(pipeline: dict, loop: dict) -> list[dict]:
    """Each trial's wall in the pipeline (reserved to recorded) against the same trial in the loop."""
    looped = {x["trial_id"]: x for x in loop["trials"]}
    rows = []
    for x in pipeline["trials"]:
        wall, other = x["finished"] - x["started"], looped[x["trial_id"]]
        rows.append({"trial_id": x["trial_id"], "epochs": x["epochs"], "pipeline_wall_s": wall,
                     "pipeline_train_seconds": x["train_seconds"], "peak_rss_mb": x["peak_rss_mb"],
                     "loop_s": other["seconds"], "loop_fit_s": other["fit_seconds"],
                     "overhead_s": wall - other["seconds"]})
    return rows


def run(args) -> dict:
    from benchmarks.report import machine
    from benchmarks.peers import write_csv

    os.makedirs(args.workdir, exist_ok=True)
    args.data = os.path.abspath(os.path.join(args.workdir, f"{args.dataset}.csv"))
    if not os.path.exists(args.data):
        write_csv(args.dataset, args.data)
    results = {"benchmark": "overhead", "date": datetime.date.today().isoformat(), "machine": machine(),
               "runner": "ConcurrentDagRunner", "load_average": os.getloadavg(),
               "settings": {"dataset": args.dataset, "trials": args.trials, "trainers": args.trainers,
                            "max_epochs": args.max_epochs, "seed": args.seed},
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
        trials = per_trial(pipeline, loop)
        results["variants"][variant] = {
            "description": " + ".join(CUTS[c] for c in variant.split("+")), "pipeline_wall_s": pipeline["wall_s"],
            "loop_wall_s": loop["wall_s"], "ratio": pipeline["wall_s"] / loop["wall_s"],
            "overhead_per_trial_s": sum(x["overhead_s"] for x in trials) / len(trials),
            "breakdown": breakdown(pipeline), "per_trial": trials, "pipeline": pipeline, "loop": loop}
        print(f"[overhead] {variant}: pipeline {pipeline['wall_s']:.1f}s, loop {loop['wall_s']:.1f}s, "
              f"ratio {pipeline['wall_s'] / loop['wall_s']:.2f}", file=sys.stderr, flush=True)
    results["load_average_after"] = os.getloadavg()
    return results


def markdown(results: dict) -> str:
    variants = results["variants"]
    rows = ["| variant | pipeline wall s | plain loop wall s | ratio | trials s (pipeline walls / loop) | "
            "all but the trials s (pipeline / loop) | overhead per trial s |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name, v in variants.items():
        trials = (sum(x["pipeline_wall_s"] for x in v["per_trial"]),
                  v["loop"]["times"]["loop: trials (build, fit, evaluate)"])
        rows.append(f"| {name} | {v['pipeline_wall_s']:.1f} | {v['loop_wall_s']:.1f} | {v['ratio']:.2f} | "
                    f"{trials[0]:.1f} / {trials[1]:.1f} | {v['pipeline_wall_s'] - trials[0]:.1f} / "
                    f"{v['loop_wall_s'] - trials[1]:.1f} | {v['overhead_per_trial_s']:.1f} |")
    names = list(variants)
    rows += ["", "| where the pipeline's time goes | " + " | ".join(f"{n} s (share)" for n in names) + " |",
             "|---|" + "---:|" * len(names)]
    for i, part in enumerate(variants[names[0]]["breakdown"]):
        cells = [variants[n]["breakdown"][i] for n in names]
        rows.append(f"| {part['part']} | " + " | ".join(f"{c['seconds']:.1f} ({c['share']:.0%})" for c in cells) + " |")
    rows += ["", f"| trial ({names[0]}) | epochs | pipeline wall s | of which train_seconds | peak RSS MB | "
             "loop s (fit) | overhead s |", "|---:|---:|---:|---:|---:|---:|---:|"]
    rows += [f"| {x['trial_id']} | {x['epochs']:.0f} | {x['pipeline_wall_s']:.1f} | "
             f"{x['pipeline_train_seconds']:.1f} | {x['peak_rss_mb']:.0f} | {x['loop_s']:.1f} "
             f"({x['loop_fit_s']:.1f}) | {x['overhead_s']:.1f} |"
             for x in variants[names[0]]["per_trial"]]
    loop = variants[names[0]]["loop"]["times"]
    rows += ["", "| where the plain loop's time goes | s |", "|---|---:|"]
    rows += [f"| {k} | {v:.1f} |" for k, v in loop.items()]
    return "\n".join(rows)


def main(argv=None):
    from benchmarks.report import save_json

    parser = argparse.ArgumentParser(prog="python -m benchmarks.overhead", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="digits", help="a dataset of benchmarks.peers (default digits)")
    parser.add_argument("--trials", type=int, default=6, help="search trials N, the study's budget (default 6)")
    parser.add_argument("--trainers", type=int, default=1,
                        help="trainers at once K (default 1: one trial at a time, as in the loop)")
    parser.add_argument("--max-epochs", type=int, default=20, help="epochs every trial trains (no early stopping)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", default="baseline,pure_python_protobuf",
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


if __name__ == "__main__":  # the guard matters: every node's process imports this module again (forkserver)
    main()
