"""pipelines/console.py: what reaches the terminal and the log (real processes, real pipes and a pty), and the
progress display on a real trial store."""
import fcntl
import os
import re
import struct
import subprocess
import sys
import termios
import time

import pytest

from modelsearch.trialstore import ABANDONED, DIVERGED, REPLICA, TrialStore
from pipelines.console import ERASE, Progress, time_left

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "PYTHONPATH": ROOT}
SPEC = {"blocks": [{"name": "dense", "params": {"units": 8}}], "head": "avg", "knobs": {}}

NOISE = [  # as TensorFlow, absl and TFX write them (from a real run)
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
    "I0000 00:00:1796166900.577492   15961 port.cc:153] oneDNN custom operations are on.\n",
    "E0000 00:00:1796166916.580055   15961 cuda_platform.cc:52] failed call to cuInit: UNKNOWN ERROR (303)\n",
    "E0000 00:00:1796166916.580055   15961 meta_optimizer.cc:966] tfg_optimizer{} failed: empty op name\n",
    "\twhen importing GraphDef to MLIR module in GrapplerHook\n",
    "2023-11-05 10:00:00.123456: I tensorflow/core/platform/cpu_feature_guard.cc:182] This TensorFlow binary\n",
    "INFO:absl:Running driver for Trainer\n",
    "WARNING:absl:ArtifactQuery.property_predicate is not supported.\n",
    "I1201 12:00:00.123456 140234 launcher.py:42] absl Python's own format\n",
]
FATAL = "F0000 00:00:1796166916.580055   15961 check.cc:12] Check failed: a fatal line says why a process aborted\n"

SCRIPT = """
import os, subprocess, sys, traceback, warnings
from pipelines.console import quiet_stderr

with quiet_stderr(sys.argv[1] == "verbose", sys.argv[2]):
    print("[modelsearch] starting", file=sys.stderr)
    # A child started inside writes to the pipe too, as the forkserver, the nodes and C++ code do.
    subprocess.run([sys.executable, "-c", "import os, sys; os.write(2, sys.argv[1].encode())", sys.argv[4]])
    warnings.warn("shuffle=True was passed, but will be ignored")
    print("[modelsearch] after the warning", file=sys.stderr)
    try:
        {}["missing"]
    except KeyError:
        sys.stderr.write(traceback.format_exc())
        with open(sys.argv[3], "w") as f:
            f.write(traceback.format_exc())
    print("modelsearch: error: no such file", file=sys.stderr)
    sys.stderr.write("[modelsearch] last line, no newline")
os._exit(0)  # as the CLI ends: everything must be through already
"""


def run_quiet(tmp_path, verbose: bool, log: str) -> tuple[str, str, str]:
    """(stderr, log, the traceback) of SCRIPT in a process of its own."""
    script, tb = tmp_path / "script.py", tmp_path / "traceback.txt"
    script.write_text(SCRIPT)
    children = "".join(NOISE[:3]) + FATAL + "".join(NOISE[3:]) + "[modelsearch] between the noise\n"
    result = subprocess.run([sys.executable, str(script), "verbose" if verbose else "quiet", log, str(tb), children],
                            capture_output=True, env=ENV, timeout=60)
    assert result.returncode == 0, result.stderr
    logged = open(log).read() if os.path.exists(log) else ""
    return result.stderr.decode(), logged, tb.read_text()


def test_quiet_stderr_drops_noise_and_logs_everything(tmp_path):
    err, log, tb = run_quiet(tmp_path, False, str(tmp_path / "out" / "modelsearch.log"))
    assert err == ("[modelsearch] starting\n" + FATAL + "[modelsearch] between the noise\n"
                   "[modelsearch] after the warning\n" + tb +  # a bug's traceback passes whole
                   "modelsearch: error: no such file\n[modelsearch] last line, no newline\n")
    verbose_err, verbose_log, _ = run_quiet(tmp_path, True, str(tmp_path / "verbose.log"))
    # Verbose shows every line; the log holds every line either way (after its header line).
    assert log.startswith("--- ") and log.split("\n", 1)[1] == verbose_err == verbose_log.split("\n", 1)[1]
    for line in NOISE:
        assert line in verbose_err
    assert "script.py:9: UserWarning: shuffle=True was passed" in verbose_err
    assert '\n  warnings.warn("shuffle=True was passed' in verbose_err  # its source line, dropped with it
    # A log that cannot be written is skipped; the terminal is the same.
    assert run_quiet(tmp_path, False, "/dev/null/cannot/modelsearch.log")[0] == err


def test_quiet_stderr_logs_a_bug_that_leaves_it(tmp_path):
    code = ("import os, sys, traceback\nfrom pipelines.console import quiet_stderr\n"
            "try:\n    with quiet_stderr(False, sys.argv[1]):\n        raise ValueError('a bug')\n"
            "except ValueError:\n    traceback.print_exc()\n    os._exit(1)\n")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "m.log")], capture_output=True, env=ENV,
                            timeout=60)
    assert result.returncode == 1 and result.stderr.decode().count("ValueError: a bug") == 1
    assert "ValueError: a bug" in (tmp_path / "m.log").read_text()


def reserve(store, number, data_version=None):
    return store.reserve("s", number, 0, SPEC, f"key{number}", data_version=data_version)


def complete(store, trial_id, accuracy):
    store.complete_trial(trial_id, {"val_accuracy": accuracy, "val_loss": 1 - accuracy, "objective": accuracy},
                         num_params=10, num_inherited=0, model_uri="m", train_seconds=1.0)


