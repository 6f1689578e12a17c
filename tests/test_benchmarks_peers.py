"""Benchmarks against the peers and of the pipeline's overhead: small-budget smoke runs (no timing asserts)."""
import json
import os

import numpy as np
import pytest

from benchmarks import async_trainers, overhead, peers
from tests.test_pipeline_e2e import ONE_STUDENT


def test_budget_counts_every_model_ours_trains():
    budget = peers.budget_of(models=8, trainers=2, replicas=1, max_epochs=30, patience=5)
    # N = search trials + the replica + the student tries (the one near the best, the best at 2 widths).
    assert budget["trials"] == 8 and budget["search_trials"] == 8 - 1 - 3
    student = {"widths": [0.5], "smallest": 2}
    assert peers.budget_of(models=30, trainers=2, replicas=2, max_epochs=30, patience=5,
                           student=student)["search_trials"] == 30 - 2 - (1 + 2 + 1)
    assert peers.search_config(budget) == {"max_epochs": 30, "patience": 5, "ensemble": {"replicas": 1},
                                           "student": peers.STUDENT}
    with pytest.raises(ValueError, match="no search trial"):
        peers.budget_of(models=4, trainers=1, replicas=1, max_epochs=30, patience=5)
    assert peers.search_trials({"rounds": 3, "trainers": 2}) == 6  # a result file of before


def test_summary_means_and_targets():
    def run(tool, seed, accuracy, params):
        return {"dataset": "d", "seed": seed, "tool": tool, "test_accuracy": accuracy, "num_params": params,
                "wall_s": 1.0, "trials": 8, "epochs": 100}

    runs = [run("ours", 0, 0.9, 100), run("ours", 1, 1.0, 300), run("random_search", 0, 0.9, 1000),
            run("random_search", 1, 0.9, 1000), run("autokeras", 0, 0.99, 200),
            {"dataset": "d", "seed": 0, "tool": "hyperband", "error": "ValueError: boom"}]
    summary = peers.summarize(runs)
    ours = summary["table"]["d"]["ours"]
    assert ours["seeds"] == 2 and ours["test_accuracy"] == pytest.approx(0.95) and ours["num_params"] == 200
    targets = {t["peer"]: t for t in summary["targets"]}
    assert set(targets) == {"random_search", "autokeras"}  # the failed peer has no row
    assert targets["random_search"]["accuracy_met"] and targets["random_search"]["params_met"]
    assert not targets["autokeras"]["accuracy_met"] and not targets["autokeras"]["params_met"]
    assert "not met" in peers.markdown({"summary": summary})


def test_hyperband_epoch_cap_stops_the_oracle():
    class Oracle:
        def populate_space(self, trial_id):
            return {"status": "RUNNING", "values": {"tuner/epochs": 4, "tuner/initial_epoch": 1}}

    oracle = Oracle()
    peers.cap_epochs(oracle, budget=7)
    assert [oracle.populate_space(str(i))["status"] for i in range(3)] == ["RUNNING", "RUNNING", "STOPPED"]


