"""Proposal cost: seconds per `next_trial` (propose one candidate and reserve it) as a study grows.

A trainer asks for its next trial every time one finishes, and `next_trial` reads every trial of the
study to decide, so its cost grows with the study. This fills a study with 1,000 and with 10,000 completed
search trials (specs of the default space for a 64-feature table: random ones, then mutations of the
best so far and a few re-evaluations, each with its metrics, reservation, model and lineage as
reserve + complete_trial record them, written in batches), then times `next_trial` (default beam
strategy) a few times in one trainer process, completing each trial before the next call as a trainer
does. On SQLite and on a private MariaDB server (benchmarks/mariadb.py, as the tests start it). The
first call of a trainer process reads the whole study ("first"); median and max are over the later calls,
which re-read only what changed (modelsearch.search.StudyView).

    uv run python -m benchmarks.proposal_cost --out benchmarks/results/proposal_cost.json
"""
from __future__ import annotations

import argparse
import collections
import datetime
import gc
import hashlib
import json
import os
import random
import sqlite3
import statistics
import tempfile
import time

from benchmarks.mariadb import MariaDB
from benchmarks.report import machine, publish
from modelsearch.config import SearchConfig
from modelsearch.search import next_trial
from modelsearch.trialstore import COMPLETED, SEARCH, TrialStore

STUDY = "bench"
BATCH = 250       # trials per MLMD write while filling
REEVALUATE = 0.03  # share of re-evaluations (the beam's default allows up to 10%)


def fill(store: TrialStore, space, n: int, seed: int = 0) -> float:
    """Writes `n` completed search trials into the study, as reserve + complete_trial would (through the
    store's own record builder and types), in batches; returns the seconds it took. Parents and
    re-evaluated trials come from earlier batches."""
    from ml_metadata.proto import metadata_store_pb2 as mlmd

    rng, mlmd_store, context = random.Random(seed), store._store, store._study_context(STUDY)
    done = []                     # (trial id, spec, objective) of the trials written so far
    seen = collections.Counter()  # evaluations of each key
    models = {}                   # trial id -> its model artifact's id
    start = time.perf_counter()
    for first in range(0, n, BATCH):
        best = sorted(done, key=lambda d: -d[2])[:10]
        executions, artifacts, edges = [], [], []
        for number in range(first, min(n, first + BATCH)):
            parent, mutation, spec = None, "random", None
            if best and rng.random() < REEVALUATE:
                trial_id, spec, _ = rng.choice(best)
                mutation = f"reevaluate:{trial_id}"
            elif best:
                for _ in range(100):
                    trial_id, parent_spec, _ = rng.choice(best)
                    child = space.mutate(parent_spec, rng, SearchConfig().p_deeper)
                    if child and space.key(child[0]) not in seen:
                        parent, (spec, mutation) = trial_id, child
                        break
            while spec is None or (not mutation.startswith("reevaluate") and space.key(spec) in seen):
                spec, mutation = space.random_spec(rng), "random"
            key = space.key(spec)
            evaluation = seen[key]
            seen[key] += 1
            execution = store._new_trial(STUDY, spec, parent, mutation, number, None, SEARCH, None, 120.0)
            execution.name = f"{STUDY}/search/{number}"
            execution.last_known_state = mlmd.Execution.COMPLETE
            props = execution.properties
            objective = rng.uniform(0.5, 0.95)
            props["number"].int_value = number
            props["state"].string_value = COMPLETED
            props["num_params"].int_value = rng.randrange(10_000, 2_000_000)
            props["model_uri"].string_value = f"/models/trial_{number}"
            props["finished"].double_value = time.time()
            props["train_seconds"].double_value = rng.uniform(5, 60)
            props["peak_rss_mb"].double_value = rng.uniform(300, 900)
            for name, value in {"objective": objective, "val_accuracy": objective, "val_loss": 1 - objective,
                                "accuracy": objective + 0.02, "loss": 0.9 - objective}.items():
                execution.custom_properties["metric." + name].double_value = value
            i = len(executions)
            executions.append(execution)
            digest = hashlib.sha256(key.encode()).hexdigest()
            artifacts.append(mlmd.Artifact(type_id=store._reservation_type, name=f"{STUDY}/{digest}/{evaluation}",
                                           uri="", state=mlmd.Artifact.LIVE))
            edges.append((i, len(artifacts) - 1, mlmd.Event(type=mlmd.Event.INTERNAL_OUTPUT)))
            model = mlmd.Artifact(type_id=store._model_type, uri=props["model_uri"].string_value,
                                  state=mlmd.Artifact.LIVE)
            artifacts.append(model)
            edges.append((i, len(artifacts) - 1, mlmd.Event(type=mlmd.Event.OUTPUT)))
            if parent is not None:
                edges.append((i, None, mlmd.Event(type=mlmd.Event.INPUT, artifact_id=models[parent])))
        execution_ids, artifact_ids, _ = mlmd_store.put_lineage_subgraph(
            executions, artifacts, [context], edges, reuse_context_if_already_exist=True)
        # Model artifacts carry their trial's id, which is known only now: set it in a second write.
        new_models = [a for a in artifacts if a.type_id == store._model_type]
        model_ids = [i for a, i in zip(artifacts, artifact_ids) if a.type_id == store._model_type]
        for trial_id, model, model_id in zip(execution_ids, new_models, model_ids):
            model.id = model_id
            model.properties["trial_id"].int_value = trial_id
            models[trial_id] = model_id
        mlmd_store.put_artifacts(new_models)
        for trial_id, execution in zip(execution_ids, executions):
            done.append((trial_id, json.loads(execution.properties["spec"].string_value),
                         execution.custom_properties["metric.objective"].double_value))
    return time.perf_counter() - start


