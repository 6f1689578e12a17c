"""Early stopping across trials, measured: our search with the median stopping rule on and off.

Issue 11 asks for the same accuracy in fewer total epochs. NAS-Bench-201's table (benchmarks/nasbench201.py)
has one accuracy per cell and no learning curves, so the rule is measured on real training instead: for each
dataset and seed, `modelsearch run` twice on the same splits with the same budget and seed (the peers
benchmark's, benchmarks/peers.py), once with `early_stopping.rule` "median" (the default) and once "none",
one after the other in this process (the same machine load for both). Reported per run, from the trial store:
the search trials' epochs (the rule acts on search trials only), how many it stopped, and the accuracies of the
best search trial (validation: what the beam chose on) and of the model the default push policy picks (test).

    uv run python -m benchmarks.early_stopping --models 30 --seeds 0,1,2 --out benchmarks/results/early_stopping.json

The peers benchmark's runs of ours are runs with the rule (the default) on the same data, splits, seeds and budget:
`--median-from peers.json` takes them (counted from their trial stores in `--peers-workdir`) and trains only the
runs without it, half the work; their search time is then not compared (another time, another load).
"""
from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys

from benchmarks import peers

RULES = ("median", "none")
TABLES = ("digits", "breast_cancer", "mnist1d")


def search_trials(output_dir: str) -> dict:
    """`search_counts` of the run in `output_dir`, from its trial store."""
    from modelsearch.trialstore import TrialStore

    return search_counts(TrialStore({"sqlite": os.path.join(output_dir, "trials.sqlite")}).trials(peers.STUDY))


def search_counts(trials) -> dict:
    """Epochs and counts of a run's search trials (not the replicas and students the exploit stages train)."""
    from modelsearch.trialstore import SEARCH, STOPPED

    search = [t for t in trials if t.kind == SEARCH]
    return {"search_trials": len(search), "search_epochs": peers.epochs_run(search),
            "stopped": sum(t.state == STOPPED for t in search)}


def recounted(result: dict, workdir: str) -> dict:
    """An earlier run's counts read again from its trial store, when it is still in `workdir` (results written
    before 2026-12-03 read epochs from the trials' metrics, which said 0 for a trial that kept its parent's
    weights; the curves have every epoch)."""
    output_dir = peers.cell_dir(workdir, result["dataset"], result["seed"], result["rule"])
    if "from" in result or not os.path.exists(os.path.join(output_dir, "trials.sqlite")):
        return result
    return {**result, **search_trials(output_dir)}


def from_peers(path: str, budget: dict, peers_workdir: str) -> list[dict]:
    """The median rule's runs taken from a peers benchmark's file: its runs of ours are this benchmark's runs with
    the rule (the default settings, the same data, splits, seed and budget), so each needs only its run without
    the rule. A run counts only where its trial store is still in `peers_workdir` (the counts come from it)."""
    results = []
    for r in peers.finished_runs(path, budget, ("ours",)):
        trials = peers.own_trials(r, peers_workdir)
        if trials is not None:
            results.append({"dataset": r["dataset"], "seed": r["seed"], "rule": "median", "commit": r["commit"],
                            "from": os.path.basename(path), **search_counts(trials), "wall_s": r["wall_s"],
                            "search_s": r["search_s"], "best": r["best"], "pushed": r["pushed"]})
    return results


def run_pair(dataset: str, seed: int, budget: dict, workdir: str, rules=RULES, on_result=None) -> list[dict]:
    data = peers.write_data(dataset, os.path.join(workdir, "data"))
    results = []
    for rule in rules:
        output_dir = peers.cell_dir(workdir, dataset, seed, rule)
        if os.path.exists(output_dir):
            import shutil
            shutil.rmtree(output_dir)
        base = {"dataset": dataset, "seed": seed, "rule": rule, "commit": peers._commit()}
        try:
            ours = peers.run_ours(data, output_dir, seed, budget, route=peers.route_args(dataset),
                                  label=peers.route(dataset, "label", peers.LABEL),
                                  settings={"early_stopping": {"rule": rule}})
            result = {**base, **search_trials(output_dir), "wall_s": ours["wall_s"],
                      "search_s": ours["search_s"], "best": ours["best"], "pushed": ours["pushed"]}
        except RuntimeError as e:
            result = {**base, "error": str(e)}
        print(_line(result), file=sys.stderr, flush=True)
        results.append(result)
        if on_result:
            on_result(result)
    return results