@pytest.mark.slow
def test_peers_smoke(tmp_path, monkeypatch):
    """Every tool on a user's own table (breast_cancer, its label column named otherwise), one seed, 5 models of at
    most 2 epochs each (Hyperband: 10 epochs)."""
    monkeypatch.setattr(peers, "ROUTES", dict(peers.ROUTES))
    table = tmp_path / "cancer.csv"
    x, y = peers.load_dataset("breast_cancer")
    table.write_text("\n".join([",".join([*(f"f{i}" for i in range(x.shape[1])), "diagnosis"]),
                                *(",".join([*map(str, row), str(label)]) for row, label in zip(x, y))]) + "\n")
    assert peers.own_dataset(str(table), label="diagnosis") == "cancer"
    budget = peers.budget_of(models=5, trainers=1, replicas=1, max_epochs=2, patience=1)
    out = tmp_path / "peers.json"
    peers.run(["cancer"], [0], budget, workdir=str(tmp_path / "work"), out=str(out), in_process=True)
    results = json.loads(out.read_text())
    # One search trial, one replica, up to three students (the best as it is and at two narrower widths).
    assert results["settings"]["budget"]["trials"] == 5 and results["machine"]["nproc"] >= 1
    runs = {r["tool"]: r for r in results["runs"]}
    assert set(runs) == set(peers.TOOLS)
    for tool, r in runs.items():
        assert "error" not in r, r
        assert 0.0 <= r["test_accuracy"] <= 1.0 and r["num_params"] > 0 and r["wall_s"] > 0
        assert 1 <= r["epochs"] <= r["trials"] * budget["max_epochs"], r
    assert runs["random_search"]["trials"] == runs["autokeras"]["trials"] == 5 >= runs["ours"]["trials"]
    models = runs["ours"]["models"]
    assert (models["search"], models["replica"]) == (1, 1) and 1 <= models["student"] <= 3
    assert runs["hyperband"]["epochs"] <= 5 * budget["max_epochs"]
    assert runs["ours"]["winner"] == "student"  # (2 epochs: no accuracy to expect of a first, linear trial)
    assert {t["peer"] for t in results["summary"]["targets"]} == set(peers.PEERS)
    assert "KerasTuner Hyperband" in peers.markdown(results)
    # A resumed cell on a machine without the run's files gets the same splits from Preprocess alone.
    ours_dir = peers.cell_dir(str(tmp_path / "work"), "cancer", 0, "ours")
    _, searched = peers.pipeline_splits(ours_dir)
    again = str(tmp_path / "splits-only")
    peers.write_splits(peers.write_data("cancer", str(tmp_path / "work" / "data")), again, 0, "cancer")
    _, written = peers.pipeline_splits(again)
    for split in ("train", "validation", "test"):
        assert all(np.array_equal(a, b) for a, b in zip(written[split], searched[split])), split
    assert not os.path.exists(os.path.join(again, "trials.sqlite"))  # no search ran


@pytest.mark.slow
def test_overhead_smoke(tmp_path):
    """One trial of one epoch through the pipeline (one trainer) and through the loop, each in its own process."""
    out = tmp_path / "overhead.json"
    overhead.main(["--trials", "1", "--trainers", "1", "--max-epochs", "1", "--variants", "baseline",
                   "--workdir", str(tmp_path / "work"), "--out", str(out)])
    results = json.loads(out.read_text())
    variant = results["variants"]["baseline"]
    assert variant["pipeline_wall_s"] > 0 and variant["loop_wall_s"] > 0
    assert variant["ratio"] == pytest.approx(variant["pipeline_wall_s"] / variant["loop_wall_s"])
    parts = {p["part"]: p["seconds"] for p in variant["breakdown"]}
    assert sum(parts.values()) == pytest.approx(variant["pipeline_wall_s"], rel=0.02)
    assert all(seconds >= 0 for seconds in parts.values()), parts  # K = 1: no part overlaps another
    assert parts["Preprocess (Beam + tf.Transform)"] > 0
    [trial] = variant["per_trial"]
    assert 0 < trial["pipeline_train_seconds"] <= trial["pipeline_wall_s"] and trial["loop_fit_s"] > 0
    assert [t["epochs"] for t in variant["loop"]["trials"]] == [1] and trial["epochs"] == 1
    assert "where the pipeline's time goes" in overhead.markdown(results)


@pytest.mark.slow
def test_async_trainers_smoke(tmp_path):
    """Two tiny digits searches, K = 1 then K = 2: both hold their budget, the ratio and memory are reported."""
    out, config = tmp_path / "async.json", tmp_path / "search.json"
    # The exploit stages as short as they go (one student, no replica): what is measured is the search phase.
    config.write_text(json.dumps({"ensemble": {"replicas": 0}, **ONE_STUDENT}))
    async_trainers.main(["--trials", "5", "--trainers", "1,2", "--max-epochs", "1", "--config", str(config),
                         "--out", str(out)])
    results = json.loads(out.read_text())
    one, two = results["runs"]
    assert (one["trials"], two["trials"]) == (5, 5) and one["duplicates"] == two["duplicates"] == 0
    assert (one["workers"], two["workers"]) == (1, 2)  # K trainer processes shared the budget
    assert results["speedup"]["K=2/K=1"] > 0 and set(results["memory"]) == {"K=1", "K=2"}
    assert "trials / hour" in async_trainers.markdown(results)


