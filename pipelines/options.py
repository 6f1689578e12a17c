"""The options that shape the pipeline, defined once for `modelsearch run` / `demo` and the Kubeflow compile.

Both parsers call add_input_options / add_search_options, and both turn the parsed options into the search
configuration with search_config(), so an option cannot exist on one and be missing on the other. Light on
purpose (no TensorFlow, no TFX): `modelsearch --help` stays fast.
"""
from __future__ import annotations

import argparse
import os
import re

from modelsearch.errors import UserError
from modelsearch.kinds import KINDS, check_kind, parse_shape

# What only the local run has: where its state lives (a cluster run has MySQL instead), and its optional
# pipeline root (the compile's is required and checked for the pods).
LOCAL_ONLY = ("--output-dir", "--pipeline-root", "--verbose")
# Cluster-only options of the compile: each trainer pod's resources and retries (config "trainer_pods").
TRAINER_POD_OPTIONS = {"trainer_cpu": "cpu", "trainer_memory": "memory", "trainer_gpus": "gpus",
                       "trainer_gpu_type": "gpu_type", "trainer_retries": "retries"}
URI = re.compile(r"^[a-z][a-z0-9+.-]*://")


def add_input_options(parser: argparse.ArgumentParser, cluster: bool = False) -> None:
    """The data and what it is. `cluster`: paths are read in the pods (gs:// or mounted), not here."""
    parser.add_argument("--data", required=True,
                        help="a CSV file with a header row; a folder with one sub-folder of PNG / JPEG images per "
                             "class; or TFRecord files of tf.Examples (*.tfrecord[.gz], a file or a folder of them)"
                             + ("; a gs:// URI or a path every pod mounts" if cluster else ""))
    parser.add_argument("--label", help="the column (CSV) or feature (TFRecords) to predict; image folders: "
                                        "their sub-folders are the classes")
    parser.add_argument("--problem-type", choices=["classification", "regression"],
                        help="default: inferred from the label column")
    parser.add_argument("--input-kind", choices=list(KINDS),
                        help="what the input is (default: inferred): tabular, sequence (steps, features) or image")
    parser.add_argument("--input-shape", metavar="SHAPE",
                        help="the shape the features form, e.g. 28,28,1 for pixel columns, 40 or 40,1 for a sequence "
                             "of 40 steps; for images, the size every image is resized to (HEIGHT,WIDTH[,CHANNELS])")


def add_search_options(parser: argparse.ArgumentParser, cluster: bool = False) -> None:
    """The search, the push and the Beam arguments."""
    parser.add_argument("--trials", type=int, metavar="N",
                        help="the study's budget of search trials, in all: a rerun of the same study goes on "
                             "until it holds N (default 6; config key \"trials\")")
    parser.add_argument("--trainers", type=int, metavar="K",
                        help=("trainer pods at once (default 2; config key \"trainers\")" if cluster else
                              "trainers at once, each taking the next candidate as soon as it is free (default: "
                              "one per core, at most 4; config key \"trainers\")"))
    parser.add_argument("--time-budget", type=_duration, metavar="DURATION",
                        help="wall-clock budget of this run's search: seconds, or 90s, 30m, 2h; once spent no "
                             "trainer starts a trial, a training one stops after its epoch, and the run goes on to "
                             "the ensemble, student and push (default: none; config key \"time_budget\")")
    parser.add_argument("--rounds", type=int, help=argparse.SUPPRESS)  # gone: explained by search_config()
    parser.add_argument("--seed", type=int, default=0, help="seed for splits, search and training (default 0)")
    parser.add_argument("--config", help="search configuration JSON file (strategy, blocks, knobs, custom_blocks...)")
    parser.add_argument("--strategy", help="search strategy: beam (default) or random")
    parser.add_argument("--beam-size", type=int, help="top-k completed trials kept by beam search (default 3)")
    parser.add_argument("--p-deeper", type=float, help="probability that a mutation adds a block (default 0.5)")
    parser.add_argument("--max-epochs", type=int, help="maximum epochs per trial, early stopping on validation")
    parser.add_argument("--study", default="default", help="the study's name in the trial store")
    parser.add_argument("--push-destination", metavar="DIR",
                        help="TF Serving model base directory: the winner is pushed to DIR/<version>/ when it "
                             "beats the last pushed model on this run's validation split (local path or gs://"
                             + ("" if cluster else "; demo default: OUTPUT_DIR/serving") + ")")
    parser.add_argument("--push-policy", choices=["best_accuracy", "within_budget"],
                        help="which model to push: the best on validation (default), or the best within --max-params")
    parser.add_argument("--max-params", type=int, metavar="N",
                        help="parameter budget for the pushed model (implies --push-policy within_budget) "
                             "and for the distilled student")
    parser.add_argument("--beam-arg", dest="beam_args", action="append", default=[], metavar="ARG",
                        help="an Apache Beam pipeline option for the preprocessing (and TFX's ImportExampleGen), "
                             "once per option, e.g. --beam-arg --runner=DataflowRunner --beam-arg --project=P "
                             "(default: Beam's in-process runner)")