def _line(r: dict) -> str:
    head = f"[early_stopping] {r['dataset']} seed {r['seed']} rule {r['rule']}"
    if "error" in r:
        return f"{head}: FAILED {r['error']}"
    return (f"{head}: search epochs {r['search_epochs']} ({r['stopped']} of {r['search_trials']} stopped), best "
            f"val {r['best']['val_accuracy']:.4f}, pushed test {r['pushed']['test_accuracy']:.4f}, "
            f"wall {r['wall_s']:.0f}s")


def summarize(runs: list[dict]) -> list[dict]:
    """Per dataset, over the seeds that have both rules: epochs with the rule / without, and the accuracy
    differences (with - without)."""
    by = {(r["dataset"], r["seed"], r["rule"]): r for r in runs if "error" not in r}
    rows = []
    for dataset in dict.fromkeys(r["dataset"] for r in runs):
        seeds = sorted({s for d, s, _ in by if d == dataset and all((d, s, rule) in by for rule in RULES)})
        if not seeds:
            continue
        on, off = ([by[(dataset, s, rule)] for s in seeds] for rule in RULES)

        def mean(rs, get):
            return statistics.fmean(get(r) for r in rs)
        rows.append({
            "dataset": dataset, "seeds": seeds,
            "epochs_on": mean(on, lambda r: r["search_epochs"]), "epochs_off": mean(off, lambda r: r["search_epochs"]),
            "epochs_ratio": sum(r["search_epochs"] for r in on) / sum(r["search_epochs"] for r in off),
            "stopped": mean(on, lambda r: r["stopped"]),
            "search_s_ratio": _time_ratio(on, off),
            "best_val_on": mean(on, lambda r: r["best"]["val_accuracy"]),
            "best_val_off": mean(off, lambda r: r["best"]["val_accuracy"]),
            "pushed_test_on": mean(on, lambda r: r["pushed"]["test_accuracy"]),
            "pushed_test_off": mean(off, lambda r: r["pushed"]["test_accuracy"])})
    return rows


def _time_ratio(on: list[dict], off: list[dict]) -> float | None:
    """Search time with the rule / without, over the pairs that ran one after the other (a run taken from the
    peers benchmark ran at another time, under another load)."""
    pairs = [(a, b) for a, b in zip(on, off) if "from" not in a and "from" not in b]
    return sum(a["search_s"] for a, _ in pairs) / sum(b["search_s"] for _, b in pairs) if pairs else None


def markdown(results: dict) -> str:
    rows = ["| dataset | seeds | search epochs: median rule / none | ratio | trials stopped | search time ratio | "
            "best trial's val accuracy: rule / none | pushed model's test accuracy: rule / none |",
            "|---|---|---:|---:|---:|---:|---:|---:|"]
    for s in results["summary"]:
        rows.append(f"| {s['dataset']} | {','.join(map(str, s['seeds']))} | {s['epochs_on']:.0f} / "
                    f"{s['epochs_off']:.0f} | {s['epochs_ratio']:.2f} | {s['stopped']:.1f} | "
                    f"{'-' if s['search_s_ratio'] is None else format(s['search_s_ratio'], '.2f')} | "
                    f"{s['best_val_on']:.4f} / {s['best_val_off']:.4f} | "
                    f"{s['pushed_test_on']:.4f} / {s['pushed_test_off']:.4f} |")
    return "\n".join(rows)