def test_resume_keeps_finished_cells(tmp_path):
    budget = peers.budget_of(models=5, trainers=1, replicas=1, max_epochs=2, patience=1)
    done = [{"dataset": "breast_cancer", "seed": 0, "tool": tool, "test_accuracy": 0.9, "num_params": 10,
             "wall_s": 1.0, "trials": 3, "epochs": 3} for tool in peers.TOOLS]
    out = tmp_path / "peers.json"
    out.write_text(json.dumps({"settings": {"budget": budget}, "runs": done}))
    results = peers.run(["breast_cancer"], [0], budget, workdir=str(tmp_path / "work"), out=str(out), resume=True)
    assert results["runs"] == done  # nothing trained: the cell was complete
    other = peers.budget_of(models=6, trainers=1, replicas=1, max_epochs=2, patience=1)
    assert peers.finished_runs(str(out), other, peers.TOOLS) == []  # another budget starts afresh


def test_resume_keeps_every_result_and_runs_only_what_a_cell_lacks(tmp_path, monkeypatch):
    budget = peers.budget_of(models=5, trainers=1, replicas=1, max_epochs=2, patience=1)

    def result(dataset, seed, tool):
        return {"dataset": dataset, "seed": seed, "tool": tool, "test_accuracy": 0.9, "num_params": 10,
                "wall_s": 1.0, "trials": 3, "epochs": 3}

    # A benchmark stopped in the image cell (AutoKeras done, ours not) with a table cell done before it.
    done = [result("digits-images", 0, "autokeras"), *(result("digits", 0, t) for t in peers.TOOLS)]
    out = tmp_path / "peers.json"
    out.write_text(json.dumps({"settings": {"budget": budget}, "runs": done}))
    asked, saved = [], []

    def run_cell(dataset, seed, budget, tools, workdir, in_process, on_result):
        asked.append((dataset, seed, list(tools)))
        saved.append(json.loads(out.read_text())["runs"])  # the file as the cell starts
        for t in tools:
            on_result(result(dataset, seed, t))
            # Saved as each tool's run ends: a stop within a cell loses only the tool that was running.
            assert result(dataset, seed, t) in json.loads(out.read_text())["runs"]
        return [result(dataset, seed, t) for t in tools]

    monkeypatch.setattr(peers, "run_cell", run_cell)
    results = peers.run(["digits-images"], [0, 1], budget, workdir=str(tmp_path / "work"), out=str(out), resume=True)
    assert asked == [("digits-images", 0, ["ours"]), ("digits-images", 1, ["ours", "autokeras"])]
    # The file's settings name the kept cells too, not only the last command's grid.
    assert {k: results["settings"][k] for k in ("datasets", "seeds")} == {
        "datasets": ["digits-images", "digits"], "seeds": [0, 1]}
    assert all(r in saved[-1] for r in done)  # a stop in a later cell loses nothing kept (the digits cell too)
    assert sorted((r["dataset"], r["seed"], r["tool"]) for r in results["runs"]) == sorted(
        [(r["dataset"], r["seed"], r["tool"]) for r in done]
        + [("digits-images", 0, "ours"), ("digits-images", 1, "ours"), ("digits-images", 1, "autokeras")])


def test_peers_from_an_earlier_file_of_the_same_peer_budget(tmp_path):
    budget = peers.budget_of(models=5, trainers=1, replicas=1, max_epochs=2, patience=1)
    earlier = [{"dataset": "d", "seed": 0, "tool": tool, "test_accuracy": 0.9} for tool in peers.TOOLS]
    path = tmp_path / "earlier.json"
    path.write_text(json.dumps({"settings": {"budget": {"rounds": 1, "trainers": 1, "replicas": 1, "trials": 5,
                                                        "max_epochs": 2, "patience": 1}}, "runs": earlier}))
    # Ours is never taken from it (our code changed); the peers are, when their budget is the same.
    assert [r["tool"] for r in peers.earlier_peer_runs(str(path), budget, peers.TOOLS)] == list(peers.PEERS)
    with pytest.raises(ValueError, match="another budget"):
        peers.earlier_peer_runs(str(path), {**budget, "trials": 6}, peers.TOOLS)


