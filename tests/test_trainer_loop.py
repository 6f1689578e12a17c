"""The asynchronous trainer loop as a real process: memory that stays flat over many trials, memory that does
not grow with the data (streamed), and a trainer killed mid-trial whose trial is reclaimed by its lease.

Trainers run in fresh interpreters (as TFX nodes do), never forked from pytest: this process has run
TensorFlow, and a process that has must not fork a trainer."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from modelsearch.search import counted
from modelsearch.trialstore import ABANDONED, COMPLETED, RUNNING, TrialStore

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def start_trainer(store: dict, config: dict, budgets, examples: str, transform: str, models: str,
                  lease_seconds: float = 120.0) -> subprocess.Popen:
    """`run_trainer` in a fresh interpreter, to each budget in turn (one study); it prints, as JSON, the trials
    it ran and the loop process's own peak memory after each budget."""
    code = textwrap.dedent(f"""
        import json, resource
        from modelsearch.config import SearchConfig
        from modelsearch.trainer_loop import run_trainer
        trials, peaks = [], []
        for budget in {list(budgets)!r}:
            trials += run_trainer({store!r}, "s", SearchConfig.from_json({config!r}), budget, {examples!r},
                                  {transform!r}, {models!r}, threads=1, lease_seconds={lease_seconds})
            peaks.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        print(json.dumps({{"trials": [t.trial_id for t in trials], "loop_peak_mb": peaks}}))
    """)
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "GRPC_ENABLE_FORK_SUPPORT": "false"})


def finish(process: subprocess.Popen, timeout: float) -> dict:
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A preprocessed 3-class table of 300 rows (the real Preprocess)."""
    from components.preprocess.executor import run_preprocess
    from components.preprocess.schema import infer_schema
    root = tmp_path_factory.mktemp("loop")
    rng = np.random.default_rng(0)
    with open(root / "d.csv", "w") as f:
        f.write("a,b,c,y\n")
        for _ in range(300):
            v = rng.normal(size=3)
            f.write(f"{v[0]:.4f},{v[1]:.4f},{v[2]:.4f},{'p' if v[0] > 0.3 else ('q' if v[1] > 0 else 'r')}\n")
    schema = infer_schema(str(root / "d.csv"), "y")
    run_preprocess(str(root / "d.csv"), schema, str(root / "examples"), str(root / "transform"))
    return {"root": root, "examples": str(root / "examples"), "transform": str(root / "transform")}


TINY_SEARCH = {"max_epochs": 1, "patience": 1, "blocks": ["dense", "residual_dense", "bottleneck"], "max_depth": 3}
# One dense block, random knobs: every trial the same kind of tiny model, so peaks compare trial counts alone.
SAME_SIZE = {"max_epochs": 1, "patience": 1, "strategy": "random", "blocks": ["dense"], "initial_depth": [1, 1],
             "max_depth": 1}


@pytest.mark.slow
def test_memory_stays_flat_over_30_trials(tiny, tmp_path):
    """Trials train in a worker forked from the trainer loop that retires once its peak memory grew 5% past
    its first trial's, so what trials leave behind (Keras graphs, TF caches: about 15 MiB a trial when one
    process trained them all) never piles up. Bound: the 30th trial's peak is within 10% of the 5th's.
    Every worker starts from the same loop process and trains models of one kind (one small dense block),
    so a trial's peak is at most a worker's first plus 5% plus one trial's growth, while a leak of 15 MiB
    a trial would add 375 MiB (over 70% of a ~500 MiB trial) by the 30th. The loop process never trains:
    its peak after 30 trials is within 5% of its peak after 5 (its imports dominate it)."""
    store = {"sqlite": str(tmp_path / "t.sqlite")}
    result = finish(start_trainer(store, SAME_SIZE, [5, 30], tiny["examples"], tiny["transform"],
                                  str(tmp_path / "models")), timeout=1500)
    trials = sorted(TrialStore(store).trials("s"), key=lambda t: t.number)
    assert [t.number for t in trials] == list(range(30)) and len(result["trials"]) == 30
    assert all(t.state == COMPLETED for t in trials), [t.error for t in trials if t.state != COMPLETED]
    peaks = [t.peak_rss_mb for t in trials]
    assert peaks[29] <= 1.10 * peaks[4], peaks
    after_5, after_30 = result["loop_peak_mb"]
    assert after_30 <= 1.05 * after_5, result["loop_peak_mb"]


def write_wide_examples(examples_dir: str, transform_dir: str, width: int, rows: dict) -> None:
    """Transformed examples in Preprocess's layout (`x` of `width` floats, `label`), `rows` per split, and the
    schema's split counts to match: the trainer reads them as it reads Preprocess's own."""
    import tensorflow as tf

    def template(label: int) -> tuple[bytes, bytes]:
        """An Example's bytes around its `x` values: they are packed little-endian floats, so a row's Example is
        prefix + x's bytes + suffix (building 110,000 protos of 1,000 floats in Python took about a minute)."""
        example = tf.train.Example(features=tf.train.Features(feature={
            "x": tf.train.Feature(float_list=tf.train.FloatList(value=np.zeros(width))),
            "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label]))})).SerializeToString()
        start = example.index(bytes(4 * width))
        return example[:start], example[start + 4 * width:]

    templates = [template(0), template(1)]
    rng = np.random.default_rng(0)
    for split, n in rows.items():
        os.makedirs(os.path.join(examples_dir, f"Split-{split}"))
        path = os.path.join(examples_dir, f"Split-{split}", "data-00000-of-00001.tfrecord.gz")
        options = tf.io.TFRecordOptions(compression_type="GZIP", compression_level=1)
        with tf.io.TFRecordWriter(path, options) as writer:
            for _ in range(n):  # a row at a time: the large train split would be 560 MB as one float64 array
                x = rng.normal(size=width).astype("<f4")
                prefix, suffix = templates[int(x[0] > 0)]
                writer.write(prefix + x.tobytes() + suffix)
    path = os.path.join(transform_dir, "modelsearch_schema.json")
    with open(path) as f:
        schema = json.load(f)
    with open(path, "w") as f:
        json.dump({**schema, "split_counts": rows}, f)


@pytest.mark.slow
def test_trainer_memory_does_not_grow_with_the_data(tmp_path):
    """10x the rows, under 1.5x the trial's peak memory: the splits stream through tf.data (a bounded shuffle
    buffer) instead of being loaded whole. Rows of 1,000 floats: the large train split alone is 280 MB, so a
    trainer that loaded it would at least double its ~0.5 GB peak."""
    import shutil

    import tensorflow as tf
    from components.preprocess.executor import run_preprocess
    from components.preprocess.schema import infer_schema
    width = 1000
    raw = str(tmp_path / "raw.tfrecord")
    rng = np.random.default_rng(1)
    with tf.io.TFRecordWriter(raw) as writer:  # a raw set of the same width, for a real transform graph
        for i in range(60):
            writer.write(tf.train.Example(features=tf.train.Features(feature={
                "v": tf.train.Feature(float_list=tf.train.FloatList(value=rng.normal(size=width))),
                "y": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"ab"[i % 2:i % 2 + 1]]))}))
                .SerializeToString())
    schema = infer_schema(raw, "y")
    assert schema["input_shape"] == [width]
    base = tmp_path / "base"
    run_preprocess(raw, schema, str(base / "examples"), str(base / "transform"))
    config = {"max_epochs": 1, "patience": 1, "blocks": ["dense"], "knobs": {"batch_size": [256]}}
    peaks = {}
    for scale in (1, 10):
        examples, transform = tmp_path / f"x{scale}" / "examples", tmp_path / f"x{scale}" / "transform"
        shutil.copytree(base / "transform", transform)
        write_wide_examples(str(examples), str(transform), width,
                            {"train": 7000 * scale, "validation": 1500 * scale, "test": 1500 * scale})
        store = {"sqlite": str(tmp_path / f"t{scale}.sqlite")}
        finish(start_trainer(store, config, [1], str(examples), str(transform), str(tmp_path / f"m{scale}")),
               timeout=900)
        [trial] = TrialStore(store).trials("s")
        assert trial.state == COMPLETED, trial.error
        peaks[scale] = trial.peak_rss_mb
    assert peaks[10] < 1.5 * peaks[1], peaks