def run(datasets, seeds, budget: dict, workdir: str, out: str | None = None, resume: bool = False,
        median_from=(), peers_workdir: str = "runs/bench-peers") -> dict:
    """Both rules on every dataset and seed; `resume` keeps the runs `out` holds for this budget, `median_from`
    takes the rule's runs from peers benchmark files (`from_peers`), and only what is missing runs; the file is
    rewritten after every run."""
    from benchmarks.report import keeper, machine, save_json

    kept = [recounted(r, workdir) for r in peers.finished_runs(out, budget)] if resume else []
    for path in median_from:
        have = {(r["dataset"], r["seed"], r["rule"]) for r in kept}
        kept += [r for r in from_peers(path, budget, peers_workdir)
                 if (r["dataset"], r["seed"], "median") not in have and r["dataset"] in datasets
                 and r["seed"] in seeds]
    results = {"benchmark": "early_stopping", "date": datetime.date.today().isoformat(), "machine": machine(),
               "commit": peers._commit(), "settings": {"datasets": list(datasets), "seeds": list(seeds),
                                                      "budget": budget}, "runs": list(kept)}

    keep = keeper(results, out, summarize)  # after every run

    for dataset in datasets:
        for seed in seeds:
            have = {r["rule"] for r in kept if (r["dataset"], r["seed"]) == (dataset, seed)}
            missing = [rule for rule in RULES if rule not in have]
            if missing:
                run_pair(dataset, seed, budget, workdir, missing, on_result=keep)
    results["summary"] = summarize(results["runs"])
    if out:
        save_json(results, out)
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.early_stopping", description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", help="comma-separated, from " + ", ".join(peers.DATASETS)
                        + f" (default: {','.join(TABLES)}, or none when --data is given)")
    parser.add_argument("--data", metavar="PATH", nargs="+", default=[],
                        help="your own data too (a CSV table of classes or a folder of class folders of images)")
    parser.add_argument("--label", default=peers.LABEL, help="the label column of the --data tables")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (splits, search and training)")
    parser.add_argument("--models", type=int, default=30, help="N, as in the peers benchmark")
    parser.add_argument("--trainers", type=int, default=2, help="our trainers at once K")
    parser.add_argument("--replicas", type=int, default=1, help="our Ensembler's replicas of the best trial")
    parser.add_argument("--max-epochs", type=int, default=30, help="epoch cap of every model")
    parser.add_argument("--patience", type=int, default=5, help="early-stopping patience of every model")
    parser.add_argument("--workdir", default="runs/bench-early-stopping", help="CSV files and our runs")
    parser.add_argument("--out", default="benchmarks/results/early_stopping.json", help="where the JSON goes")
    parser.add_argument("--resume", action="store_true", help="keep the runs --out holds for this budget")
    parser.add_argument("--median-from", metavar="PEERS_JSON", nargs="+", default=[],
                        help="take the runs with the rule from peers benchmark files of the same budget (their runs "
                             "of ours), so only the runs without it train")
    parser.add_argument("--peers-workdir", default="runs/bench-peers",
                        help="that peers benchmark's --workdir (the trial stores its runs are counted from)")
    parser.add_argument("--markdown", metavar="JSON", help="only print the table of an earlier result file")
    args = parser.parse_args(argv)
    if args.markdown:
        import json
        with open(args.markdown) as f:
            print(markdown(json.load(f)))
        return
    datasets = peers.chosen_datasets(parser, args.datasets, args.data, args.label, TABLES)
    budget = peers.budget_of(args.models, args.trainers, args.replicas, args.max_epochs, args.patience)
    for path in args.median_from:
        if not os.path.exists(path):
            parser.error(f"--median-from {path}: no such file; give a result file of benchmarks.peers")
    results = run(datasets, [int(s) for s in args.seeds.split(",")], budget, args.workdir, args.out, args.resume,
                  args.median_from, args.peers_workdir)
    print(markdown(results))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
