"""The `modelsearch` command line: `run` on your CSV, `demo` on the embedded digits.

Heavy imports (TensorFlow, TFX) happen inside the commands so `--help` stays fast.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

# Before anything imports protobuf: the upb extension segfaults at exit after a TFT trace (DESIGN.md).
os.environ.setdefault("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "python")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from modelsearch.errors import UserError  # noqa: E402  (light: no TensorFlow)

STUDY_FILE = "study.json"


def _search_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output-dir", required=True,
                        help="where the trial store, models and summary.json go; run again to continue the study")
    parser.add_argument("--rounds", type=int, default=3, help="search rounds (default 3)")
    parser.add_argument("--trainers", type=int, default=2, help="candidates trained per round (default 2)")
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
    run = commands.add_parser("run", help="search on your CSV file")
    run.add_argument("--data", required=True, help="CSV file with a header row")
    run.add_argument("--label", required=True, help="the column to predict")
    run.add_argument("--problem-type", choices=["classification", "regression"],
                     help="default: inferred from the label column")
    _search_options(run)
    demo = commands.add_parser("demo", help="search on the embedded digits dataset (no download)")
    _search_options(demo)
    return parser


def _positive(name: str, value: int) -> None:
    if value < 1:
        raise UserError(f"--{name} must be at least 1, got {value}")


def _check_study(output_dir: str, study_info: dict) -> None:
    """A study continues only on the same data and label: anything else needs its own output directory."""
    path = os.path.join(output_dir, STUDY_FILE)
    if os.path.exists(path):
        with open(path) as f:
            recorded = json.load(f)
        for key in ("data", "label"):
            if recorded.get(key) != study_info[key]:
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


def search(args, data_path: str, label: str, problem_type: str | None) -> dict:
    from components.preprocess.schema import infer_schema
    from modelsearch.config import load_config

    _positive("rounds", args.rounds)
    _positive("trainers", args.trainers)
    schema = infer_schema(data_path, label, problem_type)
    config = load_config(args.config, {"strategy": args.strategy, "beam_size": args.beam_size,
                                       "p_deeper": args.p_deeper, "max_epochs": args.max_epochs})
    _apply_push_options(args, config)
    print(f"[modelsearch] loading TensorFlow and TFX ...", file=sys.stderr, flush=True)
    _quiet_logs()
    from modelsearch.space import SearchSpace
    SearchSpace(config, schema["input_shape"])  # unknown or unfit blocks fail here, before any work
    _check_study(args.output_dir, {"study": args.study, "data": os.path.abspath(data_path), "label": label})

    from modelsearch.trialstore import TrialStore
    from pipelines import local_runner
    from pipelines.summary import write_summary

    task = schema["task"]
    print(f"[modelsearch] {task['type']} of {label!r} ({task.get('num_classes', '')} classes) on "
          f"{schema['input_shape']} features: {args.rounds} rounds x {args.trainers} trainers, "
          f"strategy {config.strategy}", file=sys.stderr, flush=True)
    store_config = local_runner.run(
        args.output_dir, data_path, label, args.study, config, args.rounds, args.trainers, seed=args.seed,
        problem_type=problem_type or "", push_destination=args.push_destination or "")
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
            from pipelines.demo_data import DIGITS_LABEL, write_digits_csv
            data = os.path.join(args.output_dir, "data", "digits.csv")
            if not os.path.exists(data):  # unchanged file: a continued demo reuses the cached Preprocess
                write_digits_csv(data)
            search(args, data, DIGITS_LABEL, "classification")
        else:
            search(args, args.data, args.label, args.problem_type)
    except UserError as e:
        print(f"modelsearch: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
