"""`modelsearch report`: the HTML page's structure and escaping, then the page in a real headless Chromium, driven
through the DevTools protocol: no console errors, and plots that are drawn.

docs/report.png (the README's picture) comes from here too: `uv run python -m tests.test_report docs/report.png`.
"""
import base64
import html.parser
import io
import json
import os
import random
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from modelsearch.trialstore import DIVERGED, ENSEMBLE, FAILED, INTERRUPTED, REPLICA, STUDENT, TrialStore
from pipelines.cli import main
from pipelines.report import lineage_layout, pareto_front, write_report
from pipelines.trial_commands import study_trials
from tests.test_trial_commands import StudyWriter, make_study, spec

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PLOTS = ("progress", "pareto", "lineage", "curve-val-loss", "curve-val-accuracy")


class Tags(html.parser.HTMLParser):
    """Every start tag and its attributes, as the browser's tokenizer sees them."""

    def __init__(self, text):
        super().__init__()
        self.tags = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def report(capsys, out_dir, *extra):
    code = main(["report", "--output-dir", str(out_dir), *extra])
    out = capsys.readouterr().out
    assert code == 0
    path = Path(out.strip())
    return path, path.read_text()


@pytest.fixture
def study(tmp_path):
    out = tmp_path / "out"
    return out, make_study(out)


def test_report_structure(study, capsys):
    out_dir, ids = study
    path, text = report(capsys, out_dir)
    assert path == out_dir / "report.html"
    tags = Tags(text).tags
    svgs = {a.get("id") for t, a in tags if t == "svg"}
    assert set(PLOTS) <= svgs
    rows = {a["id"] for t, a in tags if t == "tr" and "id" in a}
    shown = set(ids.values()) - {ids["old"]}  # the first data version's trial is not comparable: not shown
    assert rows == {f"trial-{i}" for i in shown}
    # Every trial is a node of the lineage tree, and each completed search trial a point of the progress plot.
    assert text.count('<rect class="node"') == len(shown)
    assert "2 recorded; 1 trial on other data versions not shown" in text
    assert "<b>Push</b>: pushed, trial %d (ensemble): better on test" % ids["ensemble"] in text
    assert "distilled from trial %d" % ids["ensemble"] in text
    # Self-contained: no script, no stylesheet or image to fetch, no link off the page.
    assert not [t for t, _ in tags if t in ("script", "link", "img", "iframe", "object")]
    assert all(a["href"].startswith("#") for t, a in tags if t == "a")
    assert "http" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_report_out_and_pareto_front(study, tmp_path, capsys):
    out_dir, ids = study
    path, text = report(capsys, out_dir, "--out", str(tmp_path / "deep" / "r.html"))
    assert path == tmp_path / "deep" / "r.html"
    front = text.split('<table class="front">')[1].split("</table>")[0]
    listed = [int(cell.split(">")[1].split("<")[0]) for cell in front.split('<a href="#trial-')[1:]]
    assert listed == [ids["student"], ids["best"], ids["ensemble"]]  # more parameters, higher objective each
    store = TrialStore({"sqlite": str(out_dir / "trials.sqlite")})
    assert [t.trial_id for t in pareto_front(study_trials(store, "default"))] == listed


def test_report_escapes_every_study_string(tmp_path, capsys):
    evil_study, evil_block = "<script>alert('study')</script>", '"><img src=x onerror=alert(1)>'
    out = tmp_path / "out"
    make_study(out, study=evil_study, block=evil_block)
    _, text = report(capsys, out, "--study", evil_study)
    assert evil_study not in text and evil_block not in text
    assert "&lt;script&gt;alert(&#x27;study&#x27;)&lt;/script&gt;" in text
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in text
    assert not [t for t, _ in Tags(text).tags if t in ("script", "img")]
    assert all(not name.startswith("on") for _, attrs in Tags(text).tags for name in attrs)


def test_report_of_a_study_without_results(tmp_path, capsys):
    store = TrialStore({"sqlite": str(tmp_path / "trials.sqlite")})
    StudyWriter(store, "default").search(spec("dense"))  # one running trial, nothing completed
    _, text = report(capsys, tmp_path)
    assert "no completed search trial yet" in text and "no learning curves recorded" in text
    assert "no decision recorded yet" in text and 'id="lineage"' in text


