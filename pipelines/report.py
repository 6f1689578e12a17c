"""`modelsearch report`: one self-contained HTML page of a study.

The plots are inline SVG drawn here, so the page needs no network, no script and no library: it opens
anywhere, from a laptop to a CI artifact. Tooltips are SVG <title> elements; every mark links to its trial's
row in the leaderboard. Every string that comes from the study (names, specs, errors) goes through escape().
"""
from __future__ import annotations

import math
import os
import time
from html import escape

from modelsearch.objective import pareto_front, quality
from modelsearch.strategies.base import score
from modelsearch.trialstore import COMPLETED, ENSEMBLE, REPLICA, SEARCH, STOPPED, STUDENT
from pipelines.summary import kept_student
from pipelines.trial_commands import (architecture, is_classification, leaderboard_rows, metric_columns,
                                      ranked, reason, shorten, state_counts, study_trials, summary_line)

STATE_COLOURS = {"completed": "#54a24b", "running": "#4c78a8", "failed": "#e45756", "diverged": "#f58518",
                 "interrupted": "#b279a2", "abandoned": "#9d9d9d", "stopped": "#eeca3b"}
KIND_COLOURS = {SEARCH: "#4c78a8", REPLICA: "#72b7b2", ENSEMBLE: "#b279a2", STUDENT: "#f58518"}
LINES = ["#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#eeca3b", "#9d755d", "#ff9da6",
         "#79706e"]
FRONT = "#d62728"
MAX_CURVES = 8  # learning curves of the top trials: more lines than this are unreadable


def write_report(store, study: str, out: str) -> str:
    page = build_report(store, study)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        f.write(page)
    return out


def build_report(store, study: str) -> str:
    trials = study_trials(store, study)
    classification = is_classification(trials)
    body = [_header(store, study, trials), _decisions(store, study, trials),
            '<div class="plots">', _progress(trials), _pareto(trials), "</div>",
            _curves(trials, classification), _lineage(trials), _leaderboard(trials)]
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>Model Search report: {escape(study)}</title><style>{CSS}</style></head>\n"
            f"<body>\n{''.join(body)}\n</body></html>\n")


CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;margin:24px auto;max-width:1180px;
padding:0 16px;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.meta{color:#555}
.badge{display:inline-block;padding:1px 8px;border-radius:9px;color:#fff;margin-right:6px;font-size:13px}
.box{border:1px solid #ddd;border-radius:6px;padding:8px 12px;margin:10px 0;background:#fafafa}
.plots{display:flex;flex-wrap:wrap;gap:16px}.plot{flex:1 1 560px;min-width:0}
.scroll{overflow:auto;border:1px solid #eee;border-radius:4px;max-height:900px}
svg text{font-family:system-ui,sans-serif}svg a:hover rect,svg a:hover circle{stroke:#000;stroke-width:2}
table{border-collapse:collapse;font-size:13px;margin:6px 0}td,th{padding:3px 8px;border-bottom:1px solid #eee;
text-align:left;white-space:nowrap}th{background:#f3f3f3}td.n{text-align:right;font-variant-numeric:tabular-nums}
tr:target{background:#fff3bf}td.reason{white-space:normal;min-width:220px;color:#a33}
.legend span{display:inline-block;margin-right:14px}
.sw{display:inline-block;width:12px;height:12px;border-radius:2px;margin-right:4px;vertical-align:-1px}
.empty{color:#777;font-style:italic}
"""


# ---- page sections ----------------------------------------------------------------------------------------------

def _header(store, study, trials) -> str:
    versions = store.data_versions(study)
    version = store.data_version(study)
    older = sum(t.data_version != version for t in store.trials(study))
    counts = "".join(f'<span class="badge" style="background:{STATE_COLOURS.get(s, "#777")}">{n} {escape(s)}</span>'
                     for s, n in state_counts(trials).items()) or '<span class="empty">no trials yet</span>'
    best = _best(trials)
    return (f"<h1>Model Search report: study {escape(study)}</h1>"
            f'<p class="meta">data version {version} ({len(versions)} recorded'
            + (f"; {older} trial{'s' * (older != 1)} on other data versions not shown" if older else "")
            + f") &middot; {len(trials)} trials &middot; written {escape(time.strftime('%Y-%m-%d %H:%M'))}</p>"
            f"<p>{counts}</p>"
            + (f'<p>Best: <a href="#trial-{best.trial_id}">{escape(summary_line(best))}</a>, '
               f"{best.num_params:,} parameters</p>" if best else ""))


def _best(trials, kinds=(SEARCH,)):
    done = [t for t in trials if t.state == COMPLETED and t.kind in kinds and math.isfinite(score(t))]
    return max(done, key=lambda t: (score(t), -t.trial_id), default=None)


def _decisions(store, study, trials) -> str:
    items = []
    by_id = {t.trial_id: t for t in trials}
    latest = {ENSEMBLE: max((t for t in trials if t.kind == ENSEMBLE and t.state == COMPLETED),
                            key=lambda t: t.trial_id, default=None),
              STUDENT: kept_student(store, study, trials)}  # the kept one of the students tried
    if latest[ENSEMBLE]:
        e = latest[ENSEMBLE]
        items.append(f"<b>Ensemble</b>: trial {e.trial_id}, {escape(str(e.spec.get('method', '')))} of trials "
                     f"{escape(', '.join(map(str, e.spec.get('members', []))))}: {escape(_scores(e))}")
    if latest[STUDENT]:
        s = latest[STUDENT]
        teacher = by_id.get(s.teacher_id)
        items.append(f"<b>Student</b>: trial {s.trial_id} ({escape(architecture(s))}, {s.num_params:,} parameters) "
                     f"distilled from trial {s.teacher_id}"
                     + (f" ({teacher.num_params:,} parameters)" if teacher else "")
                     + (f", {escape(str(s.distillation.get('mode')))}" if s.distillation.get("mode") else "")
                     + f": {escape(_scores(s))}")
    decisions = store.decisions(study, "push")
    if decisions:
        d = decisions[-1]
        winner = d.get("winner_trial_id")
        verdict = "pushed" if d.get("pushed") else "not pushed"
        items.append(f"<b>Push</b>: {verdict}"
                     + (f", trial {escape(str(winner))} ({escape(str(d.get('winner_kind', '')))})" if winner is not None
                        else "")
                     + f": {escape(str(d.get('reason', '')))}"
                     + (f" (policy {escape(str(d['policy']))})" if d.get("policy") else ""))
    else:
        items.append("<b>Push</b>: no decision recorded yet")
    return '<div class="box">' + "<br>".join(items) + "</div>"


def _scores(t) -> str:
    return ", ".join(f"{m} {t.metrics[m]:.4f}" for m, _ in metric_columns([t]) if m in t.metrics)


def _objective_label(trials) -> str:
    return "validation accuracy" if is_classification(trials) else "\u2212validation loss"


def _progress(trials) -> str:
    """The objective of each search trial against its number, and the best so far."""
    search = sorted((t for t in trials if t.kind == SEARCH and t.number >= 0), key=lambda t: t.number)
    done = [t for t in search if t.state == COMPLETED and math.isfinite(score(t))]
    title = "<h2>Search progress</h2>"
    if not done:
        return f'<div class="plot">{title}<p class="empty">no completed search trial yet</p></div>'
    others = [t for t in trials if t.kind != SEARCH and t.state == COMPLETED and math.isfinite(score(t))]
    plot = Plot([t.number for t in search], [score(t) for t in done + others])
    marks, best, steps = [], -math.inf, []
    for t in done:  # the running best: a staircase that steps up at each new best
        if score(t) > best:
            if steps:
                steps.append((t.number, best))
            best = score(t)
            steps.append((t.number, best))
    steps.append((search[-1].number, best))
    marks.append(_polyline([(plot.x(n), plot.y(v)) for n, v in steps], FRONT, width=2, tip="best so far"))
    labelled = []
    for t in sorted(others, key=lambda t: (t.kind != ENSEMBLE, t.kind != STUDENT, t.trial_id)):
        # Exploit trials: reference lines, not points (they have no place in the search order); a label only
        # where it does not overlap another.
        y = plot.y(score(t))
        marks.append(f'<line x1="{plot.left}" x2="{plot.width - plot.right}" y1="{y:.1f}" y2="{y:.1f}" '
                     f'stroke="{KIND_COLOURS[t.kind]}" stroke-dasharray="5 4"><title>{escape(summary_line(t))}'
                     f"</title></line>")
        if all(abs(y - other) >= 11 for other in labelled):
            labelled.append(y)
            marks.append(f'<text x="{plot.width - plot.right - 4}" y="{y - 3:.1f}" text-anchor="end" '
                         f'font-size="10" fill="{KIND_COLOURS[t.kind]}">{escape(t.kind)} {t.trial_id}</text>')
    completed = {t.trial_id for t in done}
    for t in search:
        if t.trial_id in completed:
            marks.append(_link(t, f'<circle class="mark" cx="{plot.x(t.number):.1f}" cy="{plot.y(score(t)):.1f}" '
                                  f'r="4.5" fill="{KIND_COLOURS[SEARCH]}"><title>{escape(summary_line(t))}</title>'
                                  "</circle>"))
        else:  # no objective: a tick on the x axis in the colour of its state
            x, y = plot.x(t.number), plot.height - plot.bottom
            marks.append(_link(t, f'<path class="mark" d="M{x - 3:.1f},{y - 9} l6,6 m0,-6 l-6,6" '
                                  f'stroke="{STATE_COLOURS.get(t.state, "#777")}" stroke-width="2">'
                                  f"<title>{escape(summary_line(t))}</title></path>"))
    svg = plot.svg("progress", "search trial number", _objective_label(trials), "".join(marks))
    return (f'<div class="plot">{title}{svg}<p class="legend"><span><span class="sw" style="background:'
            f'{KIND_COLOURS[SEARCH]}"></span>completed</span><span><span class="sw" style="background:{FRONT}">'
            f"</span>best so far</span><span>&times; not completed (colour: state)</span>"
            f"<span>dashed: ensemble, replica, student</span></p></div>")


def _pareto(trials) -> str:
    """The validation metric (not the objective, which may already charge for size) against parameters, and
    the Pareto front of the two (modelsearch/objective.py; over these two criteria, latency aside)."""
    points = [t for t in trials if t.state == COMPLETED and t.num_params > 0 and math.isfinite(quality(t.metrics))]
    title = "<h2>Validation metric against size</h2>"
    if not points:
        return f'<div class="plot">{title}<p class="empty">no completed trial yet</p></div>'
    front = pareto_front(points, latency=False)
    value = lambda t: quality(t.metrics)  # noqa: E731
    plot = Plot([t.num_params for t in points], [value(t) for t in points], log_x=True)
    steps = []
    for i, t in enumerate(front):
        if i:
            steps.append((t.num_params, value(front[i - 1])))
        steps.append((t.num_params, value(t)))
    marks = [_polyline([(plot.x(p), plot.y(v)) for p, v in steps], FRONT, width=1.5, tip="Pareto front")]
    on_front = {t.trial_id for t in front}
    for t in sorted(points, key=lambda t: t.trial_id in on_front):  # the front on top
        outline = f' stroke="{FRONT}" stroke-width="2.5"' if t.trial_id in on_front else ' stroke="#fff"'
        marks.append(_link(t, _marker(t.kind, plot.x(t.num_params), plot.y(value(t)), outline,
                                      f"{summary_line(t)}, {t.num_params:,} parameters")))
    svg = plot.svg("pareto", "parameters (log scale)", _objective_label(trials), "".join(marks))
    legend = "".join(f'<span><span class="sw" style="background:{KIND_COLOURS[k]}"></span>{k}</span>'
                     for k in (SEARCH, REPLICA, ENSEMBLE, STUDENT) if any(t.kind == k for t in points))
    rows = "".join(f'<tr><td class="n"><a href="#trial-{t.trial_id}">{t.trial_id}</a></td><td>{escape(t.kind)}</td>'
                   f'<td title="{escape(architecture(t))}">{escape(shorten(architecture(t), 34))}</td>'
                   f'<td class="n">{t.num_params:,}</td>'
                   f'<td class="n">{value(t):.4f}</td><td class="n">{score(t):.4f}</td></tr>' for t in front)
    return (f'<div class="plot">{title}{svg}<p class="legend">{legend}<span><span class="sw" style="border:2px solid '
            f'{FRONT}"></span>Pareto front</span></p><table class="front"><tr><th>trial</th><th>kind</th>'
            f"<th>architecture</th><th>params</th><th>{escape(_objective_label(trials))}</th><th>objective</th></tr>"
            f"{rows}</table></div>")


def _lineage(trials) -> str:
    title = '<h2 id="lineage-section">Lineage</h2>'
    if not trials:
        return f'{title}<p class="empty">no trials yet</p>'
    legend = "".join(f'<span><span class="sw" style="background:{c}"></span>{s}</span>'
                     for s, c in STATE_COLOURS.items() if any(t.state == s for t in trials))
    return (f'{title}<p class="legend">{legend}<span>edges: parent &rarr; child, labelled by mutation; dashed: '
            f'ensemble members; dotted: teacher</span></p><div class="scroll">{lineage_svg(trials)}</div>')


def _curves(trials, classification) -> str:
    order, _ = ranked(trials)
    top = [t for t in order if t.state in (COMPLETED, STOPPED) and t.curve][:MAX_CURVES]  # where trials were cut
    title = f"<h2>Learning curves (the top {len(top)} trials)</h2>" if top else "<h2>Learning curves</h2>"
    if not top:
        return f'{title}<p class="empty">no learning curves recorded</p>'
    second = ("val_accuracy", "validation accuracy") if classification else ("loss", "training loss")
    panels = [_curve_panel(top, "val_loss", "validation loss", "curve-val-loss"),
              _curve_panel(top, second[0], second[1], "curve-" + second[0].replace("_", "-"))]
    legend = "".join(f'<span><span class="sw" style="background:{LINES[i % len(LINES)]}"></span>'
                     f'<a href="#trial-{t.trial_id}">trial {t.trial_id}</a> {escape(architecture(t))}</span>'
                     for i, t in enumerate(top))
    return f'{title}<div class="plots">{"".join(panels)}</div><p class="legend">{legend}</p>'


def _curve_value(entry: dict, key: str):
    """An epoch's `key` on the true labels: a distilled trial's val_loss is its loss against the teacher too, so
    its curve's val_label_loss (val_label_accuracy) is the one comparable with the others'."""
    value = entry.get(key.replace("val_", "val_label_", 1), entry.get(key))
    return value if isinstance(value, (int, float)) and math.isfinite(value) else None


def _curve_panel(top, key, label, name) -> str:
    series = [(t, [(e.get("epoch", i + 1), _curve_value(e, key)) for i, e in enumerate(t.curve)
                   if _curve_value(e, key) is not None]) for t in top]
    values = [p for _, points in series for p in points]
    if not values:
        return f'<div class="plot"><p class="empty">no {escape(label)} recorded</p></div>'
    plot = Plot([e for e, _ in values], [v for _, v in values])
    lines = [_polyline([(plot.x(e), plot.y(v)) for e, v in points], LINES[i % len(LINES)], width=1.8,
                       tip=summary_line(t)) for i, (t, points) in enumerate(series) if points]
    return f'<div class="plot">{plot.svg(name, "epoch", label, "".join(lines))}</div>'


def _leaderboard(trials) -> str:
    headers, rows = leaderboard_rows(trials)
    by_id = {t.trial_id: t for t in trials}
    numeric = {"rank", "trial", "val_acc", "test_acc", "val_loss", "test_loss", "params", "parent"}
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = []
    for row in rows:
        t = by_id[int(row[1])]
        cells = []
        for h, cell in zip(headers, row):
            if h == "state":
                cell = f'<span class="sw" style="background:{STATE_COLOURS.get(cell, "#777")}"></span>{escape(cell)}'
            elif h == "reason" and t.error:
                cell = f'<span title="{escape(t.error.strip().splitlines()[-1])}">{escape(reason(t))}</span>'
            else:
                cell = escape(cell)
            kind = ' class="n"' if h in numeric else ' class="reason"' if h == "reason" else ""
            cells.append(f"<td{kind}>{cell}</td>")
        body.append(f'<tr id="trial-{t.trial_id}">{"".join(cells)}</tr>')
    return (f'<h2>Leaderboard</h2><div class="scroll"><table class="leaderboard"><tr>{head}</tr>{"".join(body)}'
            "</table></div>")


# ---- the lineage tree -------------------------------------------------------------------------------------------

COLUMN, ROW, NODE_W, NODE_H = 200, 26, 44, 18


def lineage_layout(trials) -> dict:
    """{trial_id: (column, row)}: generations left to right (a root, then its children ...), a leaf per row and a
    parent level with its first child, as in a file tree (compact, and the first edge is straight); ensembles in
    a last column, level with their members."""
    tree = [t for t in trials if t.kind != ENSEMBLE]
    children = {t.trial_id: [] for t in tree}
    roots = []
    for t in sorted(tree, key=lambda t: t.trial_id):
        (children[t.parent_id] if t.parent_id in children else roots).append(t)
    place, next_row = {}, 0
    stack = [(t, 0, False) for t in reversed(roots)]
    while stack:  # post-order without recursion: a lineage may be thousands of trials deep
        t, depth, visited = stack.pop()
        kids = children[t.trial_id]
        if not visited:
            stack.append((t, depth, True))
            stack.extend((k, depth + 1, False) for k in reversed(kids))
        elif kids:
            place[t.trial_id] = (depth, place[kids[0].trial_id][1])
        else:
            place[t.trial_id], next_row = (depth, next_row), next_row + 1
    last = max((c for c, _ in place.values()), default=-1) + 1
    taken = set()
    for t in (t for t in trials if t.kind == ENSEMBLE):
        rows = [place[m][1] for m in t.spec.get("members", []) if m in place]
        row = round(sum(rows) / len(rows)) if rows else next_row
        while row in taken:
            row += 1
        taken.add(row)
        place[t.trial_id] = (last, row)
    return place


def lineage_svg(trials) -> str:
    place = lineage_layout(trials)
    best = _best(trials)

    def xy(trial_id):
        column, row = place[trial_id]
        return 16 + NODE_W / 2 + column * COLUMN, 14 + NODE_H / 2 + row * ROW

    edges, labels, nodes = [], [], []
    for t in trials:
        cx, cy = xy(t.trial_id)
        if t.parent_id in place and t.kind != ENSEMBLE:
            px, py = xy(t.parent_id)
            elbow = px + NODE_W / 2 + 12
            edges.append(f'<path d="M{px + NODE_W / 2:.0f},{py:.0f} H{elbow:.0f} V{cy:.0f} H{cx - NODE_W / 2:.0f}" '
                         f'fill="none" stroke="#999"/>')
            text = t.mutation if len(t.mutation) <= 26 else t.mutation[:25] + "\u2026"
            labels.append(f'<text x="{elbow + 4:.0f}" y="{cy - 4:.0f}" font-size="10" fill="#444">{escape(text)}'
                          f"<title>{escape(t.mutation)}</title></text>")
        sources = [(m, "5 3") for m in t.spec.get("members", [])] if t.kind == ENSEMBLE else []
        if t.teacher_id in place:
            sources.append((t.teacher_id, "2 3"))
        for source, dash in sources:
            if source in place:
                sx, sy = xy(source)
                edges.append(f'<line x1="{sx + NODE_W / 2:.0f}" y1="{sy:.0f}" x2="{cx - NODE_W / 2:.0f}" y2="{cy:.0f}" '
                             f'stroke="{KIND_COLOURS[ENSEMBLE if dash == "5 3" else STUDENT]}" '
                             f'stroke-dasharray="{dash}"/>')
        colour = STATE_COLOURS.get(t.state, "#777")
        stroke = ' stroke="#000" stroke-width="2"' if best is not None and t.trial_id == best.trial_id else ""
        nodes.append(_link(t, f'<rect class="node" x="{cx - NODE_W / 2:.0f}" y="{cy - NODE_H / 2:.0f}" '
                              f'width="{NODE_W}" height="{NODE_H}" rx="4" fill="{colour}"{stroke}>'
                              f"<title>{escape(summary_line(t))}</title></rect>"
                              f'<text x="{cx:.0f}" y="{cy + 3.5:.0f}" font-size="10" text-anchor="middle" '
                              f'fill="#fff" font-weight="600" pointer-events="none">{t.trial_id}</text>'))
    width = 32 + NODE_W + max(c for c, _ in place.values()) * COLUMN
    height = 28 + NODE_H + max(r for _, r in place.values()) * ROW
    return (f'<svg id="lineage" class="plot-svg" xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" '
            f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="lineage tree">'
            f'{"".join(edges)}{"".join(labels)}{"".join(nodes)}</svg>')


# ---- SVG plotting -----------------------------------------------------------------------------------------------

def _link(t, inner: str) -> str:
    return f'<a href="#trial-{t.trial_id}">{inner}</a>'


def _polyline(points, colour, width=1.5, tip="") -> str:
    if not points:
        return ""
    coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    return (f'<polyline class="mark" points="{coords}" fill="none" stroke="{colour}" stroke-width="{width}" '
            f'stroke-linejoin="round"><title>{escape(tip)}</title></polyline>')


def _marker(kind, x, y, outline, tip) -> str:
    colour, title = KIND_COLOURS.get(kind, "#777"), f"<title>{escape(tip)}</title>"
    if kind == ENSEMBLE:
        return (f'<path class="mark" d="M{x:.1f},{y - 7:.1f} l7,7 l-7,7 l-7,-7 z" fill="{colour}"{outline}>'
                f"{title}</path>")
    if kind == STUDENT:
        return (f'<path class="mark" d="M{x:.1f},{y - 6:.1f} l6,10 h-12 z" fill="{colour}"{outline}>{title}'
                "</path>")
    return f'<circle class="mark" cx="{x:.1f}" cy="{y:.1f}" r="5" fill="{colour}"{outline}>{title}</circle>'


class Plot:
    """Axes of one plot: data coordinates to SVG pixels, and the frame, grid and tick labels."""

    width, height, left, right, top, bottom = 560, 300, 62, 14, 12, 44

    def __init__(self, xs, ys, log_x: bool = False):
        self.log_x = log_x
        self.x_lo, self.x_hi = _span([math.log10(x) for x in xs] if log_x else xs)
        self.y_lo, self.y_hi = _span(ys)

    def x(self, value) -> float:
        value = math.log10(value) if self.log_x else value
        return self.left + (value - self.x_lo) / (self.x_hi - self.x_lo) * (self.width - self.left - self.right)

    def y(self, value) -> float:
        inner = self.height - self.top - self.bottom
        return self.height - self.bottom - (value - self.y_lo) / (self.y_hi - self.y_lo) * inner

    def svg(self, name: str, x_label: str, y_label: str, marks: str) -> str:
        grid = []
        right, bottom = self.width - self.right, self.height - self.bottom
        x_ticks = _log_ticks(self.x_lo, self.x_hi) if self.log_x else _ticks(self.x_lo, self.x_hi)
        for value, text in x_ticks:
            x = self.x(value)
            grid.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{self.top}" y2="{bottom}" stroke="#eee"/>'
                        f'<text x="{x:.1f}" y="{bottom + 15}" font-size="11" text-anchor="middle" '
                        f'fill="#555">{text}</text>')
        for value, text in _ticks(self.y_lo, self.y_hi):
            y = self.y(value)
            grid.append(f'<line x1="{self.left}" x2="{right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>'
                        f'<text x="{self.left - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end" '
                        f'fill="#555">{text}</text>')
        middle = (self.top + bottom) / 2
        return (f'<svg id="{name}" class="plot-svg" xmlns="http://www.w3.org/2000/svg" width="{self.width}" '
                f'height="{self.height}" viewBox="0 0 {self.width} {self.height}" role="img" '
                f'aria-label="{escape(y_label)} against {escape(x_label)}">{"".join(grid)}'
                f'<rect x="{self.left}" y="{self.top}" width="{right - self.left}" height="{bottom - self.top}" '
                f'fill="none" stroke="#bbb"/>{marks}'
                f'<text x="{(self.left + right) / 2:.0f}" y="{self.height - 6}" font-size="12" '
                f'text-anchor="middle">{escape(x_label)}</text>'
                f'<text transform="translate(14,{middle:.0f}) rotate(-90)" font-size="12" '
                f'text-anchor="middle">{escape(y_label)}</text></svg>')


def _span(values) -> tuple[float, float]:
    """The data's range with a margin, never empty."""
    lo, hi = min(values), max(values)
    margin = (hi - lo) * 0.06 or abs(hi) * 0.05 or 0.5
    return lo - margin, hi + margin


def _ticks(lo: float, hi: float, count: int = 6) -> list[tuple[float, str]]:
    """Round values (1, 2, 2.5 or 5 times a power of ten apart) within [lo, hi], with their labels."""
    raw = (hi - lo) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) + (1 if round(step / power, 6) == 2.5 else 0)
    first = math.ceil(lo / step)
    values = [i * step for i in range(first, math.floor(hi / step) + 1)]
    return [(v, f"{v:.{decimals}f}".replace("-", "\u2212")) for v in values]


def _log_ticks(lo: float, hi: float) -> list[tuple[float, str]]:
    """Powers of ten within 10**lo .. 10**hi, with 2 and 5 times them when the range is under two decades."""
    multiples = (1,) if hi - lo >= 2 else (1, 2, 5)
    ticks = [m * 10 ** e for e in range(math.floor(lo), math.ceil(hi) + 1) for m in multiples]
    return [(v, _si(v)) for v in ticks if lo <= math.log10(v) <= hi]


def _si(value: float) -> str:
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:g}{suffix}"
    return f"{value:g}"
