"""`modelsearch trials`, `show` and `report`: what a study holds, for people.

Read-only and light: the trial store is ML Metadata only, so these commands never import TensorFlow.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import time

from modelsearch.errors import UserError
from modelsearch.strategies.base import score
from modelsearch.trialstore import (COMPLETED, ENSEMBLE, EVIDENCE, REPLICA, SEARCH, STUDENT, STUDY_TYPE, TrialStore,
                                    open_store)

COMMANDS = ("trials", "show", "report")
KINDS = (SEARCH, REPLICA, ENSEMBLE, STUDENT)
STUDY_FILE = "study.json"     # written by `modelsearch run` (pipelines.cli.STUDY_FILE)


def add_commands(commands) -> None:
    def command(name, help_text):
        parser = commands.add_parser(name, help=help_text)
        parser.add_argument("--output-dir", required=True, help="the output directory of `modelsearch run`")
        parser.add_argument("--study", help="the study's name (default: the one `modelsearch run` last wrote there)")
        return parser

    trials = command("trials", "the study's leaderboard: every trial, best first")
    trials.add_argument("--all", action="store_true", help="trials on every data version, not only the current one")
    trials.add_argument("--sort", choices=("objective", "trial"), default="objective",
                        help="objective: completed trials best first, then the rest (default); trial: by id")
    show = command("show", "one trial's whole record and its lineage")
    show.add_argument("trial", type=int, help="the trial's id (the `trial` column of `modelsearch trials`)")
    report = command("report", "one self-contained HTML page of the study: plots, lineage, leaderboard")
    report.add_argument("--out", help="where to write it (default OUTPUT_DIR/report.html)")


def run(args) -> int:
    store, study = open_study(args.output_dir, args.study)
    if args.command == "trials":
        print(format_trials(store, study, every_version=args.all, sort=args.sort))
    elif args.command == "show":
        print(format_show(store, study, args.trial))
    else:
        from pipelines.report import write_report
        out = args.out or os.path.join(args.output_dir, "report.html")
        write_report(store, study, out)
        print(out)
    return 0


# ---- opening a study --------------------------------------------------------------------------------------------

def study_names(store: TrialStore) -> list[str]:
    """The studies in the store (one MLMD context each)."""
    from ml_metadata import metadata_store

    from modelsearch.trialstore import connection_config
    contexts = metadata_store.MetadataStore(connection_config(store.config)).get_contexts_by_type(STUDY_TYPE)
    return sorted(c.name for c in contexts)


def open_study(output_dir: str, study: str | None) -> tuple[TrialStore, str]:
    """The local trial store of `output_dir` and the study to read; UserError when either is missing."""
    from pipelines.local_runner import paths

    path = paths(output_dir)["trial_store"]["sqlite"]
    if not os.path.isfile(path):  # checked first: opening the store would create an empty one
        raise UserError(f"{output_dir} holds no study (no {os.path.basename(path)}); run `modelsearch run ... "
                        f"--output-dir {output_dir}` first")
    store = open_store({"sqlite": path})
    names = study_names(store)
    if study is None:
        study = _last_study(output_dir) or (names[0] if len(names) == 1 else "default")
    if study not in names:
        present = ", ".join(repr(n) for n in names) or "none"
        raise UserError(f"no study {study!r} in {path}; studies there: {present} (pass --study NAME)")
    return store, study


def _last_study(output_dir: str) -> str | None:
    try:
        with open(os.path.join(output_dir, STUDY_FILE)) as f:
            return json.load(f).get("study")
    except (OSError, ValueError, AttributeError):
        return None


# ---- what a trial is, in one line -------------------------------------------------------------------------------

def architecture(trial) -> str:
    """Block names joined with +, "linear" for a spec with no block, or an ensemble's method and members."""
    spec = trial.spec or {}
    if trial.kind == ENSEMBLE or "members" in spec:
        return f"{spec.get('method', 'ensemble')}({','.join(str(m) for m in spec.get('members', []))})"
    names = [b.get("name", "?") for b in spec.get("blocks", []) if isinstance(b, dict)]
    if not names and spec.get("blocks") == []:
        return "linear"
    return "+".join(names) or "-"