def test_report_and_trials_of_a_regression(tmp_path, capsys):
    """No accuracy: the objective is minus the validation loss, and the tables show losses."""
    store = TrialStore({"sqlite": str(tmp_path / "trials.sqlite")})
    writer = StudyWriter(store, "default")
    for i, loss in enumerate((0.40, 0.25, 0.31)):
        trial_id = writer.search(spec("dense", units=32 * (i + 1)), None, "random")
        store.record_curve(trial_id, [{"epoch": e, "loss": loss + 0.5 / e, "val_loss": loss + 0.6 / e}
                                      for e in range(1, 6)])
        store.complete_trial(trial_id, {"val_loss": loss, "test_loss": loss + 0.01, "objective": -loss},
                             1000 * (i + 1), 0, "", 1.0)
    _, text = report(capsys, tmp_path)
    assert "\u2212validation loss" in text and 'id="curve-loss"' in text and "val_accuracy" not in text
    assert main(["trials", "--output-dir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[4:6] == ["val_loss", "test_loss"]
    assert [line.split()[4] for line in lines[3:]] == ["0.2500", "0.3100", "0.4000"]  # best (lowest) first


def test_lineage_layout_of_a_long_study(tmp_path):
    """A realistic study: every trial has a place of its own; children sit right of their parent."""
    store = realistic_study(tmp_path / "out")
    trials = study_trials(store, "default")
    place = lineage_layout(trials)
    assert set(place) == {t.trial_id for t in trials}
    assert len(set(place.values())) == len(place)
    assert all(place[t.parent_id][0] == place[t.trial_id][0] - 1 for t in trials
               if t.parent_id is not None and t.kind != ENSEMBLE)


# ---- a realistic study, for the browser check and the README's picture ----------------------------------------

def realistic_study(out_dir, search=40, seed=3) -> TrialStore:
    """Regularized evolution on 8x8 digits, as the trainers would record it: random roots, mutants of the best
    few, some failures of each kind, then replicas, an ensemble and a student, and the push decision."""
    rng = random.Random(seed)
    store = TrialStore({"sqlite": str(out_dir / "trials.sqlite")})
    store.add_data_version("default", 1, "fp", {"columns": 64})
    writer, done = StudyWriter(store, "default"), []

    def quality(s):  # wider and (up to three blocks) deeper is better, with noise
        units = sum(b["params"]["units"] for b in s["blocks"])
        return 0.86 + 0.025 * min(len(s["blocks"]), 3) + 0.02 * min(units / 512, 1) + rng.gauss(0, 0.008)

    def params(s):
        sizes = [64] + [b["params"]["units"] for b in s["blocks"]] + [10]
        return sum(a * b + b for a, b in zip(sizes, sizes[1:]))

    def finish(trial_id, s, kind_acc=None):
        acc = min(kind_acc or quality(s), 0.985)
        epochs = rng.randint(8, 30)
        loss = 0.9 * (1 - acc) * 4 + 0.02
        store.record_curve(trial_id, [
            {"epoch": e, "loss": loss * (1 + 3.0 / e) * 0.8,
             "val_loss": loss * (1 + 2.5 / e ** 1.5) + 0.003 * max(0, e - epochs * 0.7),
             "accuracy": min(0.999, acc * (1 - 0.35 / e ** 1.5) + 0.02), "val_accuracy": acc * (1 - 0.35 / e ** 1.5)}
            for e in range(1, epochs + 1)])
        store.complete_trial(trial_id, {"val_accuracy": acc, "test_accuracy": acc - abs(rng.gauss(0.004, 0.004)),
                                        "val_loss": loss, "test_loss": loss * 1.04, "objective": acc, "epochs": epochs},
                             params(s), 0, f"/models/{trial_id}", rng.uniform(4, 40), rng.uniform(350, 600))
        done.append((acc, trial_id, s))

    names = ("dense", "residual_dense", "bottleneck")
    for i in range(search):
        if i < 6:
            s, parent, mutation = {"blocks": [{"name": rng.choice(names), "params": {"units": rng.choice([32, 64])}}],
                                   "head": "flatten", "knobs": {"learning_rate": 0.001, "dropout": 0.1}}, None, "random"
        else:
            _, parent, base = max(rng.sample(done, min(4, len(done))))  # a tournament among the completed
            s = json.loads(json.dumps(base))
            move = rng.random()
            if move < 0.4 and len(s["blocks"]) < 5:
                new = rng.choice(names)
                s["blocks"].append({"name": new, "params": {"units": rng.choice([32, 64, 128])}})
                mutation = f"add_block:{new}"
            elif move < 0.75:
                j = rng.randrange(len(s["blocks"]))
                s["blocks"][j]["params"]["units"] = units = rng.choice([32, 64, 128, 256])
                mutation = f"width:{j}:units={units}"
            else:
                s["knobs"]["learning_rate"] = lr = rng.choice([0.0003, 0.003, 0.01])
                mutation = f"knob:learning_rate={lr}"
        trial_id = writer.search(s, parent, mutation)
        fate = rng.random()
        if "0.01" in mutation and fate < 0.7:
            store.fail_trial(trial_id, "loss became NaN at epoch 4: the learning rate 0.01 diverged", state=DIVERGED)
        elif fate < 0.06:
            store.fail_trial(trial_id, "Traceback (most recent call last):\n  ...\ntensorflow.python.framework."
                             "errors_impl.ResourceExhaustedError: OOM when allocating tensor", state=FAILED)
        elif fate < 0.10:
            store.fail_trial(trial_id, "interrupted: the run was stopped (SIGTERM)", state=INTERRUPTED)
        else:
            finish(trial_id, s)
    top = sorted(done, reverse=True)[:3]
    best_acc, best_id, best_spec = top[0]
    replicas = []
    for r in (1, 2):
        replicas.append(store.start_trial("default", best_spec, parent_id=best_id, mutation=f"replica:{r}", seed=r,
                                          kind=REPLICA))
        finish(replicas[-1], best_spec, best_acc - abs(rng.gauss(0, 0.004)))
    members = [best_id, *replicas]
    ensemble = store.start_trial("default", {"method": "average", "members": members, "weights": [1 / 3] * 3},
                                 mutation="ensemble:average", kind=ENSEMBLE, input_ids=tuple(members))
    store.complete_trial(ensemble, {"val_accuracy": best_acc + 0.006, "test_accuracy": best_acc + 0.004,
                                    "val_loss": 0.08, "test_loss": 0.085, "objective": best_acc + 0.006},
                         3 * params(best_spec), 0, "/models/e", 5.0)
    small = {**best_spec, "blocks": best_spec["blocks"][:1]}
    student = store.start_trial("default", small, parent_id=best_id, mutation="distill", seed=3,
                                teacher_id=ensemble, kind=STUDENT, distillation={"mode": "soft_ce", "weight": 0.5})
    finish(student, small, best_acc - 0.004)
    store.record_decision("default", "push", {"pushed": True, "winner_trial_id": ensemble, "winner_kind": ENSEMBLE,
                                              "policy": "best_accuracy",
                                              "reason": "no model pushed before: the first push"})
    return store


# ---- the page in a real browser, over the DevTools protocol ----------------------------------------------------

class Chromium:
    """A headless Chromium and one page, driven over the DevTools protocol (websocket-client: it comes with
    kfp's kubernetes client, so it is in every environment of this project)."""

    def __init__(self, user_data_dir: Path, width: int = 1200, height: int = 900):
        import websocket

        self.process = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={user_data_dir}",
             "--remote-debugging-port=0", "--remote-allow-origins=*", "--hide-scrollbars", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file, deadline = user_data_dir / "DevToolsActivePort", time.time() + 60
        while not (port_file.exists() and port_file.read_text().count("\n") >= 1):
            if time.time() > deadline or self.process.poll() is not None:
                self.close()
                raise RuntimeError(f"chromium did not start (exit code {self.process.poll()})")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as f:
            page = next(t for t in json.load(f) if t["type"] == "page")
        self.socket = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=30, suppress_origin=True)
        self.ids, self.events = 0, []
        for domain in ("Runtime", "Log", "Page"):
            self.call(f"{domain}.enable")
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)

    def call(self, method: str, **params) -> dict:
        self.ids += 1
        self.socket.send(json.dumps({"id": self.ids, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == self.ids:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]
            self.events.append(message)  # an event: kept for errors() and wait()

    def wait(self, event: str, timeout: float = 30) -> None:
        deadline = time.time() + timeout
        while not any(e.get("method") == event for e in self.events):
            if time.time() > deadline:
                raise TimeoutError(event)
            self.events.append(json.loads(self.socket.recv()))

    def open(self, path: Path) -> None:
        self.events.clear()
        self.call("Page.navigate", url=path.resolve().as_uri())
        self.wait("Page.loadEventFired")
        self.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")  # painted

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        return result["result"].get("value")

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and the browser's own error log (e.g. a resource that failed)."""
        found = []
        for e in self.events:
            p = e.get("params", {})
            if e.get("method") == "Runtime.consoleAPICalled" and p["type"] in ("error", "assert"):
                found.append("console: " + " ".join(str(a.get("value", a.get("description"))) for a in p["args"]))
            elif e.get("method") == "Runtime.exceptionThrown":
                d = p["exceptionDetails"]
                found.append("exception: " + d.get("exception", {}).get("description", d.get("text", "")))
            elif e.get("method") == "Log.entryAdded" and p["entry"]["level"] == "error":
                found.append(f"log ({p['entry']['source']}): {p['entry']['text']}")
        return found

    def screenshot(self, max_height: int | None = None):
        """The whole page (or its top `max_height` pixels) as a PIL image."""
        from PIL import Image

        height = self.evaluate("document.documentElement.scrollHeight")
        clip = {"x": 0, "y": 0, "width": 1200, "height": min(height, max_height or height), "scale": 1}
        data = self.call("Page.captureScreenshot", format="png", clip=clip, captureBeyondViewport=True)["data"]
        return Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")

    def close(self) -> None:
        if getattr(self, "socket", None):
            self.socket.close()
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def browser(tmp_path):
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run installs it)")
    chromium = Chromium(tmp_path / "chromium-profile")
    yield chromium
    chromium.close()


# Each plot's size and its drawn marks (points, lines, nodes) with a box of their own on the page.
MEASURE = """JSON.stringify(Object.fromEntries([...document.querySelectorAll('svg.plot-svg')].map(svg => {
  const box = svg.getBoundingClientRect();
  const marks = [...svg.querySelectorAll('.mark, .node')].filter(m => {
    const b = m.getBoundingClientRect(); return b.width > 0 || b.height > 0; });
  return [svg.id, [box.width, box.height, marks.length]]; })))"""


@pytest.mark.slow
def test_report_in_chromium(browser, tmp_path, capsys):
    realistic_study(tmp_path / "out")
    path, _ = report(capsys, tmp_path / "out")
    browser.open(path)
    assert browser.errors() == []
    plots = json.loads(browser.evaluate(MEASURE))
    assert set(PLOTS) <= set(plots)
    for name, (width, height, marks) in plots.items():
        assert width > 200 and height > 100 and marks > 0, (name, plots[name])
    assert plots["lineage"][2] == len(study_trials(TrialStore({"sqlite": str(tmp_path / "out" / "trials.sqlite")}),
                                                   "default"))
    image = browser.screenshot()
    colours = image.getcolors(maxcolors=1 << 20)
    assert len(colours) > 200  # text, grid, points, lines and state colours, anti-aliased
    white = max(colours)[0] / (image.width * image.height)
    assert white < 0.95, f"the page is {white:.0%} background"


@pytest.mark.slow
def test_console_check_catches_errors(browser, tmp_path):
    """The check above can fail: a throwaway page with a console error, an exception and a missing image."""
    page = tmp_path / "broken.html"
    page.write_text("<!DOCTYPE html><body><img src='missing.png'><script>console.error('deliberate');"
                    "null.boom();</script></body>")
    browser.open(page)
    errors = browser.errors()
    assert any(e.startswith("console: deliberate") for e in errors), errors
    assert any(e.startswith("exception: TypeError") for e in errors), errors
    assert any(e.startswith("log (network)") and "ERR_FILE_NOT_FOUND" in e for e in errors), errors


def write_readme_picture(out_png: Path, output_dir: str | None = None) -> Path:
    """docs/report.png: the report of a study (a real run's `output_dir`, else a realistic simulated one) down
    to its lineage tree (header, decisions, the plots and the learning curves), as Chromium draws it, 1200 px
    wide."""
    import tempfile

    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        store = (TrialStore({"sqlite": os.path.join(output_dir, "trials.sqlite")}) if output_dir
                 else realistic_study(tmp / "out"))
        page = write_report(store, "default", str(tmp / "report.html"))
        chromium = Chromium(tmp / "profile")
        try:
            chromium.open(Path(page))
            assert chromium.errors() == []
            top = chromium.evaluate("document.getElementById('lineage-section').getBoundingClientRect().top")
            image = chromium.screenshot(int(top) - 8)
        finally:
            chromium.close()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    # A palette of 128 colours keeps the picture small; the plots have few colours anyway.
    image.quantize(colors=128, method=Image.Quantize.FASTOCTREE).save(out_png, optimize=True)
    return out_png


if __name__ == "__main__":  # python -m tests.test_report docs/report.png [OUTPUT_DIR of a real run]
    target = write_readme_picture(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/report.png"),
                                  sys.argv[2] if len(sys.argv) > 2 else None)
    print(f"{target} ({target.stat().st_size // 1024} KiB)", file=sys.stderr)
