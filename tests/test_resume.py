"""A study survives kills: the console script is killed (SIGKILL) in preprocessing, mid-trial and in the Distiller,
stopped by SIGTERM mid-trial and by Ctrl-C in the Ensembler, rerun each time, and the final store must hold what a
clean run leaves: the budget of search trials, no duplicate, no trial left running, the exploit stages done once.
A second run on a study whose lock a live process holds is refused, and the holder keeps the lock."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from modelsearch.trialstore import (COMPLETED, ENSEMBLE, INTERRUPTED, LOST, REPLICA, RUNNING, SEARCH, STUDENT,
                                    StudyLocked, TrialStore)
from tests.test_pipeline_e2e import write_tiny_csv

BUDGET = 4
SCRIPT = os.path.join(os.path.dirname(sys.executable), "modelsearch")


def _start(data, out, config, log):
    env = {k: v for k, v in os.environ.items() if k != "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION"}
    return subprocess.Popen([SCRIPT, "run", "--data", str(data), "--label", "kind", "--output-dir", str(out),
                             "--config", str(config), "--trials", str(BUDGET), "--trainers", "2"],
                            stdout=subprocess.DEVNULL, stderr=open(log, "w"), env=env, start_new_session=True,
                            preexec_fn=_ctrl_c_as_in_a_terminal)


def _ctrl_c_as_in_a_terminal():
    """The run starts with SIGINT's default action, as a terminal's foreground command does. A test suite
    started in the background by a script (`pytest &`) has SIGINT ignored, as POSIX shells do for background
    jobs; the run would inherit that and rightly ignore the Ctrl-C stage's SIGINT, which then tests nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _trials(out):
    path = os.path.join(out, "trials.sqlite")
    return TrialStore({"sqlite": path}).trials("default") if os.path.exists(path) else []


def _wait_for(process, condition, what, timeout=600):
    """Polls until `condition(trials)` holds for the trials this run wrote; fails if the run ends first, saying
    what it saw. A read that fails (tables being created) gives no trials, so conditions on the run's log are
    still asked."""
    deadline, store, problem, seen = time.time() + timeout, None, None, set()
    while time.time() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the run ended (exit {process.returncode}) before {what} (last read: {problem!r}; "
                        f"seen {sorted(seen)[:40]})")
        trials = []
        try:
            path = os.path.join(process.out, "trials.sqlite")
            store = store or (TrialStore({"sqlite": path}) if os.path.exists(path) else None)
            # This run's trials: those not in the store before it (by id and start: MLMD may reuse a deleted id).
            trials = [t for t in (store.trials("default") if store else [])
                      if (t.trial_id, t.started) not in process.before]
        except Exception as e:
            store, problem = None, e
        seen |= {(t.trial_id, t.kind, t.state, bool(t.curve)) for t in trials}
        if condition(trials):
            return
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def _running(kind, with_epochs=False):
    return lambda trials: any(t.kind == kind and t.state == RUNNING and (t.curve or not with_epochs)
                              for t in trials)


def _log_has(log, text):
    return lambda trials: text in open(log).read()


def _stop(process, how, log):
    """Stops the run: SIGKILL (nothing of it may write afterwards), SIGTERM to the command, or SIGINT to its
    whole process group as Ctrl-C in a terminal sends it; returns the exit code."""
    if how == "int":
        os.killpg(process.pid, signal.SIGINT)
    else:
        process.send_signal(signal.SIGKILL if how == "kill" else signal.SIGTERM)
    code = process.wait(timeout=120)
    if how == "kill":
        time.sleep(1)  # the run's nodes and workers die with it (the forkserver ends, then they do)
    else:
        text = open(log).read()
        assert "run the same command again to resume" in text, text[-3000:]
        assert "Traceback" not in text, text[-3000:]
    return code