def test_routes_run_their_own_peers_and_compare_with_their_rows():
    # The image route runs AutoKeras's image search only; the sequence route runs no peer and is compared with
    # the peers of the table on the same rows.
    assert peers.runs_on("digits-images", peers.TOOLS) == ["ours", "autokeras"]
    assert peers.runs_on("mnist1d-sequence", peers.TOOLS) == ["ours"]
    assert peers.runs_on("digits", peers.TOOLS) == list(peers.TOOLS)
    # The sequence route declares its input to `modelsearch run`; a plain table declares nothing.
    assert peers.route_args("mnist1d-sequence") == ["--input-kind", "sequence", "--input-shape", "40"]
    assert peers.route_args("digits") == []

    def run(dataset, tool, accuracy, params):
        return {"dataset": dataset, "seed": 0, "tool": tool, "test_accuracy": accuracy, "num_params": params,
                "wall_s": 1.0, "trials": 8, "epochs": 100}

    summary = peers.summarize([run("mnist1d", "ours", 0.6, 100), run("mnist1d", "hyperband", 0.7, 1000),
                               run("mnist1d-sequence", "ours", 0.9, 500)])
    targets = {(t["dataset"], t["peer"]): t for t in summary["targets"]}
    sequence = targets[("mnist1d-sequence", "hyperband")]
    assert sequence["accuracy_met"] and sequence["params_ratio"] == pytest.approx(0.5) and sequence["params_met"]
    assert not targets[("mnist1d", "hyperband")]["accuracy_met"]


def test_own_data_is_a_dataset_by_its_name_and_bad_data_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(peers, "ROUTES", dict(peers.ROUTES))
    images = tmp_path / "photos"
    (images / "cat").mkdir(parents=True)
    assert peers.own_dataset(str(images)) == "photos"
    assert peers.runs_on("photos", peers.TOOLS) == ["ours", "autokeras"]  # images: the image peer, as digits-images
    assert peers.write_data("photos", str(tmp_path / "data")) == str(images)
    for argv, message in [(["--data", str(tmp_path / "none.csv")], "no such file or folder"),
                          (["--datasets", "iris"], "unknown dataset iris")]:
        with pytest.raises(SystemExit) as stop:
            peers.main(argv)
        assert message in str(stop.value) + capsys.readouterr().err
    (tmp_path / "digits.csv").write_text("a,label\n1,0\n")
    with pytest.raises(SystemExit, match="its name 'digits' is taken"):
        peers.own_dataset(str(tmp_path / "digits.csv"))
    (tmp_path / "mine.csv").write_text("a,species\n1,0\n")
    with pytest.raises(SystemExit, match="no column 'label' \\(it has a, species\\); name its label column"):
        peers.own_dataset(str(tmp_path / "mine.csv"))
    assert peers.own_dataset(str(tmp_path / "mine.csv"), label="species") == "mine"
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(SystemExit, match="not a .csv table"):
        peers.own_dataset(str(tmp_path / "notes.txt"))


def test_datasets_on_the_same_rows_share_one_file(tmp_path):
    table = peers.write_data("mnist1d", str(tmp_path))
    assert peers.write_data("mnist1d-sequence", str(tmp_path)) == table  # the same rows: the same splits
    header = open(table).readline().strip().split(",")
    assert len(header) == 41 and header[-1] == peers.LABEL


