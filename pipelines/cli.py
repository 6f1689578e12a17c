"""The `modelsearch` command line: `run` on your data (CSV, image folder, TFRecords), `demo` on a bundled set.

Heavy imports (TensorFlow, TFX) happen inside the commands so `--help` stays fast.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import tempfile
import time

# protobuf: the console script keeps its fast C implementation, upb (the pure-Python one, once our workaround,
# cost about a fifth of a run: BENCHMARKS.md, "Overhead"). upb has segfaulted in the interpreter's teardown
# after a tf.Transform trace (ARCHITECTURE.md, "Pitfalls"; not reproduced with protobuf 6.33.6), so entry() ends
# the process with os._exit once everything is written: nothing of ours runs in the teardown.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from modelsearch.errors import UserError  # noqa: E402  (light: no TensorFlow)
from pipelines import console, options, trial_commands  # noqa: E402  (light too)

DEMO_NAMES = ("digits", "digits-images", "mnist1d")  # pipelines.demo_data.DEMOS, without importing it

STUDY_FILE = "study.json"
LOG_FILE = "modelsearch.log"  # every line of every run, TensorFlow's noise included


def _output_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output-dir", required=True,
                        help="where the trial store, models and summary.json go; run again to continue the study")
    parser.add_argument("--verbose", action="store_true",
                        help="also show TensorFlow's, absl's and Python's logs and warnings (always kept in "
                             "OUTPUT_DIR/modelsearch.log)")
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
    trial_commands.add_commands(commands)  # trials, show, report: what a study holds, for people
    return parser


def check_output_dir(output_dir: str) -> None:
    """The output directory is a writable directory, or can be made as one: checked before any work, and
    without making it (a run refused for bad input leaves nothing behind)."""
    path = os.path.abspath(output_dir)
    if os.path.exists(path) and not os.path.isdir(path):
        raise UserError(f"--output-dir {output_dir} is a file; pass a directory (it holds the trial store and "
                        "the summary)")
    existing = path
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise UserError(f"--output-dir {output_dir} cannot be made: {existing} is a file; pass a directory")
    try:  # os.access trusts the mode bits, which root passes anywhere (even in /proc): make and remove a folder
        os.rmdir(tempfile.mkdtemp(prefix=".modelsearch-check-", dir=existing))
    except OSError as e:
        raise UserError(f"--output-dir {output_dir} is not writable ({existing}: {e.strerror}); pass a directory "
                        "you can write") from None


RESUME = "run the same command again to resume"
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143  # the shell's codes for Ctrl-C and SIGTERM (128 + signal number)


class Terminated(KeyboardInterrupt):
    """SIGTERM: stops the run as Ctrl-C does (every trial recorded, the lock released), then exits 143."""


def _terminate(signum, frame):
    raise Terminated()


@contextlib.contextmanager
def study_lock(store, study: str, command: str):
    """Holds the study's lock for the run (modelsearch/trialstore.py, acquire_lock), renewed by a thread with
    its own connection (an MLMD store is not shared across threads), released at the end, even on Ctrl-C."""
    import threading

    from modelsearch.trialstore import LOCK_SECONDS, TrialStore

    store_config = store.config
    lock_id = store.acquire_lock(study, command)
    stop = threading.Event()

    def renew():
        store = TrialStore(store_config)
        while not stop.wait(LOCK_SECONDS / 4):
            store.renew_lock(lock_id)

    renewer = threading.Thread(target=renew, name="study-lock", daemon=True)
    renewer.start()
    try:
        yield lock_id
    finally:
        stop.set()
        renewer.join()
        store.release_lock(lock_id)


def search(args, data_path: str, label: str | None, problem_type: str | None, input_kind: str | None = None,
           input_shape: str | None = None, defaults: dict | None = None) -> dict:
    """Runs the search. `defaults`: a demo's search settings (the options and --config win)."""
    from components.preprocess.schema import infer_schema
    from pipelines import local_runner, node_server

    defaults = defaults or {}
    check_output_dir(args.output_dir)
    # First: the pipeline's nodes import TensorFlow and TFX there while this process reads the configuration
    # and the data (through tf.io.gfile, so it imports TensorFlow too).
    node_server.start()
    print(f"[modelsearch] loading TensorFlow and TFX ...", file=sys.stderr, flush=True)
    config = options.search_config(args, defaults.get("search"))
    print(f"[modelsearch] reading {data_path} ...", file=sys.stderr, flush=True)
    schema = infer_schema(data_path, label, problem_type, input_kind, input_shape)
    label = schema["label"]
    for note in schema.get("notes", []):
        print(f"[modelsearch] {note}", file=sys.stderr, flush=True)
    trainers = config.trainers or local_runner.default_trainers()
    args.push_destination = options.local_push_destination(args.push_destination)
    _quiet_logs()
    from modelsearch.space import SearchSpace
    SearchSpace(config, schema["input_shape"])  # unknown or unfit blocks fail here, before any work

    from modelsearch.trialstore import open_store
    # A damaged trial store is refused before anything is written beside it.
    store = open_store(local_runner.paths(args.output_dir)["trial_store"])
    console.open_log(os.path.join(args.output_dir, LOG_FILE))  # the input is good: the output dir is wanted
    progress = console.Progress(store.config, args.study, config.trials, trainers)
    progress.stage = "starting"
    progress.start(since=getattr(args, "started", None))
    try:
        summary = _search_locked(args, store, data_path, label, problem_type, input_kind, input_shape, config,
                                 schema, trainers, progress)
    finally:
        progress.stop()  # before the last lines, which a status line must not cut
    _report(summary, args.output_dir)
    if not summary["trials_completed"]:
        raise NothingCompleted(_why_nothing(store, args.study, args.output_dir))
    return summary