@pytest.mark.slow
def test_a_trainer_killed_mid_trial_is_reclaimed_by_its_lease(tiny, tmp_path):
    """SIGKILL a trainer while it trains: its trial stays 'running' only until the lease expires; the next
    trainer that asks reclaims it (abandoned, with the reason), it no longer counts against the budget, its
    candidate can be reserved again, and the killed trial's process did not live on to record a result."""
    from modelsearch.config import SearchConfig
    from modelsearch.search import next_trial
    from modelsearch.space import SearchSpace
    store_config = {"sqlite": str(tmp_path / "t.sqlite")}
    slow = {**TINY_SEARCH, "max_epochs": 10000, "patience": 10000}  # trains until killed
    trainer = start_trainer(store_config, slow, [3], tiny["examples"], tiny["transform"], str(tmp_path / "m"),
                            lease_seconds=4.0)
    store = TrialStore(store_config)
    deadline = time.time() + 300
    while not store.trials("s", (RUNNING,)):
        assert time.time() < deadline and trainer.poll() is None, trainer.communicate()[1][-3000:]
        time.sleep(0.5)
    time.sleep(6)  # the trial is training, its lease renewed past its first expiry
    [killed] = store.trials("s", (RUNNING,))
    assert killed.lease_expires > killed.started + 4.0
    trainer.send_signal(signal.SIGKILL)
    trainer.wait()

    time.sleep(5)  # the lease runs out
    config = SearchConfig.from_json(slow)
    space = SearchSpace(config, [3])
    replacement = next_trial(store, "s", config, space, budget=3, lease_seconds=60)
    lost = store.get(killed.trial_id)
    assert lost.state == ABANDONED and "lease expired" in lost.error
    assert replacement.number == killed.number + 1 and replacement.state == RUNNING
    assert [t.trial_id for t in counted(store.trials("s"))] == [replacement.trial_id]
    # The abandoned candidate may be trained again: its second reservation goes through.
    again = store.reserve("s", replacement.number + 1, 1, lost.spec, space.key(lost.spec))
    assert store.get(again).spec == lost.spec
    time.sleep(2)
    assert store.get(killed.trial_id).state == ABANDONED  # the orphaned trial process died with its trainer
