"""The `modelsearch` command line: `run` on your data (CSV, image folder, TFRecords), `demo` on a bundled set.

Heavy imports (TensorFlow, TFX) happen inside the commands so `--help` stays fast.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

# protobuf: the console script keeps its fast C implementation, upb (the pure-Python one, once our workaround,
# cost about a fifth of a run: BENCHMARKS.md, "Overhead"). upb has segfaulted in the interpreter's teardown
# after a tf.Transform trace (ARCHITECTURE.md, "Pitfalls"; not reproduced with protobuf 6.33.6), so entry() ends
# the process with os._exit once everything is written: nothing of ours runs in the teardown.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from modelsearch.errors import UserError  # noqa: E402  (light: no TensorFlow)
from pipelines import options  # noqa: E402  (light too)

DEMO_NAMES = ("digits", "digits-images", "mnist1d")  # pipelines.demo_data.DEMOS, without importing it

STUDY_FILE = "study.json"


def _output_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output-dir", required=True,
                        help="where the trial store, models and summary.json go; run again to continue the study")
    parser.add_argument("--pipeline-root", metavar="DIR",
                        help="where the pipeline's artifacts go (transformed data, models): a local folder or "
                             "gs://bucket/path (default OUTPUT_DIR/pipeline); the trial store stays in --output-dir")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modelsearch", description="Model Search on TFX: find a good neural network for your data.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="search on your data: a CSV file, a folder of images, or TFRecords")
    # The pipeline-shaping options are pipelines/options.py's, shared with the Kubeflow compile.
    options.add_input_options(run)
    _output_dir(run)
    options.add_search_options(run)
    demo = commands.add_parser("demo", help="search on a bundled dataset, made locally (no download)")
    demo.add_argument("--dataset", choices=list(DEMO_NAMES), default="digits",
                      help="digits: the 8x8 digits as a table (default); digits-images: the same digits as PNG "
                           "files in class folders; mnist1d: procedural 1-D digits, sequences of 40 steps")
    _output_dir(demo)
    options.add_search_options(demo)
    return parser


def _check_study(output_dir: str, study_info: dict) -> None:
    """A study continues only on the same data, label and input shape: anything else needs its own output
    directory."""
    path = os.path.join(output_dir, STUDY_FILE)
    if os.path.exists(path):
        with open(path) as f:
            recorded = json.load(f)
        for key in ("data", "label", "input_shape"):
            if key in recorded and recorded[key] != study_info[key]:
                raise UserError(f"{output_dir} holds a study on {key} {recorded.get(key)!r}, not "
                                f"{study_info[key]!r}; pass another --output-dir to start a new study")
    os.makedirs(output_dir, exist_ok=True)
    with open(path, "w") as f:
        json.dump(study_info, f, indent=1)


def search(args, data_path: str, label: str | None, problem_type: str | None, input_kind: str | None = None,
           input_shape: str | None = None, defaults: dict | None = None) -> dict:
    """Runs the search. `defaults`: a demo's search settings (the options and --config win)."""
    from components.preprocess.schema import infer_schema
    from pipelines import local_runner, node_server

    defaults = defaults or {}
    # First: the pipeline's nodes import TensorFlow and TFX there while this process reads the configuration
    # and the data (through tf.io.gfile, so it imports TensorFlow too).
    node_server.start()
    print(f"[modelsearch] loading TensorFlow and TFX ...", file=sys.stderr, flush=True)
    config = options.search_config(args, defaults.get("search"))
    schema = infer_schema(data_path, label, problem_type, input_kind, input_shape)
    label = schema["label"]
    trainers = config.trainers or local_runner.default_trainers()
    args.push_destination = options.local_push_destination(args.push_destination)
    _quiet_logs()
    from modelsearch.space import SearchSpace
    SearchSpace(config, schema["input_shape"])  # unknown or unfit blocks fail here, before any work
    _check_study(args.output_dir, {"study": args.study, "data": local_runner.absolute(data_path), "label": label,
                                   "input_shape": schema["input_shape"]})

    from modelsearch.trialstore import TrialStore
    from pipelines.summary import write_summary

    task = schema["task"]
    if schema.get("ignored_features"):
        print(f"[modelsearch] ignoring features {', '.join(schema['ignored_features'])} (the input is "
              f"{schema['columns'][0]['name']!r})", file=sys.stderr)
    print(f"[modelsearch] {task['type']} of {label!r} ({task.get('num_classes', '')} classes) on "
          f"{schema['kind']} inputs of shape {schema['input_shape']}: a budget of {config.trials} search trials, "
          f"{trainers} trainer{'s' if trainers > 1 else ''} at once, strategy {config.strategy}", file=sys.stderr, flush=True)
    store_config = local_runner.run(
        args.output_dir, data_path, label, args.study, config, config.trials, trainers, seed=args.seed,
        problem_type=problem_type or "", push_destination=args.push_destination or "",
        input_kind=input_kind or "", input_shape=input_shape or "", beam_pipeline_args=args.beam_args,
        pipeline_root=args.pipeline_root or "")
    pushed_to = local_runner.last_push(args.output_dir) if args.push_destination else None
    summary = write_summary(TrialStore(store_config), args.study, args.output_dir, pushed_to,
                            args.push_destination or "")
    best = summary["best"]
    print(f"[modelsearch] {summary['trials_completed']} trials completed, {summary['trials_failed']} failed; "
          f"summary in {os.path.join(args.output_dir, 'summary.json')}", file=sys.stderr)
    if best:
        shown = {k: round(v, 4) for k, v in best["metrics"].items() if k.startswith(("test_", "val_"))}
        print(f"[modelsearch] best: trial {best['trial_id']} {shown} params={best['num_params']:,} "
              f"saved model {best['saved_model']}", file=sys.stderr)
    for name in ("ensemble", "student"):
        if summary[name]:
            shown = {k: round(v, 4) for k, v in summary[name]["metrics"].items() if k.startswith("test_")}
            print(f"[modelsearch] {name}: trial {summary[name]['trial_id']} {shown} "
                  f"params={summary[name]['num_params']:,}", file=sys.stderr)
    push = summary["push"]
    print(f"[modelsearch] push: {'pushed to ' + push['version_path'] if push['pushed'] else 'not pushed'} "
          f"({push['reason']})", file=sys.stderr)
    return summary


def _quiet_logs() -> None:
    import logging

    import absl.logging
    absl.logging.set_verbosity(absl.logging.ERROR)
    logging.getLogger("apache_beam").setLevel(logging.ERROR)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(options.join_beam_args(sys.argv[1:] if argv is None else argv))
    if args.command == "demo" and not args.push_destination:  # the demo goes all the way to serving
        args.push_destination = os.path.join(args.output_dir, "serving")
    try:
        if args.command == "demo":
            from pipelines.demo_data import DEMOS, write_demo
            demo = DEMOS[args.dataset]
            data = write_demo(args.dataset, os.path.join(args.output_dir, "data"))
            search(args, data, demo["label"], "classification", demo.get("input_kind"), demo.get("input_shape"),
                   defaults=demo)
        else:
            search(args, args.data, args.label, args.problem_type, args.input_kind, args.input_shape)
    except UserError as e:
        print(f"modelsearch: error: {e}", file=sys.stderr)
        return 2
    return 0


def entry() -> None:
    """The `modelsearch` console script: main(), then os._exit once everything is written and flushed."""
    from common.process_exit import run_then_exit
    run_then_exit(main)


if __name__ == "__main__":
    entry()