def _check_final(out):
    trials = _trials(out)
    assert not [t.trial_id for t in trials if t.state == RUNNING]
    kept = [t for t in trials if t.kind == SEARCH and t.state not in LOST]
    assert len(kept) == BUDGET and all(t.state == COMPLETED for t in kept), [(t.trial_id, t.state) for t in kept]
    specs = [json.dumps(t.spec, sort_keys=True) for t in kept if not t.mutation.startswith("reevaluate:")]
    assert len(specs) == len(set(specs)), "a candidate was trained twice"
    for kind, count in ((REPLICA, 1), (ENSEMBLE, 1)):
        assert sum(t.kind == kind and t.state == COMPLETED for t in trials) == count, kind
    # Students tried (smallest first, until one is near enough), each once however often the Distiller was
    # killed, and one of them kept.
    students = [(t.parent_id, t.mutation) for t in trials if t.kind == STUDENT and t.state == COMPLETED]
    assert students and len(students) == len(set(students)), students
    kept = json.loads((out / "summary.json").read_text())["student"]
    assert kept and kept["trial_id"] in {t.trial_id for t in trials if t.kind == STUDENT and t.state == COMPLETED}
    for t in trials:
        if t.state in LOST:
            assert t.state == INTERRUPTED and "interrupted" in t.error, (t.trial_id, t.state, t.error)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["trials_completed"] == BUDGET and summary["trials_running"] == 0
    return trials


def _check_refused_while_held(data, out, config):
    """A second run on a study whose lock another live process holds (here this test, so that the holder cannot
    finish meanwhile: a refused run takes longer to start than a tiny search takes) is refused with a clear
    error, and the holder keeps its lock."""
    store = TrialStore({"sqlite": os.path.join(out, "trials.sqlite")})
    lock = store.acquire_lock("default", "the test's stand-in for a running search")
    second = subprocess.run([SCRIPT, "run", "--data", str(data), "--label", "kind", "--output-dir", str(out),
                             "--config", str(config)], capture_output=True, text=True, timeout=300)
    assert second.returncode == 2, second.stderr[-3000:]
    assert "is being searched by another run" in second.stderr and "Traceback" not in second.stderr
    with pytest.raises(StudyLocked):
        store.acquire_lock("default")
    store.release_lock(lock)


@pytest.mark.slow
def test_kills_at_every_stage_then_resume_to_what_a_clean_run_leaves(tmp_path):
    data, config = tmp_path / "tiny.csv", tmp_path / "search.json"
    write_tiny_csv(data)
    # Long enough trials (30 epochs of single examples, hidden blocks) that a poll sees one mid-training; one
    # replica keeps the Ensembler short.
    # The median rule off: which trials it stops depends on when others completed, which kills change.
    config.write_text(json.dumps({"max_epochs": 30, "patience": 30, "ensemble": {"replicas": 1},
                                  "blocks": ["dense", "residual_dense"], "knobs": {"batch_size": [1]},
                                  "early_stopping": {"rule": "none"}}))

    # One study stopped at every stage and rerun each time (between the first two, a second run on a study being
    # searched is refused); then a last run, which must leave what a clean run leaves.
    out = tmp_path / "killed"
    points = [  # (what the run has reached, how it is stopped, the exit code expected)
        ("preprocessing", lambda log: _log_has(log, "a budget of"), "kill", -signal.SIGKILL),
        ("mid-trial", lambda log: _running(SEARCH, with_epochs=True), "kill", -signal.SIGKILL),
        ("mid-trial", lambda log: _running(SEARCH, with_epochs=True), "term", 143),
        ("the Ensembler's replica", lambda log: _running(REPLICA), "int", 130),
        ("the Distiller's student", lambda log: _running(STUDENT), "kill", -signal.SIGKILL),
    ]
    for i, (where, condition, how, expected) in enumerate(points):
        log = tmp_path / f"run{i}.log"
        before = {(t.trial_id, t.started) for t in _trials(out)}
        process = _start(data, out, config, log)
        process.out, process.before = out, before
        _wait_for(process, condition(log), where)
        if where == "preprocessing":
            time.sleep(3)
        assert _stop(process, how, log) == expected, (where, how, open(log).read()[-3000:])
        assert all(t.state != RUNNING for t in _trials(out)) or how == "kill", where
        if i == 0:
            _check_refused_while_held(data, out, config)

    final_log = tmp_path / "final.log"
    final = _start(data, out, config, final_log)
    assert final.wait(timeout=900) == 0, open(final_log).read()[-3000:]
    trials = _check_final(out)
    assert sum(t.state == INTERRUPTED for t in trials) >= 3  # the mid-trial kill, SIGTERM, Ctrl-C, the student