def age(config: dict, server: MariaDB | None, seconds: float) -> None:
    """Stamps every trial `seconds` older in MLMD, as if the study had run for a while: a trainer re-reads
    the trials written in the last few minutes (modelsearch.search.REREAD_SECONDS), and a study of 10,000
    trials did not write them all in the last few minutes. MLMD's API cannot set its timestamps: SQL does."""
    ms = int(seconds * 1000)
    statement = (f"UPDATE Execution SET create_time_since_epoch = create_time_since_epoch - {ms}, "
                 f"last_update_time_since_epoch = last_update_time_since_epoch - {ms}")
    if server is None:
        with sqlite3.connect(config["sqlite"]) as db:
            db.execute(statement)
    else:
        server.sql(config["mysql"]["database"], statement)


def time_proposals(config: dict, server: MariaDB | None, space, n: int, repeats: int) -> dict:
    """Fills a study with `n` trials, then times `repeats` calls of next_trial by one trainer process."""
    store = TrialStore(config)
    fill_seconds = fill(store, space, n)
    age(config, server, 3600)
    store = TrialStore(config)  # a trainer that starts now: nothing cached
    gc.freeze()  # as modelsearch/trainer_loop.py's run_trainer does before its first proposal
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        trial = next_trial(store, STUDY, SearchConfig(), space, budget=n + repeats)
        seconds.append(time.perf_counter() - start)
        assert trial is not None and trial.number == n + len(seconds) - 1, trial
        store.complete_trial(trial.trial_id, {"objective": 0.5}, 1, 0, "", 0.0)
    later = seconds[1:] or seconds
    return {"trials": n, "fill_seconds": round(fill_seconds, 2), "first": round(seconds[0], 4),
            "median": round(statistics.median(later), 4), "max": round(max(later), 4),
            "seconds": [round(s, 4) for s in seconds]}


def run(sizes: list[int], repeats: int, backends: list[str]) -> dict:
    from google.protobuf.internal import api_implementation

    from modelsearch.space import SearchSpace
    space = SearchSpace(SearchConfig(), (64,))
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for backend in backends:
            server = MariaDB().start() if backend == "mariadb" else None
            try:
                results[backend] = {}
                for n in sizes:
                    config = (server.store_config(f"bench_{n}") if server
                              else {"sqlite": os.path.join(tmp, f"bench_{n}.sqlite")})
                    results[backend][str(n)] = r = time_proposals(config, server, space, n, repeats)
                    print(f"{backend} {n}: {r}", flush=True)
            finally:
                if server:
                    server.stop()
    return {"benchmark": "proposal_cost", "strategy": SearchConfig().strategy, "repeats": repeats,
            "protobuf": api_implementation.Type(), "machine": machine(), "date": datetime.date.today().isoformat(),
            "backends": results}


def markdown(results: dict) -> str:
    rows = ["| trial store | trials in the study | median s / proposal | max s | first call of a trainer, s |",
            "|---|---:|---:|---:|---:|"]
    for backend, sizes in results["backends"].items():
        for n, r in sizes.items():
            rows.append(f"| {'SQLite' if backend == 'sqlite' else 'MariaDB'} | {int(n):,} | {r['median']:.3f} | "
                        f"{r['max']:.3f} | {r['first']:.3f} |")
    return "\n".join(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.proposal_cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000", help="comma-separated numbers of completed trials")
    parser.add_argument("--repeats", type=int, default=11, help="timed next_trial calls per size (the first is cold)")
    parser.add_argument("--backends", default="sqlite,mariadb", help="comma-separated: sqlite, mariadb")
    parser.add_argument("--out", default="benchmarks/results/proposal_cost.json")
    args = parser.parse_args(argv)
    results = run([int(s) for s in args.sizes.split(",")], args.repeats, args.backends.split(","))
    publish(results, args.out, markdown(results))


if __name__ == "__main__":
    main()
