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
from modelsearch.kinds import KINDS  # noqa: E402

DEMO_NAMES = ("digits", "digits-images", "mnist1d")  # pipelines.demo_data.DEMOS, without importing it

STUDY_FILE = "study.json"


def _search_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output-dir", required=True,
                        help="where the trial store, models and summary.json go; run again to continue the study")
    parser.add_argument("--trials", type=int, metavar="N",
                        help="the study's budget of search trials, in all: a rerun on the same --output-dir goes on "
                             "until the study holds N (default 6; config key \"trials\")")
    parser.add_argument("--trainers", type=int, metavar="K",
                        help="trainers at once, each taking the next candidate as soon as it is free (default: one "
                             "per core, at most 4; config key \"trainers\")")
    parser.add_argument("--rounds", type=int, help=argparse.SUPPRESS)  # gone: explained by search()
    parser.add_argument("--seed", type=int, default=0, help="seed for splits, search and training (default 0)")
    parser.add_argument("--config", help="search configuration JSON file (strategy, blocks, knobs, custom_blocks...)")
    parser.add_argument("--strategy", help="search strategy: beam (default) or random")
    parser.add_argument("--beam-size", type=int, help="top-k completed trials kept by beam search (default 3)")
    parser.add_argument("--p-deeper", type=float, help="probability that a mutation adds a block (default 0.5)")
    parser.add_argument("--max-epochs", type=int, help="maximum epochs per trial, early stopping on validation")
    parser.add_argument("--study", default="default", help="study name inside the output directory")
    parser.add_argument("--push-destination", metavar="DIR",
                        help="TF Serving model base directory: the winner is pushed to DIR/<version>/ when it "
                             "beats the last pushed model on the held-out test (local path or gs://; "
                             "demo default: OUTPUT_DIR/serving)")
    parser.add_argument("--push-policy", choices=["best_accuracy", "within_budget"],
                        help="which model to push: the best on validation (default), or the best within --max-params")
    parser.add_argument("--max-params", type=int, metavar="N",
                        help="parameter budget for the pushed model (implies --push-policy within_budget) "
                             "and for the distilled student")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modelsearch", description="Model Search on TFX: find a good neural network for your data.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="search on your data: a CSV file, a folder of images, or TFRecords")
    run.add_argument("--data", required=True,
                     help="a CSV file with a header row; a folder with one sub-folder of PNG / JPEG images per "
                          "class; or TFRecord files of tf.Examples (*.tfrecord[.gz], a file or a folder of them)")
    run.add_argument("--label", help="the column (CSV) or feature (TFRecords) to predict; image folders: "
                                     "their sub-folders are the classes")
    run.add_argument("--problem-type", choices=["classification", "regression"],
                     help="default: inferred from the label column")
    run.add_argument("--input-kind", choices=list(KINDS),
                     help="what the input is (default: inferred): tabular, sequence (steps, features) or image")
    run.add_argument("--input-shape", metavar="SHAPE",
                     help="the shape the features form, e.g. 28,28,1 for pixel columns, 40 or 40,1 for a sequence of "
                          "40 steps; for images, the size every image is resized to (HEIGHT,WIDTH[,CHANNELS])")
    _search_options(run)
    demo = commands.add_parser("demo", help="search on a bundled dataset, made locally (no download)")
    demo.add_argument("--dataset", choices=list(DEMO_NAMES), default="digits",
                      help="digits: the 8x8 digits as a table (default); digits-images: the same digits as PNG "
                           "files in class folders; mnist1d: procedural 1-D digits, sequences of 40 steps")
    _search_options(demo)
    return parser


def _positive(name: str, value: int) -> None:
    if value < 1:
        raise UserError(f"--{name} must be at least 1, got {value}")


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


def _apply_push_options(args, config) -> None:
    """--push-policy / --max-params override the configuration's push (and student) settings."""
    if args.max_params is not None:
        _positive("max-params", args.max_params)
        config.push["max_params"] = config.student["max_params"] = args.max_params
        config.push["policy"] = args.push_policy or "within_budget"
    elif args.push_policy:
        config.push["policy"] = args.push_policy
    config.check("command-line options")
    if args.push_destination and not args.push_destination.startswith("gs://"):
        args.push_destination = os.path.abspath(args.push_destination)
        if os.path.exists(args.push_destination) and not os.path.isdir(args.push_destination):
            raise UserError(f"--push-destination {args.push_destination} is a file; pass a directory "
                            "(TF Serving's model base directory)")


def search(args, data_path: str, label: str | None, problem_type: str | None, input_kind: str | None = None,
           input_shape: str | None = None, defaults: dict | None = None) -> dict:
    """Runs the search. `defaults`: a demo's search settings (the options and --config win)."""
    from components.preprocess.schema import infer_schema
    from modelsearch.config import load_config
    from pipelines import local_runner, node_server

    defaults = defaults or {}
    if args.rounds is not None:
        raise UserError("--rounds is gone: trainers no longer wait for each other in rounds; pass --trials N, the "
                        "study's budget of search trials (e.g. --trials "
                        f"{args.rounds * (args.trainers or 2)} for {args.rounds} rounds of {args.trainers or 2})")
    for name in ("trials", "trainers"):
        if getattr(args, name) is not None:
            _positive(name, getattr(args, name))
    schema = infer_schema(data_path, label, problem_type, input_kind, input_shape)
    label = schema["label"]
    settings = {} if args.config else dict(defaults.get("search", {}))
    config = load_config(args.config, {**settings, **{k: v for k, v in {
        "trials": args.trials, "trainers": args.trainers, "strategy": args.strategy, "beam_size": args.beam_size,
        "p_deeper": args.p_deeper, "max_epochs": args.max_epochs}.items() if v is not None}})
    trainers = config.trainers or local_runner.default_trainers()
    _apply_push_options(args, config)
    node_server.start()  # the pipeline's nodes import TensorFlow and TFX there, while this process goes on
    print(f"[modelsearch] loading TensorFlow and TFX ...", file=sys.stderr, flush=True)
    _quiet_logs()
    from modelsearch.space import SearchSpace
    SearchSpace(config, schema["input_shape"])  # unknown or unfit blocks fail here, before any work
    _check_study(args.output_dir, {"study": args.study, "data": os.path.abspath(data_path), "label": label,
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
        input_kind=input_kind or "", input_shape=input_shape or "")
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
    args = make_parser().parse_args(argv)
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
    """The `modelsearch` console script: main(), then os._exit once everything is written and flushed (the
    interpreter teardown is where upb has crashed; nothing of ours runs there)."""
    try:
        code = main()
    except SystemExit as e:  # argparse: --help (0) and usage errors (2)
        code = e.code if isinstance(e.code, int) else 0 if e.code is None else 1
        if isinstance(e.code, str):
            print(e.code, file=sys.stderr)
    except KeyboardInterrupt:
        code = 130
    except BaseException:  # a bug, not a user mistake: show it, and still exit without the teardown
        import traceback
        traceback.print_exc()
        code = 1
    import logging
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