def test_markdown_of_several_result_files_reports_their_runs_together(tmp_path):
    def result(dataset, tool, accuracy):
        return {"dataset": dataset, "seed": 0, "tool": tool, "test_accuracy": accuracy, "val_accuracy": 0.95,
                "num_params": 10, "wall_s": 1.0, "trials": 3, "epochs": 3}

    a, b = tmp_path / "a.json", tmp_path / "b.json"
    settings = {"tools": ["ours", "random_search"], "seeds": [0, 1]}
    a.write_text(json.dumps({"settings": settings,
                             "runs": [result("digits", "ours", 0.9), result("digits", "random_search", 0.8)]}))
    b.write_text(json.dumps({"settings": settings, "runs": [result("mnist1d", "ours", 0.7)]}))
    both = peers.merged([str(a), str(b)])
    assert set(both["summary"]["table"]) == {"digits"}  # mnist1d's cell lacks its peer: not compared yet
    assert both["partial"] == ["mnist1d seed 0 (lacks random_search)"]
    assert [t["peer"] for t in both["summary"]["targets"]] == ["random_search"]
    table = peers.markdown(both)
    assert "(1 of 2 seeds)" in table and "not met" not in table and "| met" not in table  # no verdict at 1 seed
    assert "mnist1d seed 0 (lacks random_search)" in table
    seeds = peers.per_seed(both).splitlines()  # every cell, complete or not, seed by seed
    assert "| digits | 0 | 0.9000 (0.9500), 10 | 0.8000, 10 | - | - |" in seeds
    assert "| mnist1d | 0 | 0.7000 (0.9500), 10 | - | - | - |" in seeds
    b.write_text(json.dumps({"runs": [result("digits", "ours", 0.7)]}))
    with pytest.raises(SystemExit, match="digits seed 0 ours is in both"):
        peers.merged([str(a), str(b)])
    b.write_text(json.dumps({"settings": {"budget": {"models": 30}}, "runs": [result("mnist1d", "ours", 0.7)]}))
    with pytest.raises(SystemExit, match="different budgets"):
        peers.merged([str(a), str(b)])


def test_epochs_are_recounted_from_the_curves_of_the_runs_own_store(tmp_path):
    from modelsearch.trialstore import TrialStore

    store = TrialStore({"sqlite": str(tmp_path / "breast_cancer" / "seed0" / "ours" / "trials.sqlite")})
    spec = {"blocks": [], "head": "avg", "knobs": {}}
    curve = [{"epoch": e, "loss": 1.0, "val_accuracy": 0.5} for e in (1, 2, 3)]
    for accuracy, epochs in ((0.9, 3), (0.8, 0)):  # the second kept its parent's weights: 0 in its metrics
        trial_id = store.start_trial(peers.STUDY, spec)
        store.record_curve(trial_id, curve)
        store.complete_trial(trial_id, {"test_accuracy": accuracy, "val_accuracy": 0.5, "epochs": epochs},
                             num_params=10, num_inherited=0, model_uri="", train_seconds=1.0)
    ours = {"dataset": "breast_cancer", "seed": 0, "tool": "ours", "trial_id": 1, "test_accuracy": 0.9,
            "trials": 2, "epochs": 3}
    assert peers.recount_epochs(ours, str(tmp_path)) == {**ours, "epochs": 6, "epochs_from": "curves"}
    # Not this run's store (another winner, another trial count), or another tool: left as it is.
    for other in ({**ours, "test_accuracy": 0.7}, {**ours, "trials": 8}, {**ours, "tool": "random_search"},
                  {**ours, "seed": 1}):
        assert peers.recount_epochs(other, str(tmp_path)) == other


@pytest.mark.parametrize("code", (peers.EXIT_INTERRUPTED, peers.EXIT_TERMINATED))
def test_a_stopped_run_of_ours_is_not_recorded_as_a_failure(tmp_path, monkeypatch, code):
    """Ctrl-C or SIGTERM of `modelsearch run` (a session's end) stops the benchmark; only a real failure of
    ours is a result (an "error" entry the resume would keep as the cell's outcome)."""
    import subprocess

    monkeypatch.setattr(subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, code))
    budget = peers.budget_of(models=5, trainers=1, replicas=1, max_epochs=2, patience=1)
    with pytest.raises(KeyboardInterrupt, match=f"exit {code}"):
        peers.run_ours("data.csv", str(tmp_path / "ours"), 0, budget)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 1))
    with pytest.raises(RuntimeError, match="exited 1"):
        peers.run_ours("data.csv", str(tmp_path / "ours"), 0, budget)
