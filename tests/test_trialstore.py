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


def test_study_lock_refuses_a_second_holder_and_lapses_for_a_dead_one(tmp_path):
    import subprocess
    import sys

    from modelsearch.trialstore import StudyLocked
    store = TrialStore({"sqlite": str(tmp_path / "t.sqlite")})
    lock = store.acquire_lock("s", "modelsearch run ...")
    with pytest.raises(StudyLocked, match="being searched by another run.*--study NAME"):
        store.acquire_lock("s")
    other = store.acquire_lock("other study")  # a lock is per study
    store.release_lock(lock)
    again = store.acquire_lock("s")  # released: free
    store.renew_lock(again, lock_seconds=0.0)  # lapsed: free, even though this process lives
    store.acquire_lock("s")
    store.release_lock(other)

    # A holder on this machine that is gone frees the lock at once (a killed run's successor need not wait).
    dead = subprocess.run([sys.executable, "-c", f"""
from modelsearch.trialstore import TrialStore
TrialStore({{"sqlite": {str(tmp_path / "d.sqlite")!r}}}).acquire_lock("s")"""], check=True)
    assert dead.returncode == 0
    TrialStore({"sqlite": str(tmp_path / "d.sqlite")}).acquire_lock("s")


def test_data_versions_follow_the_content_and_refuse_another_schema(tmp_path):
    from modelsearch import data_versions
    from modelsearch.errors import UserError
    store = TrialStore({"sqlite": str(tmp_path / "t.sqlite")})
    schema = {"label": "y", "task": {"type": "classification", "num_classes": 2, "classes": ["a", "b"]},
              "columns": [{"name": "f", "kind": "numeric"}], "input_shape": [1], "data_fingerprint": "one"}
    assert data_versions.register(store, "s", schema) == 0
    old = store.start_trial("s", {"blocks": []})
    assert data_versions.register(store, "s", schema) == 0  # the same content: the same version
    assert data_versions.register(store, "s", {**schema, "data_fingerprint": "two"}) == 1
    new = store.start_trial("s", {"blocks": []})
    assert (store.get(old).data_version, store.get(new).data_version) == (0, 1)
    assert [t.trial_id for t in store.current_trials("s")] == [new]  # comparisons see the current data only
    fewer = {**schema, "task": {"type": "classification", "num_classes": 2, "classes": ["a", "c"]}}
    with pytest.raises(UserError, match=r"classes changed \(new: c; gone: b\).*--study NAME"):
        data_versions.register(store, "s", fewer)
    with pytest.raises(UserError, match="feature columns changed"):
        data_versions.check(store, "s", {**schema, "columns": [{"name": "g", "kind": "numeric"}]})
    assert store.data_version("s") == 1  # a refused schema records nothing

    # The content fingerprint: a file's bytes, a folder's files and names.
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.csv").write_text("x\n1\n")
    first = data_versions.fingerprint(str(tmp_path / "d"))
    assert data_versions.fingerprint(str(tmp_path / "d" / "a.csv")) != first
    (tmp_path / "d" / "a.csv").write_text("x\n2\n")
    assert data_versions.fingerprint(str(tmp_path / "d")) != first


def test_curves_and_interrupted_trials(tmp_path):
    from modelsearch.trialstore import INTERRUPTED, LOST, RUNNING
    store = TrialStore({"sqlite": str(tmp_path / "t.sqlite")})
    a, b = store.start_trial("s", {"blocks": []}), store.start_trial("s", {"blocks": []})
    store.record_curve(a, [{"epoch": 1, "loss": 0.5, "val_loss": None}])
    store.complete_trial(b, {"val_accuracy": 0.5}, 10, 0, "", 1.0)
    assert store.get(a).curve == [{"epoch": 1, "loss": 0.5, "val_loss": None}] and store.get(a).state == RUNNING
    assert store.interrupt_running("s", "interrupted: test") == [a]
    assert store.get(a).state == INTERRUPTED and INTERRUPTED in LOST and store.get(b).state == "completed"
