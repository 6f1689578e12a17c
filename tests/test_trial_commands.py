"""`modelsearch trials` and `show` on a real trial store (ML Metadata on SQLite), written with the calls the
trainers make: reserve, start_trial, record_curve, complete_trial, fail_trial."""
import subprocess
import sys

import pytest

from modelsearch.trialstore import DIVERGED, ENSEMBLE, INTERRUPTED, REPLICA, STUDENT, TrialStore
from pipelines.cli import main

KNOBS = {"learning_rate": 0.001, "optimizer": "adam", "dropout": 0.1, "batch_size": 64}


def spec(*names, units=64, **knobs):
    return {"blocks": [{"name": n, "params": {"units": units, "activation": "relu"}} for n in names],
            "head": "flatten", "knobs": {**KNOBS, **knobs}}


def curve(epochs, final_acc, final_loss):
    """A plausible learning curve ending at (final_acc, final_loss)."""
    return [{"epoch": e, "loss": final_loss * (1 + 2.0 / e) * 0.9, "val_loss": final_loss * (1 + 1.5 / e),
             "accuracy": final_acc * (1 - 0.3 / e) + 0.01, "val_accuracy": final_acc * (1 - 0.3 / e)}
            for e in range(1, epochs + 1)]


def metrics(val_acc, test_acc, val_loss):
    return {"val_accuracy": val_acc, "test_accuracy": test_acc, "val_loss": val_loss, "test_loss": val_loss * 1.05,
            "objective": val_acc, "epochs": 12}


class StudyWriter:
    """Writes trials as the trainers do; numbers search trials in order."""

    def __init__(self, store: TrialStore, study: str):
        self.store, self.study, self.number = store, study, 0

    def search(self, spec, parent=None, mutation="random", teacher=None):
        self.number += 1
        return self.store.reserve(self.study, self.number, 0, spec, key=f"{self.number}:{mutation}",
                                  parent_id=parent, mutation=mutation, teacher_id=teacher)

    def complete(self, trial_id, val_acc, test_acc, val_loss, params, epochs=12):
        self.store.record_curve(trial_id, curve(epochs, val_acc, val_loss))
        self.store.complete_trial(trial_id, {**metrics(val_acc, test_acc, val_loss), "epochs": epochs}, params, 0,
                                  f"/models/{trial_id}", train_seconds=3.5 + trial_id % 7, peak_rss_mb=410.0)
        return trial_id