def test_progress_plain_lines(tmp_path, capfd):
    missing = {"sqlite": str(tmp_path / "none" / "trials.sqlite")}
    Progress(missing, "s", budget=6, trainers=2).update()
    assert not os.path.exists(missing["sqlite"])  # the pipeline creates the store, not the display
    assert capfd.readouterr().err == ""  # nothing to say yet

    config = {"sqlite": str(tmp_path / "trials.sqlite")}
    store = TrialStore(config)
    complete(store, reserve(store, 0), 0.90)  # an earlier run's
    time.sleep(0.01)
    progress = Progress(config, "s", budget=6, trainers=2)
    progress.stage = "searching"
    best = reserve(store, 1)
    complete(store, best, 0.9775)
    store.fail_trial(reserve(store, 2), "ValueError")
    store.fail_trial(reserve(store, 3), "loss is NaN", state=DIVERGED)
    store.fail_trial(reserve(store, 4), "lease expired", state=ABANDONED)  # lost: not done
    running = reserve(store, 5)
    store.record_curve(running, [{"epoch": 1, "loss": 0.9, "val_loss": 0.8, "val_accuracy": 0.7},
                                 {"epoch": 2, "loss": 0.5, "val_loss": 0.4, "val_accuracy": 0.88}])
    replica = store.start_trial("s", SPEC, kind=REPLICA)
    complete(store, replica, 0.99)  # not a search trial: neither done nor the best
    complete(store, reserve(store, 6, data_version=1), 0.999)  # data the study does not train on (yet)

    progress.update(now=progress.started + 45)
    line = ("[modelsearch] progress: searching, 4/6 search trials done (1 from earlier runs), 1 running, "
            f"best val_accuracy 0.9775 (trial {best}), 0:45 elapsed, about 0:00 left\n")
    assert capfd.readouterr().err == line
    assert progress.line(progress.started + 45)[0].endswith(f" | trial {running} epoch 2 val_accuracy 0.8800")
    progress.update(now=progress.started + 60)
    assert capfd.readouterr().err == ""  # nothing new: no line
    progress.update(now=progress.started + 76)
    assert capfd.readouterr().err == line.replace("0:45", "1:16")  # ... but every 30 s while trials run
    complete(store, running, 0.5)
    progress.update(now=progress.started + 77)
    assert "5/6 search trials done (1 from earlier runs), 0 running, best val_accuracy 0.9775" in capfd.readouterr().err

    store.add_data_version("s", 1, "fingerprint", {})  # the study moves on to new data: only its trials count
    progress.update(now=progress.started + 78)
    assert ", 1/6 search trials done, 0 running, best val_accuracy 0.9990 (trial" in capfd.readouterr().err
    pinned = Progress(config, "s", budget=6, trainers=2, data_version=0)
    pinned.update()
    assert "5/6 search trials done (5 from earlier runs)" in capfd.readouterr().err


@pytest.mark.parametrize("to_go, running, left", [
    (2, [20.0], 50.0),   # at 60 s a trial, one of the two 20 s in: (120 - 20) / 2 trainers
    (1, [], 60.0),       # one to go: one trainer works on it
    (4, [90.0], 90.0),   # a trial past the mean counts as just finishing: (240 - 60) / 2
])
def test_time_left(to_go, running, left):
    assert time_left(to_go, 60.0, running, trainers=2) == pytest.approx(left)


TTY_SCRIPT = """
import os, sys, time
from pipelines.console import Progress, quiet_stderr

with quiet_stderr(False, sys.argv[2]):
    progress = Progress({"sqlite": sys.argv[1]}, "s", budget=6, trainers=2, interval=0.05)
    progress.stage = "searching"
    progress.start()
    deadline = time.time() + 30
    while progress.trials is None and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    print("[modelsearch] a line between redraws", file=sys.stderr)
    os.write(2, b"E0000 00:00:1796166916.580055   15961 cuda_platform.cc:52] failed call to cuInit\\n")
    time.sleep(0.2)
    progress.stop()
    print("[modelsearch] after the progress", file=sys.stderr)
os._exit(0)
"""


def test_progress_status_line_on_a_terminal(tmp_path):
    config = {"sqlite": str(tmp_path / "trials.sqlite")}
    store = TrialStore(config)
    first, running = reserve(store, 0), reserve(store, 1)
    complete(store, first, 0.9)
    store.record_curve(running, [{"epoch": 3, "loss": 0.5, "val_loss": 0.31}])  # a regression's curve
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 200, 0, 0))
    process = subprocess.Popen([sys.executable, "-c", TTY_SCRIPT, config["sqlite"], str(tmp_path / "m.log")],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave, env=ENV)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    assert process.wait(timeout=60) == 0
    out = out.replace(b"\r\n", b"\n")  # the terminal's own newline translation
    status = (rb"searching, 1/6 search trials done \(1 from earlier runs\), 1 running, "
              rb"best val_accuracy 0.9000 \(trial %d\), 0:0\d elapsed, about 0:00 left "
              rb"\| trial %d epoch 3 val_loss 0.31"
              % (first, running))
    assert re.search(re.escape(ERASE) + status, out)
    # A passed line clears the status, which comes back under it; the noise never shows; stop() erases it.
    assert re.search(re.escape(ERASE + b"[modelsearch] a line between redraws\n") + status, out)
    assert b"cuInit" not in out and b"cuInit" in (tmp_path / "m.log").read_bytes()
    assert out.endswith(ERASE + b"[modelsearch] after the progress\n")
    assert b"\n" not in out.replace(b"[modelsearch] a line between redraws\n", b"").replace(
        b"[modelsearch] after the progress\n", b"")  # the status line itself is never a new line