def reason(trial, width: int = 50) -> str:
    """The last line of a trial's error (a traceback's exception, or the recorded reason), shortened; an
    exception's module path goes (tensorflow.python.framework.errors_impl.ResourceExhaustedError: ...)."""
    lines = [line.strip() for line in trial.error.splitlines() if line.strip()]
    return shorten(re.sub(r"^(?:[A-Za-z_]\w*\.)+(\w+:)", r"\1", lines[-1]), width) if lines else ""


def shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."


def is_classification(trials) -> bool:
    return any("val_accuracy" in t.metrics for t in trials)


def metric_columns(trials) -> list[tuple[str, str]]:
    """(metric, header): accuracy for classification, loss for regression."""
    if is_classification(trials):
        return [("val_accuracy", "val_acc"), ("test_accuracy", "test_acc")]
    return [("val_loss", "val_loss"), ("test_loss", "test_loss")]


def number(value) -> str:
    return "" if value is None else f"{value:.4f}"


def ranked(trials, sort: str = "objective") -> tuple[list, dict]:
    """(trials in leaderboard order, {trial_id: rank}). Ranks count completed trials by objective within their
    data version (only trials on the same data are comparable); the newest version comes first."""
    ranks, by_version = {}, {}
    for t in trials:
        by_version.setdefault(t.data_version, []).append(t)
    for group in by_version.values():
        done = sorted((t for t in group if t.state == COMPLETED), key=lambda t: (-score(t), t.trial_id))
        ranks.update((t.trial_id, i) for i, t in enumerate(done, 1))
    if sort == "trial":
        return sorted(trials, key=lambda t: t.trial_id), ranks
    return sorted(trials, key=lambda t: (-t.data_version, ranks.get(t.trial_id, len(trials) + 1), t.trial_id)), ranks


def study_trials(store: TrialStore, study: str, every_version: bool = False) -> list:
    trials = store.trials(study) if every_version else store.current_trials(study)
    return [t for t in trials if t.kind in KINDS]


def state_counts(trials) -> dict:
    counts = {}
    for t in trials:
        counts[t.state] = counts.get(t.state, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (kv[0] != COMPLETED, kv[0])))


# ---- `modelsearch trials` ---------------------------------------------------------------------------------------

def leaderboard_rows(trials, sort: str = "objective", with_version: bool = False) -> tuple[list, list]:
    """(headers, rows of strings): shared by the text table and the report's HTML table."""
    columns = metric_columns(trials)
    order, ranks = ranked(trials, sort)
    headers = ["rank", "trial", "state", "architecture", *(h for _, h in columns), "params", "parent", "mutation",
               "reason"]
    rows = []
    for t in order:
        rows.append([str(ranks.get(t.trial_id, "-")), str(t.trial_id), t.state, shorten(architecture(t), 40),
                     *(number(t.metrics.get(m)) for m, _ in columns), f"{t.num_params:,}" if t.num_params else "",
                     "" if t.parent_id is None else str(t.parent_id), shorten(t.mutation, 32), reason(t)])
    if with_version:
        headers.insert(2, "data")
        for row, t in zip(rows, order):
            row.insert(2, str(t.data_version))
    return headers, rows