def _search_locked(args, store, data_path, label, problem_type, input_kind, input_shape, config, schema, trainers,
                   progress) -> dict:
    """The search while holding the study's lock: leftovers closed, the data checked and versioned, the pipeline
    run; a stop (Ctrl-C, SIGTERM) records the running trials as interrupted and says how to resume."""
    from modelsearch import data_versions
    from pipelines import local_runner
    from pipelines.summary import write_json_atomically, write_summary

    with study_lock(store, args.study, " ".join(["modelsearch", *sys.argv[1:]])):
        data_versions.check(store, args.study, schema)  # a changed schema is refused before anything runs
        left = store.interrupt_running(args.study, "interrupted: the run that trained it ended (killed or "
                                                   "stopped) before the trial finished")
        if left:
            print(f"[modelsearch] closed trials {left}, left running by an earlier run that ended; their "
                  "candidates may be tried again", file=sys.stderr, flush=True)
        fingerprint = data_versions.fingerprint(data_path)
        write_json_atomically(os.path.join(args.output_dir, STUDY_FILE), {
            "study": args.study, "data": local_runner.absolute(data_path), "label": label,
            "input_shape": schema["input_shape"], "data_fingerprint": fingerprint,
            "signature": data_versions.signature(schema)})
        task = schema["task"]
        if schema.get("ignored_features"):
            print(f"[modelsearch] ignoring features {', '.join(schema['ignored_features'])} (the input is "
                  f"{schema['columns'][0]['name']!r})", file=sys.stderr)
        print(f"[modelsearch] {task['type']} of {label!r} ({task.get('num_classes', '')} classes) on "
              f"{schema['kind']} inputs of shape {schema['input_shape']}: a budget of {config.trials} search trials, "
              f"{trainers} trainer{'s' if trainers > 1 else ''} at once, strategy {config.strategy}", file=sys.stderr, flush=True)
        try:
            local_runner.run(
                args.output_dir, data_path, label, args.study, config, config.trials, trainers, seed=args.seed,
                problem_type=problem_type or "", push_destination=args.push_destination or "",
                input_kind=input_kind or "", input_shape=input_shape or "", beam_pipeline_args=args.beam_args,
                pipeline_root=args.pipeline_root or "", data_fingerprint=fingerprint, trial_store=store.config,
                on_node_start=lambda node: setattr(progress, "stage", console.node_stage(node)))
        except KeyboardInterrupt as e:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the bookkeeping short
            stopped = store.interrupt_running(args.study, "interrupted: the run was stopped (Ctrl-C or SIGTERM) "
                                                          "while the trial trained")
            write_summary(store, args.study, args.output_dir)
            print(f"[modelsearch] stopped" + (f"; trials {stopped} recorded as interrupted" if stopped else "")
                  + f"; every finished trial is kept: {RESUME}", file=sys.stderr, flush=True)
            e.reported = True
            raise
        pushed_to = local_runner.last_push(args.output_dir) if args.push_destination else None
        return write_summary(store, args.study, args.output_dir, pushed_to, args.push_destination or "")


