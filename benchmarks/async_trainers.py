"""Asynchronous trainers on one machine: trials per hour with K trainers against one, and memory per trial.

Each configuration is one `modelsearch run` on the digits table (scikit-learn's, written locally), in its
own output directory, same budget N and same seed, one after another in this one invocation (so the
ratios compare runs on the same machine under the same load). From the trial store:
- search throughput: N search trials / (last search trial's end - first search trial's start), the part
  that K changes (Preprocess and the exploit stages run once whatever K is); the whole run's wall time too;
- memory: every trial's peak resident memory (each trial is its own process), by trial number.

    uv run python -m benchmarks.async_trainers --trials 12 --trainers 1,2 --out benchmarks/results/async_trainers.json
    uv run python -m benchmarks.async_trainers --trials 100 --trainers 2 --out benchmarks/results/async_100.json
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from benchmarks.report import machine, publish


def run_search(data: str, out_dir: str, trials: int, trainers: int, seed: int, extra: list[str]) -> dict:
    """One `modelsearch run` (the console script, as a user runs it); its trials as read from the store."""
    from modelsearch.search import counted
    from modelsearch.trialstore import TrialStore

    script = os.path.join(os.path.dirname(sys.executable), "modelsearch")
    started = time.time()
    done = subprocess.run([script, "run", "--data", data, "--label", "digit", "--output-dir", out_dir,
                           "--trials", str(trials), "--trainers", str(trainers), "--seed", str(seed), *extra],
                          capture_output=True, text=True)
    wall = time.time() - started
    if done.returncode != 0:
        raise RuntimeError(f"modelsearch run failed:\n{done.stderr[-3000:]}")
    search = sorted(counted(TrialStore({"sqlite": os.path.join(out_dir, "trials.sqlite")}).trials("default")),
                    key=lambda t: t.number)
    span = max(t.finished for t in search) - min(t.started for t in search)
    keys = [json.dumps(t.spec, sort_keys=True) for t in search if not t.mutation.startswith("reevaluate:")]
    summary = json.load(open(os.path.join(out_dir, "summary.json")))
    return {
        "trainers": trainers, "trials": len(search), "wall_seconds": round(wall, 1),
        "search_seconds": round(span, 1), "trials_per_hour": round(len(search) / span * 3600, 1),
        "mean_trial_seconds": round(statistics.fmean(t.finished - t.started for t in search), 2),
        "mean_epochs": round(statistics.fmean(t.metrics.get("epochs", 0) for t in search), 1),
        "failed": sum(t.state != "completed" for t in search), "duplicates": len(keys) - len(set(keys)),
        "workers": len({t.worker for t in search}),
        "peak_rss_mb": [round(t.peak_rss_mb, 1) for t in search],
        "best_val_accuracy": summary["best"]["metrics"]["val_accuracy"],
        "best_test_accuracy": summary["best"]["metrics"]["test_accuracy"],
    }


def memory_check(peaks: list[float]) -> dict:
    """The bar: the last trial's peak within 10% of the fifth's (and the 50th's, in a longer run)."""
    result = {"fifth_mb": peaks[4], "last_mb": peaks[-1], "last_over_fifth": round(peaks[-1] / peaks[4], 3)}
    if len(peaks) >= 50:
        result.update(fiftieth_mb=peaks[49], fiftieth_over_fifth=round(peaks[49] / peaks[4], 3))
    return result


def run(trials: int, trainers: list[int], seed: int, extra: list[str]) -> dict:
    from pipelines.demo_data import write_demo

    with tempfile.TemporaryDirectory(prefix="async-") as work:
        data = write_demo("digits", os.path.join(work, "data"))
        runs = [run_search(data, os.path.join(work, f"k{k}"), trials, k, seed, extra) for k in trainers]
    results = {"benchmark": "async_trainers", "dataset": "digits", "trials": trials, "seed": seed, "extra": extra,
               "machine": machine(), "date": datetime.date.today().isoformat(), "runs": runs}
    if len(runs) > 1:
        results["speedup"] = {f"K={r['trainers']}/K={runs[0]['trainers']}":
                              round(r["trials_per_hour"] / runs[0]["trials_per_hour"], 2) for r in runs[1:]}
    if trials >= 5:
        results["memory"] = {f"K={r['trainers']}": memory_check(r["peak_rss_mb"]) for r in runs}
    return results


def markdown(results: dict) -> str:
    rows = ["| trainers K | search trials | trials / hour | search phase (s) | whole run (s) | mean trial (s) | "
            "mean epochs | best val / test accuracy | duplicates | failed |",
            "|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|"]
    for r in results["runs"]:
        rows.append(f"| {r['trainers']} | {r['trials']} | {r['trials_per_hour']:.0f} | {r['search_seconds']:.0f} | "
                    f"{r['wall_seconds']:.0f} | {r['mean_trial_seconds']:.1f} | {r['mean_epochs']:.1f} | "
                    f"{r['best_val_accuracy']:.4f} / {r['best_test_accuracy']:.4f} | {r['duplicates']} | "
                    f"{r['failed']} |")
    for name, ratio in results.get("speedup", {}).items():
        rows.append(f"\nSpeed-up {name}: {ratio:.2f}x trials per hour.")
    for name, m in results.get("memory", {}).items():
        rows.append(f"\nMemory ({name}): trial 5 peaked at {m['fifth_mb']:.0f} MiB, the last at {m['last_mb']:.0f} MiB "
                    f"({m['last_over_fifth']:.3f}x)" + (f", trial 50 at {m['fiftieth_mb']:.0f} MiB "
                                                        f"({m['fiftieth_over_fifth']:.3f}x)" if "fiftieth_mb" in m else "")
                    + ".")
    return "\n".join(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.async_trainers", description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=12, help="the budget N of every run")
    parser.add_argument("--trainers", default="1,2", help="comma-separated K, one run each, in this order")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-epochs", type=int, help="passed on to modelsearch run (default: its own)")
    parser.add_argument("--config", help="a search configuration file passed on to modelsearch run (e.g. fewer "
                        "exploit models: the measures here are of the search phase)")
    parser.add_argument("--out", default="benchmarks/results/async_trainers.json")
    args = parser.parse_args(argv)
    extra = (["--max-epochs", str(args.max_epochs)] if args.max_epochs else []) + \
        (["--config", os.path.abspath(args.config)] if args.config else [])
    results = run(args.trials, [int(k) for k in args.trainers.split(",")], args.seed, extra)
    if args.config:  # what the runs were given, not only the path
        with open(args.config) as f:
            results["config"] = json.load(f)
    publish(results, args.out, markdown(results))


if __name__ == "__main__":
    main()
