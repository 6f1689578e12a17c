"""The search's wall-clock budget (--time-budget, config key time_budget) and the per-epoch lines of a trial.

The budget's deadline is recorded in the trial store when the search opens, so every trainer stops at the same
moment: none starts a trial past it, a trial training at it ends after its epoch (completed, with a note), and
the exploit stages run as usual."""
import json
import re
import time

import pytest

from modelsearch.config import SearchConfig, parse_duration
from modelsearch.errors import UserError
from modelsearch.trialstore import COMPLETED, SEARCH, TrialStore
from tests.test_pipeline_e2e import write_tiny_csv


@pytest.mark.parametrize("text, seconds", [("90", 90), ("90s", 90), ("30m", 1800), ("2h", 7200), ("1.5h", 5400),
                                           (" 20 s ", 20), (45, 45), (0.5, 0.5)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "-5", "0", "0s", "5d", "1e3", "m", True, float("inf")])
def test_bad_durations_say_what_is_accepted(text):
    with pytest.raises(ValueError, match="is not a duration; pass seconds or a number with s, m or h"):
        parse_duration(text)


def test_config_key():
    assert SearchConfig().time_budget is None and SearchConfig.from_json({}).time_budget is None
    assert SearchConfig.from_json({"time_budget": 120}).time_budget == 120
    assert SearchConfig.from_json({"time_budget": "30m"}).time_budget == 1800  # a file may say it as the CLI does
    assert SearchConfig.from_json({"time_budget": None}).time_budget is None
    with pytest.raises(UserError, match=r"^f.json: time_budget: 'soon' is not a duration"):
        SearchConfig.from_json({"time_budget": "soon"}, source="f.json")
    for bad in (0, -3, True, [60]):
        with pytest.raises(UserError, match="time_budget must be a number of seconds > 0"):
            SearchConfig.from_json({"time_budget": bad})


def test_option_of_run_demo_and_the_api(tmp_path, capsys):
    from pipelines import options
    from pipelines.api import ModelSearch, option_names
    from pipelines.cli import main, make_parser

    for command in (["run", "--data", "d.csv"], ["demo"]):
        args = make_parser().parse_args([*command, "--output-dir", "o", "--time-budget", "30m"])
        assert options.search_config(args).time_budget == 1800
        args = make_parser().parse_args([*command, "--output-dir", "o"])
        assert options.search_config(args).time_budget is None
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--data", "d.csv", "--output-dir", str(tmp_path / "o"), "--time-budget", "soon"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "argument --time-budget: 'soon' is not a duration" in err
    assert not (tmp_path / "o").exists()
    assert "time_budget" in option_names()
    with pytest.raises(UserError, match="^ModelSearch: time_budget: 'soon' is not a duration"):
        ModelSearch(label="y", time_budget="soon")
    ModelSearch(label="y", time_budget=90)


def test_deadline_in_the_trial_store(tmp_path):
    store = TrialStore({"sqlite": str(tmp_path / "t.sqlite")})
    assert store.deadline("s") is None  # never opened: no time budget
    before = time.time()
    deadline = store.open_time_budget("s", 60)
    assert before + 60 <= deadline <= time.time() + 60
    assert TrialStore({"sqlite": str(tmp_path / "t.sqlite")}).deadline("s") == deadline  # what another trainer reads
    assert store.deadline("other") is None
    store.record_decision("s", "push", {"pushed": False})  # other decisions are not deadlines
    assert store.deadline("s") == deadline
    assert store.open_time_budget("s", None) is None and store.deadline("s") is None  # a rerun without a budget