def make_study(out_dir, study="default", block="dense") -> dict:
    """A study of 13 trials on data version 2 (and one on version 1): lineage, failures of every kind, a replica,
    an ensemble of three, a distilled student and the push decision. Returns {name: trial id}."""
    store = TrialStore({"sqlite": str(out_dir / "trials.sqlite")})
    w, ids = StudyWriter(store, study), {}
    store.add_data_version(study, 1, "fp-1", {"columns": ["a", "b"]})
    ids["old"] = w.complete(w.search(spec(block)), 0.70, 0.69, 0.9, 1_000)
    store.add_data_version(study, 2, "fp-2", {"columns": ["a", "b", "c"]})
    ids["root"] = w.complete(w.search(spec(block)), 0.900, 0.890, 0.35, 4_810)
    ids["other_root"] = w.complete(w.search(spec("residual_dense")), 0.880, 0.870, 0.40, 9_000)
    ids["deeper"] = w.complete(w.search(spec(block, "dense"), ids["root"], "add_block:dense"), 0.930, 0.925, 0.25,
                               9_000)
    ids["best"] = w.complete(w.search(spec(block, "dense", units=128), ids["deeper"], "width:0:units=128"),
                             0.955, 0.948, 0.18, 25_610, epochs=20)
    ids["diverged"] = w.search(spec(block, "dense", learning_rate=0.01), ids["deeper"], "knob:learning_rate=0.01")
    store.record_curve(ids["diverged"], curve(2, 0.5, 1.5))
    store.fail_trial(ids["diverged"], "loss became NaN at epoch 3 (learning rate 0.01)", state=DIVERGED)
    ids["failed"] = w.search(spec(block, "dense", "bottleneck", units=128), ids["best"], "add_block:bottleneck")
    store.fail_trial(ids["failed"], "Traceback (most recent call last):\n  File \"training.py\", line 80, in train\n"
                     "    model.fit(...)\ntensorflow.python.framework.errors_impl.ResourceExhaustedError: OOM when "
                     "allocating tensor with shape[128,4096] on /job:localhost/replica:0/task:0/device:CPU:0")
    ids["interrupted"] = w.search(spec("dense"), ids["other_root"], "replace_block:0:residual_dense->dense")
    store.fail_trial(ids["interrupted"], "interrupted: the run was stopped (SIGTERM)", state=INTERRUPTED)
    ids["running"] = w.search(spec(block, "dense", units=128, dropout=0.2), ids["best"], "knob:dropout=0.2")
    ids["replica"] = store.start_trial(study, spec(block, "dense", units=128), parent_id=ids["best"],
                                       mutation="replica:1", seed=1, kind=REPLICA)
    w.complete(ids["replica"], 0.950, 0.944, 0.19, 25_610)
    members = [ids["best"], ids["replica"], ids["deeper"]]
    ids["ensemble"] = store.start_trial(study, {"method": "weighted", "members": members, "weights": [0.5, 0.3, 0.2],
                                                "compared": {"average": {"metrics": {"objective": 0.958}},
                                                             "weighted": {"metrics": {"objective": 0.962}}}},
                                        mutation="ensemble:weighted", kind=ENSEMBLE, input_ids=tuple(members))
    store.complete_trial(ids["ensemble"], metrics(0.962, 0.957, 0.15), 60_230, 0, "/models/e", 2.0)
    ids["student"] = store.start_trial(study, spec(block, units=64), parent_id=ids["best"], mutation="distill",
                                       seed=2, teacher_id=ids["ensemble"], kind=STUDENT,
                                       distillation={"mode": "soft_ce", "weight": 0.5, "temperature": 2.0})
    w.complete(ids["student"], 0.940, 0.936, 0.21, 4_810)
    store.record_decision(study, "push", {
        "pushed": True, "reason": "better on test than the last pushed model (0.957 > 0.931)",
        "winner_trial_id": ids["ensemble"], "winner_kind": ENSEMBLE, "policy": "best_accuracy",
        "test": {"accuracy": 0.957}})
    return ids


@pytest.fixture
def study(tmp_path):
    out = tmp_path / "out"
    return out, make_study(out)


def cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def rows(out):
    """The table's rows as lists of cells (after the header line and the dashes), keyed by trial id."""
    lines = out.splitlines()[3:]
    return {int(line.split()[1]): line.split() for line in lines}