class NothingCompleted(UserError):
    """No search trial completed: the run has no model to show (exit 1)."""
    exit_code = 1


def _why_nothing(store, study: str, output_dir: str) -> str:
    from modelsearch.trialstore import SEARCH
    ended = [t for t in store.current_trials(study) if t.kind == SEARCH and t.error]
    last = ended[-1].error.strip().splitlines()[-1] if ended else "no trial ran"
    deadline = store.deadline(study)
    spent = ("; the search's time budget ran out first: raise --time-budget (config key time_budget)"
             if deadline is not None and time.time() >= deadline else "")
    return (f"no search trial completed ({len(ended)} ended without a model; the last: {last}){spent}; see "
            f"`modelsearch trials --output-dir {output_dir}`")


def _report(summary: dict, output_dir: str) -> None:
    """The run's last lines: counts, the best trial, the ensemble and student, the push."""
    best = summary["best"]
    lost = {k: summary[f"trials_{k}"] for k in ("stopped", "diverged", "interrupted", "abandoned")
            if summary[f"trials_{k}"]}
    print(f"[modelsearch] {summary['trials_completed']} trials completed, {summary['trials_failed']} failed"
          + "".join(f", {n} {k}" for k, n in lost.items())
          + f"; summary in {os.path.join(output_dir, 'summary.json')}", file=sys.stderr)
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


def _quiet_logs() -> None:
    import logging

    import absl.logging
    absl.logging.set_verbosity(absl.logging.ERROR)
    logging.getLogger("apache_beam").setLevel(logging.ERROR)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)


def main(argv: list[str] | None = None) -> int:
    previous = signal.signal(signal.SIGTERM, _terminate)  # SIGTERM stops a run as Ctrl-C does (then exit 143)
    try:
        return _main(argv)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _main(argv: list[str] | None) -> int:
    started = time.time()
    args = make_parser().parse_args(options.join_beam_args(sys.argv[1:] if argv is None else argv))
    if args.command in trial_commands.COMMANDS:
        return _guarded(args)
    args.started = started
    with console.quiet_stderr(args.verbose, None):  # the log opens once the run is under way (search())
        return _guarded(args)


def _guarded(args) -> int:
    """Runs the command; a user mistake, a stop or the machine's refusal ends it with one line and its code."""
    if args.command == "demo" and not args.push_destination:  # the demo goes all the way to serving
        args.push_destination = os.path.join(args.output_dir, "serving")
    try:
        if args.command in trial_commands.COMMANDS:
            return trial_commands.run(args)
        check_output_dir(args.output_dir)
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
        return getattr(e, "exit_code", 2)
    except KeyboardInterrupt as e:
        if not getattr(e, "reported", False):
            print(f"[modelsearch] stopped before the search began; {RESUME}", file=sys.stderr, flush=True)
        return EXIT_TERMINATED if isinstance(e, Terminated) else EXIT_INTERRUPTED
    except BrokenPipeError:  # `modelsearch trials ... | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush cannot fail again
        return 141
    except OSError as e:  # the machine's refusal (disk full, permissions): one line, not a traceback
        print(f"modelsearch: error: {e.strerror or e}" + (f": {e.filename}" if e.filename else ""), file=sys.stderr)
        return 2
    return 0


def entry() -> None:
    """The `modelsearch` console script: main(), then os._exit once everything is written and flushed."""
    from common.process_exit import run_then_exit
    run_then_exit(main)


if __name__ == "__main__":
    entry()