def test_cut_and_epoch_line():
    from modelsearch.training import epoch_line, time_budget_cut
    past, future = time.time() - 1, time.time() + 60
    assert time_budget_cut(None, 3, 10) is None and time_budget_cut(future, 3, 10) is None
    assert time_budget_cut(past, 3, 10) == ("time budget: the search's time ran out, so the trial ended after "
                                            "epoch 3 of 10")
    assert time_budget_cut(past, 10, 10) is None  # its last epoch anyway: a plain completed trial
    entry = {"epoch": 3, "loss": 0.41234, "accuracy": 0.8, "val_loss": 0.5, "val_accuracy": 0.87321}
    assert epoch_line(7, entry, 60, 12.4) == "[modelsearch] trial 7 epoch 3/60: loss 0.4123 val_accuracy 0.8732 (12 s)"
    assert epoch_line(7, {"epoch": 1, "loss": 2.0, "val_loss": 1.5}, 5, 0.4) == \
        "[modelsearch] trial 7 epoch 1/5: loss 2 val_loss 1.5 (0.4 s)"
    student = {"epoch": 2, "loss": 0.3, "val_accuracy": 0.9, "val_label_accuracy": 0.85}
    assert "val_label_accuracy 0.85" in epoch_line(9, student, 5, 1)  # a distilled trial: on the true labels


def test_nothing_completed_in_the_time_budget_says_raise_it(tmp_path):
    """A budget spent before any trial completed: the run's one error line (exit 1) says to raise it."""
    from pipelines.cli import _why_nothing
    store = TrialStore({"sqlite": str(tmp_path / "t.sqlite")})
    assert "time budget" not in _why_nothing(store, "s", "out")
    store.open_time_budget("s", 1e-3)
    time.sleep(0.01)
    assert _why_nothing(store, "s", "out") == (
        "no search trial completed (0 ended without a model; the last: no trial ran); the search's time budget "
        "ran out first: raise --time-budget (config key time_budget); see `modelsearch trials --output-dir out`")


# Trials that cannot end in the budget (an epoch of 420 rows takes well over 15 ms): every trial the search starts
# is cut at its deadline, whatever the machine's speed. No student (none has at most 1 parameter) and no
# replicas: the exploit stages train nothing, and the test stays short.
EPOCHS = 1000


@pytest.mark.slow
def test_a_time_budget_cuts_the_search_then_the_exploit_stages_run(tmp_path, capsys):
    """50 trials of 1000 epochs (no early stopping) cannot fit in 15 s: the search ends at the deadline, the
    trials training then end after their epoch as completed trials with a note, and the run goes on to the
    ensemble and the push. Every epoch of every trial was printed as it trained."""
    from pipelines.cli import main

    data = tmp_path / "tiny.csv"
    write_tiny_csv(data, n=600)
    config = tmp_path / "search.json"
    config.write_text(json.dumps({"patience": EPOCHS, "early_stopping": {"rule": "none"}, "blocks": ["dense"],
                                  "max_depth": 2, "ensemble": {"replicas": 0, "methods": ["average"]},
                                  "student": {"max_params": 1}}))
    out = tmp_path / "run"
    assert main(["run", "--data", str(data), "--label", "kind", "--output-dir", str(out), "--config", str(config),
                 "--trials", "50", "--trainers", "2", "--max-epochs", str(EPOCHS), "--time-budget", "15s",
                 "--push-destination", str(tmp_path / "serving")]) == 0
    err = capsys.readouterr().err
    assert "time budget 15 s, until" in err and err.count("the search's time budget is spent") == 2

    summary = json.loads((out / "summary.json").read_text())
    assert summary["trials_running"] == 0 and summary["trials_failed"] == 0
    assert 2 <= summary["trials_completed"] < 50  # each trainer's trial, cut
    assert summary["ensemble"] and summary["push"]["pushed"]  # the exploit stages ran
    store = TrialStore({"sqlite": str(out / "trials.sqlite")})
    deadline = store.deadline("default")
    search = [t for t in store.trials("default") if t.kind == SEARCH]
    assert len(search) == summary["trials_completed"]  # nothing reserved that never started
    assert deadline is not None and all(t.started < deadline for t in search)  # none started past the deadline
    for t in search:
        assert t.state == COMPLETED and 1 <= len(t.curve) < EPOCHS and t.finished >= deadline, t
        assert t.error == f"time budget: the search's time ran out, so the trial ended after epoch {len(t.curve)} " \
                          f"of {EPOCHS}"
        # One line per epoch, printed as it trained.
        lines = re.findall(rf"^\[modelsearch\] trial {t.trial_id} epoch (\d+)/{EPOCHS}: loss \S+ val_accuracy ",
                           err, re.M)
        assert [int(e) for e in lines] == [entry["epoch"] for entry in t.curve], t.trial_id
