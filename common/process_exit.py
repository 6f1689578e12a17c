"""How our processes end: run a main function, then os._exit once everything is flushed; and with their parent.

protobuf's C implementation (upb) has crashed in the interpreter's teardown after a tf.Transform trace
(ARCHITECTURE.md, "Pitfalls"): a crash there would turn finished work into a failure, so nothing of ours
runs in the teardown.
"""
from __future__ import annotations

import os
import signal
import sys


def run_then_exit(main) -> None:
    """main() -> exit code; SystemExit (argparse's --help and usage errors), Ctrl-C (130) and a bug's
    traceback (1) end the same way."""
    try:
        code = main()
    except SystemExit as e:
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


def die_with_parent() -> None:
    """This process does not outlive its parent (Linux). A trial worker dies with its trainer: a killed
    trainer's trial is reclaimed by its lease, and must not also finish behind the back of the trainer that
    trains it again. A pipeline node dies with the forkserver it was forked from (and with its runner: see
    pipelines/concurrent_dag_runner.py's lifeline, since the forkserver outlives a killed runner while nodes live)."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