def test_trials_ranks_completed_by_objective_then_the_rest(study, capsys):
    out_dir, ids = study
    code, out, err = cli(capsys, "trials", "--output-dir", str(out_dir))
    assert code == 0 and err == ""
    assert out.startswith("study 'default', data version 2: 7 completed, 1 diverged, 1 failed, 1 interrupted, "
                          "1 running\nrank  trial  state")
    table = rows(out)
    assert ids["old"] not in table  # another data version
    best_first = ["ensemble", "best", "replica", "student", "deeper", "root", "other_root"]
    assert list(table)[:7] == [ids[n] for n in best_first]
    assert [table[ids[n]][0] for n in best_first] == ["1", "2", "3", "4", "5", "6", "7"]
    assert table[ids["ensemble"]][2:4] == ["completed", f"weighted({ids['best']},{ids['replica']},{ids['deeper']})"]
    assert table[ids["best"]][3:9] == ["dense+dense", "0.9550", "0.9480", "25,610", str(ids["deeper"]),
                                       "width:0:units=128"]
    assert table[ids["student"]][-1] == "distill" and table[ids["replica"]][-1] == "replica:1"
    # The rest by id, not ranked, each with the last line of its reason (module path dropped), shortened.
    assert list(table)[7:] == [ids[n] for n in ("diverged", "failed", "interrupted", "running")]
    assert all(table[ids[n]][0] == "-" for n in ("diverged", "failed", "interrupted", "running"))
    failed = " ".join(table[ids["failed"]])
    assert "add_block:bottleneck ResourceExhaustedError: OOM when allocating" in failed and failed.endswith("...")
    assert len(failed.split("add_block:bottleneck ")[1]) == 50
    assert " ".join(table[ids["diverged"]][1:]).endswith(
        "knob:learning_rate=0.01 loss became NaN at epoch 3 (learning rate 0.01)")
    assert table[ids["interrupted"]][2] == "interrupted" and table[ids["running"]][2:4] == ["running", "dense+dense"]


def test_trials_all_versions_and_sort_by_trial(study, capsys):
    out_dir, ids = study
    code, out, _ = cli(capsys, "trials", "--output-dir", str(out_dir), "--all", "--sort", "trial")
    assert code == 0 and "every data version" in out
    assert out.splitlines()[1].split()[:3] == ["rank", "trial", "data"]
    table = rows(out)
    assert list(table) == sorted(table) and ids["old"] in table
    assert table[ids["old"]][:3] == ["1", str(ids["old"]), "1"]  # ranked within its own data version


def test_show_record_lineage_and_curve(study, capsys):
    out_dir, ids = study
    code, out, _ = cli(capsys, "show", "--output-dir", str(out_dir), str(ids["best"]))
    assert code == 0
    assert out.startswith(f"trial {ids['best']} of study 'default': search trial #5, completed")
    for field in ("parent_id", "mutation", "num_params", "train_seconds", "data_version", "worker", "model_uri"):
        assert f"  {field}" in out
    assert "val_accuracy  0.955" in out and "learning_rate 0.001" in out and "block 1  dense" in out
    assert "curve (20 epochs; * lowest val_loss)" in out and "  ..." in out and "20*" in out
    lineage = out.split("lineage (root first)\n")[1].split("children")[0].splitlines()
    assert [line.split("trial ")[1].split()[0] for line in lineage] == [
        str(ids["root"]), str(ids["deeper"]), str(ids["best"])]
    assert "random" in lineage[0] and "add_block:dense" in lineage[1] and lineage[2].startswith("> ")
    children = out.split("children\n")[1].split("taught")[0]
    for name in ("failed", "running", "replica", "student"):
        assert f"trial {ids[name]} " in children
    assert f"member of\n  trial {ids['ensemble']} [completed] ensemble:weighted" in out


def test_show_ensemble_members_teacher_and_error(study, capsys):
    out_dir, ids = study
    _, out, _ = cli(capsys, "show", "--output-dir", str(out_dir), str(ids["ensemble"]))
    best, replica, deeper = ids["best"], ids["replica"], ids["deeper"]
    assert f"members (MLMD inputs: {', '.join(map(str, sorted([best, replica, deeper])))})" in out
    members = out.split("members (")[1].splitlines()[1:4]
    assert [m.split()[:3] for m in members] == [["weight", "0.500", "trial"], ["weight", "0.300", "trial"],
                                                ["weight", "0.200", "trial"]]
    assert [m.split()[3] for m in members] == [str(best), str(replica), str(deeper)]  # the weights' order
    assert "compared      average 0.9580, weighted 0.9620" in out
    assert f"taught\n  trial {ids['student']} [completed] distill" in out
    _, out, _ = cli(capsys, "show", "--output-dir", str(out_dir), str(ids["student"]))
    assert f"teacher  trial {ids['ensemble']}" in out and '"mode": "soft_ce"' in out
    _, out, _ = cli(capsys, "show", "--output-dir", str(out_dir), str(ids["failed"]))
    assert "error\n  Traceback (most recent call last):" in out and "shape[128,4096]" in out  # in full
    assert "curve         - (none recorded)" in out


