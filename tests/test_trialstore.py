import pytest

from modelsearch.trialstore import COMPLETED, FAILED, RUNNING, TrialStore

SPEC = {"blocks": [{"name": "dense", "params": {"units": 64}}], "head": "avg", "knobs": {"learning_rate": 0.001}}


def test_round_trip_and_lineage(tmp_path):
    store = TrialStore({"sqlite": str(tmp_path / "t.sqlite")})
    parent = store.start_trial("s", SPEC, mutation="random", seed=7)
    assert store.get(parent).state == RUNNING
    store.complete_trial(parent, {"val_accuracy": 0.9, "objective": 0.9}, num_params=123, num_inherited=0,
                         model_uri=str(tmp_path / "m1"), train_seconds=1.5)
    child_spec = {**SPEC, "knobs": {"learning_rate": 0.01}}
    child = store.start_trial("s", child_spec, parent_id=parent, mutation="knob:learning_rate=0.01", seed=8)
    store.fail_trial(child, "Traceback...\nValueError: boom")

    done = store.get(parent)
    assert (done.state, done.spec, done.metrics["val_accuracy"], done.num_params, done.seed) == \
        (COMPLETED, SPEC, 0.9, 123, 7)
    assert done.model_uri == str(tmp_path / "m1") and done.train_seconds == 1.5 and done.finished >= done.started
    failed = store.get(child)
    assert (failed.state, failed.parent_id, failed.mutation, failed.number) == \
        (FAILED, parent, "knob:learning_rate=0.01", -1)
    assert "boom" in failed.error
    assert [t.trial_id for t in store.completed("s")] == [parent]
    assert store.trials("other") == []
    # MLMD lineage: the parent's model artifact is an input of the child trial.
    events = store._store.get_events_by_execution_ids([child])
    [model] = store._store.get_artifacts_by_id([e.artifact_id for e in events])
    assert model.uri == str(tmp_path / "m1")


def test_continuing_a_study_reopens_the_same_file(tmp_path):
    path = {"sqlite": str(tmp_path / "t.sqlite")}
    first = TrialStore(path)
    a = first.start_trial("s", SPEC)
    first.complete_trial(a, {"objective": 0.5}, 1, 0, "u", 0.1)
    again = TrialStore(path)
    b = again.start_trial("s", {**SPEC, "head": "avg"})
    assert [t.trial_id for t in again.trials("s")] == [a, b]
    assert again.get(a).metrics == {"objective": 0.5}


def test_bad_store_config_is_a_user_error():
    from modelsearch.errors import UserError
    with pytest.raises(UserError, match="sqlite"):
        TrialStore({"postgres": "x"})


def test_mysql_password_comes_from_the_environment(monkeypatch):
    from modelsearch.trialstore import connection_config
    monkeypatch.setenv("MS_TEST_PASSWORD", "s3cret")
    config = connection_config({"mysql": {"host": "db", "database": "d", "password_env": "MS_TEST_PASSWORD"}})
    assert (config.mysql.host, config.mysql.database, config.mysql.password) == ("db", "d", "s3cret")
