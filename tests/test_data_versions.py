"""A study knows its data, through the console script as a user runs it: today's rows in yesterday's file start a
new data version whose trials are compared only among themselves, and a file whose label has other classes is
refused with one line, leaving the study as it was."""
import json
import os
import subprocess
import sys

import pytest

from modelsearch.trialstore import COMPLETED, ENSEMBLE, SEARCH, TrialStore
from tests.test_pipeline_e2e import ONE_STUDENT, write_tiny_csv

SCRIPT = os.path.join(os.path.dirname(sys.executable), "modelsearch")


def _run(data, out, config):
    env = {k: v for k, v in os.environ.items() if k != "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION"}
    return subprocess.run([SCRIPT, "run", "--data", str(data), "--label", "kind", "--output-dir", str(out),
                           "--config", str(config), "--trials", "2", "--trainers", "2"],
                          capture_output=True, text=True, env=env, timeout=900)


@pytest.mark.slow
def test_new_rows_start_a_data_version_and_other_classes_are_refused(tmp_path):
    data, config, out = tmp_path / "tiny.csv", tmp_path / "search.json", tmp_path / "out"
    config.write_text(json.dumps({"max_epochs": 3, "patience": 2, "ensemble": {"replicas": 0}, **ONE_STUDENT}))
    write_tiny_csv(data, seed=0)
    first = _run(data, out, config)
    assert first.returncode == 0, first.stderr[-3000:]

    write_tiny_csv(data, seed=1)  # the same path and columns, other rows, the same classes
    second = _run(data, out, config)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "this is data version 1" in second.stderr
    store = TrialStore({"sqlite": str(out / "trials.sqlite")})
    trials = store.trials("default")
    search = [t for t in trials if t.kind == SEARCH and t.state == COMPLETED]
    assert sorted(t.data_version for t in search) == [0, 0, 1, 1]  # the budget again, on the new data
    [old_ensemble, new_ensemble] = [t for t in trials if t.kind == ENSEMBLE]
    new_members = set(new_ensemble.spec["members"])
    assert new_members <= {t.trial_id for t in search if t.data_version == 1}  # compared on the new data only
    assert new_ensemble.data_version == 1 and old_ensemble.data_version == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["data_version"] == 1 and summary["trials_completed"] == 2
    assert summary["best"]["trial_id"] in {t.trial_id for t in search if t.data_version == 1}

    # Other classes: refused before anything runs, the study unchanged.
    with open(data, "a") as f:
        f.write("0.1,0.2,0.3,round,d\n")
    before = [(t.trial_id, t.state) for t in store.trials("default")]
    refused = _run(data, out, config)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    last = refused.stderr.strip().splitlines()[-1]
    assert last.startswith("modelsearch: error: study 'default' was searched on other data: the label's classes "
                           "changed (new: d)") and "--study NAME" in last and "--output-dir" in last
    assert [(t.trial_id, t.state) for t in TrialStore({"sqlite": str(out / "trials.sqlite")}).trials("default")] \
        == before
    assert store.data_version("default") == 1