def test_errors_are_one_line_exit_2(study, tmp_path, capsys):
    out_dir, ids = study
    code, out, err = cli(capsys, "show", "--output-dir", str(out_dir), "99999")
    first, last = min(ids.values()), max(ids.values())  # MLMD ids: other executions take some in between
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err == (f"modelsearch: error: no trial 99999 in study 'default': its trials are {first}-{last} "
                   f"({len(ids)} trials); `modelsearch trials` lists them\n")
    code, _, err = cli(capsys, "trials", "--output-dir", str(out_dir), "--study", "nope")
    assert code == 2 and "no study 'nope'" in err and "studies there: 'default'" in err and err.count("\n") == 1
    empty = tmp_path / "empty"
    for command in (["trials"], ["show", "1"], ["report"]):
        code, _, err = cli(capsys, command[0], "--output-dir", str(empty), *command[1:])
        assert code == 2 and err == (f"modelsearch: error: {empty} holds no study (no trials.sqlite); run "
                                     f"`modelsearch run ... --output-dir {empty}` first\n")
    assert not empty.exists()  # nothing created
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "trials.sqlite").write_text("not a database")
    code, _, err = cli(capsys, "trials", "--output-dir", str(damaged))
    assert code == 2 and err.startswith(f"modelsearch: error: the trial store {damaged}/trials.sqlite cannot be "
                                        "opened (") and err.count("\n") == 1


def test_study_defaults_to_the_only_one_or_study_json(tmp_path, capsys):
    out_dir = tmp_path / "out"
    make_study(out_dir, study="mine")
    code, out, _ = cli(capsys, "trials", "--output-dir", str(out_dir))
    assert code == 0 and out.startswith("study 'mine'")
    make_study(out_dir, study="second")
    (out_dir / "study.json").write_text('{"study": "second"}')
    code, out, _ = cli(capsys, "trials", "--output-dir", str(out_dir))
    assert code == 0 and out.startswith("study 'second'")


def test_trial_commands_do_not_import_tensorflow(study):
    """Pure Python and ML Metadata: a fresh interpreter runs all three without TensorFlow (or TFX, Keras)."""
    out_dir, ids = study
    script = ("import sys; from pipelines.cli import main; d = sys.argv[1]; "
              "codes = [main(['trials', '--output-dir', d]), main(['show', '--output-dir', d, sys.argv[2]]), "
              "main(['report', '--output-dir', d])]; "
              "print('heavy', sorted(m for m in ('tensorflow', 'tfx', 'keras') if m in sys.modules), codes)")
    result = subprocess.run([sys.executable, "-c", script, str(out_dir), str(ids["best"])], capture_output=True,
                            text=True, timeout=120)
    assert result.stdout.splitlines()[-1] == "heavy [] [0, 0, 0]", result.stderr
    assert "dense+dense" in result.stdout and (out_dir / "report.html").exists()


def test_show_calls_a_completed_trials_reason_a_note(tmp_path, capsys):
    """A trial cut by the time budget completed with a model: its reason is a note, not an error."""
    store = TrialStore({"sqlite": str(tmp_path / "trials.sqlite")})
    trial_id = store.start_trial("default", spec("dense"))
    store.complete_trial(trial_id, metrics(0.9, 0.9, 0.3), 100, 0, "/models/1", 1.0,
                         reason="time budget: the search's time ran out, so the trial ended after epoch 3 of 30")
    _, out, _ = cli(capsys, "show", "--output-dir", str(tmp_path), str(trial_id))
    assert "\nnote\n  time budget: the search's time ran out" in out and "\nerror\n" not in out