def table(headers: list[str], rows: list[list[str]]) -> str:
    """A plain-text table; numbers right-aligned."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    numeric = [bool(rows) and all(_numeric(r[i]) for r in rows) for i in range(len(headers))]

    def line(cells):
        return "  ".join(c.rjust(w) if n else c.ljust(w) for c, w, n in zip(cells, widths, numeric)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def _numeric(cell: str) -> bool:
    return cell in ("", "-") or cell.replace(",", "").replace(".", "", 1).lstrip("-").isdigit()


def format_trials(store: TrialStore, study: str, every_version: bool = False, sort: str = "objective") -> str:
    trials = study_trials(store, study, every_version)
    versions = sorted({t.data_version for t in trials})
    where = "every data version" if every_version else f"data version {store.data_version(study)}"
    counts = ", ".join(f"{n} {state}" for state, n in state_counts(trials).items()) or "no trials yet"
    headers, rows = leaderboard_rows(trials, sort, with_version=len(versions) > 1)
    return f"study {study!r}, {where}: {counts}\n{table(headers, rows)}"


# ---- `modelsearch show` -----------------------------------------------------------------------------------------

def format_show(store: TrialStore, study: str, trial_id: int) -> str:
    trials = store.trials(study)
    by_id = {t.trial_id: t for t in trials}
    if trial_id not in by_id:
        ids = sorted(by_id)
        valid = f"its trials are {ids[0]}-{ids[-1]} ({len(ids)} trials)" if ids else "it has no trials yet"
        raise UserError(f"no trial {trial_id} in study {study!r}: {valid}; `modelsearch trials` lists them")
    t = by_id[trial_id]
    return "\n".join([*_record(t), *_spec(t), *_curve(t.curve), *_lineage(store, t, by_id), *_error(t)])


def summary_line(t) -> str:
    score_text = ", ".join(f"{header} {t.metrics[m]:.4f}" for m, header in metric_columns([t]) if m in t.metrics)
    return (f"trial {t.trial_id} [{t.state}] {t.mutation or '-'}: {architecture(t)}"
            + (f", {score_text}" if score_text else "") + (f", {reason(t, 50)}" if t.error else ""))


def _when(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds)) if seconds else "-"


def _record(t) -> list[str]:
    skip = {"spec", "metrics", "curve", "error", "distillation"}  # shown in their own sections below
    lines = [f"trial {t.trial_id} of study {t.study!r}: {t.kind} trial"
             + (f" #{t.number}" if t.number >= 0 else "") + f", {t.state}", ""]
    for field in dataclasses.fields(t):
        if field.name in skip:
            continue
        value = getattr(t, field.name)
        if field.name in ("started", "finished", "lease_expires"):
            value = _when(value)
        elif field.name in ("num_params", "num_inherited"):
            value = f"{value:,}"
        elif field.name == "train_seconds":
            value = f"{value:.1f} s"
        elif value is None or value == "":
            value = "-"
        lines.append(f"  {field.name:<14}{value}")
    lines.append(f"  {'distillation':<14}{json.dumps(t.distillation, sort_keys=True) if t.distillation else '-'}")
    lines += ["", "metrics"] + ([f"  {k:<14}{v:.6g}" for k, v in sorted(t.metrics.items())] or ["  -"])
    return lines


def _spec(t) -> list[str]:
    spec = dict(t.spec or {})
    lines = ["", f"architecture  {architecture(t)}"]
    for i, block in enumerate(spec.pop("blocks", [])):
        params = " ".join(f"{k}={v}" for k, v in sorted((block.get("params") or {}).items()))
        lines.append(f"  block {i}  {block.get('name', '?'):<16}{params}")
    knobs = spec.pop("knobs", {}) or {}
    compared = spec.pop("compared", None)  # an ensemble's methods, each judged on validation
    for key, value in sorted(spec.items()):  # head; an ensemble's method, members, weights
        if isinstance(value, list):
            value = [round(v, 4) if isinstance(v, float) else v for v in value]
        lines.append(f"  {key:<14}{shorten(value if isinstance(value, str) else json.dumps(value), 200)}")
    if isinstance(compared, dict):
        lines.append(f"  {'compared':<14}" + ", ".join(
            f"{m} {c.get('metrics', {}).get('objective', float('nan')):.4f}" for m, c in compared.items()))
    if knobs:
        lines += ["knobs"] + [f"  {k:<14}{v}" for k, v in sorted(knobs.items())]
    return lines


def _curve(curve: list[dict], keep: int = 3) -> list[str]:
    """Every epoch when few; else the first and last `keep` and the best (lowest val_loss), marked *."""
    if not curve:
        return ["", "curve         - (none recorded)"]
    keys = [k for k in ("loss", "val_loss", "accuracy", "val_accuracy") if any(k in e for e in curve)]
    keys += sorted({k for e in curve for k in e} - {"epoch", *keys})
    with_loss = [i for i, e in enumerate(curve) if isinstance(e.get("val_loss"), (int, float))]
    best = min(with_loss, key=lambda i: curve[i]["val_loss"], default=None)
    shown = sorted(set(range(len(curve))) if len(curve) <= 2 * keep + 2 else
                   {*range(keep), *range(len(curve) - keep, len(curve)), *([best] if best is not None else [])})
    rows, previous = [], -1
    for i in shown:
        if i > previous + 1:
            rows.append(["..."] + [""] * len(keys))
        e = curve[i]
        rows.append([f"{e.get('epoch', i + 1)}{'*' if i == best else ''}",
                     *(f"{e[k]:.4f}" if isinstance(e.get(k), (int, float)) else str(e.get(k, "")) for k in keys)])
        previous = i
    text = table(["epoch", *keys], rows)
    return ["", f"curve ({len(curve)} epochs; * lowest val_loss)", *("  " + line for line in text.splitlines())]


def _lineage(store: TrialStore, t, by_id: dict) -> list[str]:
    chain, seen = [t], {t.trial_id}
    while chain[-1].parent_id is not None and chain[-1].parent_id not in seen:
        parent = by_id.get(chain[-1].parent_id)
        if parent is None:
            chain.append(None)  # a parent outside this study (should not happen): say so, stop
            break
        seen.add(parent.trial_id)
        chain.append(parent)
    lines = ["", "lineage (root first)"]
    for depth, trial in enumerate(reversed(chain)):
        mark = "> " if trial is t else "  "
        lines.append(f"{mark}{'  ' * depth}{'- ' if depth else ''}"
                     + (summary_line(trial) if trial else f"trial {chain[-2].parent_id} (not in this study)"))
    children = [c for c in by_id.values() if c.parent_id == t.trial_id]
    lines += ["children"] + ([f"  {summary_line(c)}" for c in children] or ["  -"])
    if t.teacher_id is not None:
        teacher = by_id.get(t.teacher_id)
        lines.append(f"teacher  {summary_line(teacher) if teacher else t.teacher_id}")
    students = [c for c in by_id.values() if c.teacher_id == t.trial_id]
    if students:
        lines += ["taught"] + [f"  {summary_line(c)}" for c in students]
    if t.kind == ENSEMBLE:
        # The spec's order is the weights' order; MLMD's inputs are the same trials, by id.
        inputs = store.input_ids(t.trial_id)
        members = list(t.spec.get("members") or inputs)
        weights = dict(zip(members, t.spec.get("weights") or []))
        lines.append(f"members (MLMD inputs: {', '.join(map(str, inputs)) or '-'})")
        for m in members:
            weight = f"weight {weights[m]:.3f}  " if isinstance(weights.get(m), (int, float)) else ""
            lines.append(f"  {weight}{summary_line(by_id[m]) if m in by_id else f'trial {m}'}")
    ensembles = [e for e in by_id.values() if e.kind == ENSEMBLE and t.trial_id in e.spec.get("members", [])]
    if ensembles:
        lines += ["member of"] + [f"  {summary_line(e)}" for e in ensembles]
    return lines


def _error(t) -> list[str]:
    """The recorded reason: an error for a trial that failed or was lost; for one with a model (completed,
    stopped) it is a note, why it ended when it did (the median rule, the time budget)."""
    if not t.error:
        return []
    title = "note" if t.state in EVIDENCE else "error"
    return ["", title, *("  " + line for line in t.error.rstrip().splitlines())]