def add_trainer_pod_options(parser: argparse.ArgumentParser) -> None:
    """Each trainer pod's resources and retries (cluster only; config section "trainer_pods")."""
    parser.add_argument("--trainer-cpu", metavar="CPU",
                        help="CPUs of each trainer pod, a Kubernetes quantity (4, 500m); also its TensorFlow threads")
    parser.add_argument("--trainer-memory", metavar="MEMORY", help="memory of each trainer pod, e.g. 16Gi")
    parser.add_argument("--trainer-gpus", type=_count, metavar="N", help="GPUs of each trainer pod (default 0)")
    parser.add_argument("--trainer-gpu-type", metavar="TYPE",
                        help="the accelerator: nvidia.com/gpu on Kubernetes (default), e.g. NVIDIA_TESLA_T4 on Vertex AI")
    parser.add_argument("--trainer-retries", type=_count, metavar="N",
                        help="times a failed trainer pod is started again; it carries on from the trial store "
                             "(default 2)")


def _duration(text: str) -> float:
    from modelsearch.config import parse_duration  # light: no TensorFlow
    try:
        return parse_duration(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _count(text: str) -> int | None:
    """A whole number >= 0; "" (an unset setting in a shell script) is unset."""
    if text == "":
        return None
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return value


def join_beam_args(argv: list[str]) -> list[str]:
    """`--beam-arg --runner=X` -> `--beam-arg=--runner=X`: argparse takes a value that starts with "--" for an
    option of its own, and Beam's options all do."""
    out, i = [], 0
    while i < len(argv):
        if argv[i] == "--beam-arg" and i + 1 < len(argv):
            out.append(f"--beam-arg={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


def _positive(name: str, value: int) -> None:
    if value < 1:
        raise UserError(f"--{name} must be at least 1, got {value}")


def search_config(args, defaults: dict | None = None):
    """The SearchConfig of the parsed options: --config (else `defaults`, a demo's settings), then the options,
    then the push options; checked."""
    from modelsearch.config import load_config

    if args.rounds is not None:
        raise UserError("--rounds is gone: trainers no longer wait for each other in rounds; pass --trials N, the "
                        "study's budget of search trials (e.g. --trials "
                        f"{args.rounds * (args.trainers or 2)} for {args.rounds} rounds of {args.trainers or 2})")
    for name in ("trials", "trainers"):
        if getattr(args, name) is not None:
            _positive(name, getattr(args, name))
    settings = {} if args.config else dict(defaults or {})
    config = load_config(args.config, {**settings, **{k: v for k, v in {
        "trials": args.trials, "trainers": args.trainers, "strategy": args.strategy, "beam_size": args.beam_size,
        "p_deeper": args.p_deeper, "max_epochs": args.max_epochs,
        "time_budget": args.time_budget}.items() if v is not None}})
    pods = {key: getattr(args, name) for name, key in TRAINER_POD_OPTIONS.items()
            if getattr(args, name, None) not in (None, "")}
    config.trainer_pods.update(pods)
    if args.max_params is not None:
        _positive("max-params", args.max_params)
        config.push["max_params"] = config.student["max_params"] = args.max_params
        config.push["policy"] = args.push_policy or "within_budget"
    elif args.push_policy:
        config.push["policy"] = args.push_policy
    config.check("command-line options")
    return config


def check_input_options(args) -> None:
    """What can be checked without reading the data (the compile cannot: the data is read in the pods)."""
    check_kind(args.input_kind)
    parse_shape(args.input_shape)


def local_push_destination(path: str | None) -> str:
    """A local run's push destination: absolute (or gs://), and a directory if it exists."""
    if not path or URI.match(path):
        return path or ""
    path = os.path.abspath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise UserError(f"--push-destination {path} is a file; pass a directory (TF Serving's model base directory)")
    return path


def cluster_path(option: str, path: str) -> str:
    """A path every pod reaches: a URI (gs://...) or an absolute path that every pod mounts."""
    if not (URI.match(path) or os.path.isabs(path)):
        raise UserError(f"{option} {path!r} must be a gs:// URI or an absolute path that every pod mounts")
    return path
