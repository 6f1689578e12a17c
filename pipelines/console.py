"""The CLI's console: TensorFlow's noise kept off the terminal (but in a log file), and a live progress display.

`quiet_stderr` puts a pipe in place of file descriptor 2 of the CLI process, so that every process started
after it (the forkserver, the nodes, their trial workers, C++ code) writes there; a thread copies whole lines
to the real stderr, less the noise, and every line to a log file. `Progress` reads the trial store in a thread
of its own and shows where the search stands: one status line kept at the bottom of a terminal, or a plain
line now and then when stderr is not one. Light imports only: the trial store is imported in the thread.
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
import time
import traceback
import uuid

# Lines that are noise unless --verbose. Fatal C++ lines (F...) pass: they say why a process aborted.
NOISE = re.compile(rb"|".join([
    rb"[IWE]\d{4} [\d:.]+\s+\d+ \S+:\d+\] ",  # absl C++ and absl Python: I0000 00:00:17.5 15961 port.cc:153] ...
    rb"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWE] \S+:\d+\] ",  # TensorFlow's older C++ format
    rb"WARNING: All log messages before absl::InitializeLog\(\) is called",
    rb"(?:DEBUG|INFO|WARNING):[\w.]+:",  # Python logging's default format: INFO:absl:..., WARNING:tensorflow:...
    rb".+?:\d+: (?:\w+\.)*\w*Warning: ",  # a Python warning: file.py:74: UserWarning: ...
]))
# The lines a noise line carries with it: a warning's source line (two spaces), C++'s continuations (a tab).
CONTINUATION = (b" ", b"\t")
ERASE = b"\r\x1b[K"  # to the start of the line, and erase it
PREFIX = "[modelsearch] progress: "
EARLY_LINES = 10_000  # lines kept for a log opened later (open_log); the start of a run prints far fewer


class _Terminal:
    """The real stderr and the log file. One lock, so that a status redraw and a line never interleave."""

    def __init__(self, fd: int, log_path: str | None = None):
        self.fd, self.log_path, self.log = fd, log_path, None
        self.early = []  # the lines before the log's place is known (see open_log), kept for it
        self.lock = threading.Lock()
        self.status = b""  # the status line now at the bottom of the terminal, if any

    def line(self, data: bytes, show: bool = True) -> None:
        """A whole line (ending in a newline): to the log, and to the terminal if `show`, above the status."""
        with self.lock:
            self._log(data)
            if show:
                self._write(ERASE + data + self.status if self.status else data)

    def set_status(self, text: str) -> None:
        """Draws `text` as the status line in place of the last one ("" erases it); only on a terminal."""
        with self.lock:
            if not text and not self.status:
                return
            try:
                width = os.get_terminal_size(self.fd).columns or 80
            except OSError:
                width = 80
            self.status = text[:width - 1].encode("utf-8", "replace")  # a line that wraps cannot be redrawn
            self._write(ERASE + self.status)

    def _write(self, data: bytes) -> None:
        try:
            while data:
                data = data[os.write(self.fd, data):]
        except OSError:  # the terminal is gone: nothing to show it on
            pass

    def open_log(self, log_path: str) -> None:
        with self.lock:
            self.log_path, early, self.early = log_path, self.early, None
            for data in early or []:
                self._log(data)

    def _log(self, data: bytes) -> None:
        if self.early is not None and not self.log_path:
            if len(self.early) < EARLY_LINES:
                self.early.append(data)
            return
        if self.log is None and self.log_path:
            try:  # opened at the first line, so a run that fails early leaves no empty directories
                os.makedirs(os.path.dirname(os.path.abspath(self.log_path)), exist_ok=True)
                self.log = open(self.log_path, "ab", buffering=0)  # unbuffered: nothing lost at os._exit
                command = " ".join(sys.argv).replace("\n", "\\n")  # the log is appended to: a header per run
                self.log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {command}\n".encode())
            except OSError:
                self.log_path = None  # cannot be written: skip the log
        if self.log is not None:
            try:
                self.log.write(data)
            except OSError:
                self.log, self.log_path = None, None

    def close(self) -> None:
        self.set_status("")
        if self.log is not None:
            self.log.close()
            self.log = None


_active: _Terminal | None = None  # while quiet_stderr is on
_default = _Terminal(2)  # without it: fd 2 as it is


def write_line(text: str) -> None:
    """Writes a line to the real stderr (and the log) from this process, above the status line if one is shown."""
    (_active or _default).line(text.rstrip("\n").encode("utf-8", "replace") + b"\n")


def open_log(log_path: str) -> None:
    """Starts the log of quiet_stderr(verbose, None) at `log_path`, with every line so far: a run opens it once
    its output directory is known to be wanted (bad input must leave nothing behind)."""
    if _active is not None:
        _active.open_log(log_path)


def set_status(text: str) -> None:
    """Draws the status line at the bottom of the terminal; only while quiet_stderr is on and on a terminal."""
    if is_terminal():
        _active.set_status(text)


def is_terminal() -> bool:
    """Whether a status line can be kept: only quiet_stderr sees every line, to redraw the status after it."""
    return _active is not None and os.isatty(_active.fd)


@contextlib.contextmanager
def quiet_stderr(verbose: bool, log_path: str | None):
    """Every line written to fd 2 from now on, by this process or any it starts, goes to `log_path`, and to the
    real stderr unless it is noise (all of it if `verbose`). On exit fd 2 is restored and every line written
    before is through, so the process may end with os._exit right after."""
    global _active
    sys.stderr.flush()
    real = os.dup(2)  # not inheritable: children see only the pipe
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    terminal = _Terminal(real, log_path)
    # Children (the forkserver) may hold the pipe open past our exit, so the end of the copy is a token, not EOF.
    token = f"\0modelsearch-console-end-{uuid.uuid4().hex}".encode()
    copier = threading.Thread(target=_copy, args=(read_end, terminal, verbose, token), name="quiet-stderr",
                              daemon=True)
    copier.start()
    _active, failure = terminal, None
    try:
        yield
    except BaseException as e:
        failure = e
        raise
    finally:
        sys.stderr.flush()
        os.dup2(real, 2)
        os.write(write_end, token)  # shorter than PIPE_BUF: written whole, after everything written before
        os.close(write_end)
        copier.join()
        _active = None
        if failure is not None and not isinstance(failure, (SystemExit, KeyboardInterrupt)):
            # The caller prints a bug's traceback once fd 2 is the terminal again: the log gets it here.
            terminal.line("".join(traceback.format_exception(failure)).encode(), show=False)
        terminal.close()
        os.close(read_end)
        os.close(real)


def _copy(read_end: int, terminal: _Terminal, verbose: bool, token: bytes) -> None:
    """Copies whole lines from the pipe until the token; a last line without a newline gets one."""
    pending, after_noise = b"", False
    while True:
        try:
            chunk = os.read(read_end, 65536)
        except OSError:
            chunk = b""
        pending += chunk
        end = pending.find(token)
        if end >= 0:
            pending = pending[:end]
        *lines, pending = pending.split(b"\n")
        if end >= 0 or not chunk:
            lines += [pending] if pending else []
        for line in lines:
            noise = bool(NOISE.match(line)) or (after_noise and line.startswith(CONTINUATION))
            after_noise = noise
            terminal.line(line + b"\n", show=verbose or not noise)
        if end >= 0 or not chunk:
            return


def node_stage(node_id: str) -> str:
    """What the pipeline is doing while node `node_id` runs (for Progress.stage)."""
    if node_id.startswith("trainer"):
        return "searching"
    return {"ImportExampleGen": "importing", "Preprocess": "preprocessing", "SearchGenerator": "opening the study",
            "Ensembler": "ensembling", "Distiller": "distilling", "ModelSelector": "selecting",
            "Pusher": "pushing"}.get(node_id, node_id)


def time_left(to_go: int, mean: float, running: list[float], trainers: int) -> float:
    """The search's time left: the trials to go at `mean` seconds each, less what the running ones have done
    (`running`: their seconds so far), shared by the trainers that still have a trial to run."""
    work = to_go * mean - sum(min(seconds, mean) for seconds in running)
    return max(0.0, work) / max(1, min(trainers, to_go))


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{seconds:02d}" if minutes >= 60 else f"{minutes}:{seconds:02d}"


def _score(values: dict) -> str:
    """A trial's or an epoch's validation score: accuracy for classification, else the loss."""
    for name, form in (("val_accuracy", ".4f"), ("val_loss", ".4g"), ("loss", ".4g")):
        if name in values:
            return f"{name} {values[name]:{form}}"
    return ""


class Progress:
    """Where the search stands, from the trial store, read every `interval` seconds in a thread of its own.

    `budget`: the study's search trials in all on its data version, so trials of earlier runs count as done.
    `stage`: what the pipeline is doing, set by the caller ("preprocessing", "searching", ...)."""

    def __init__(self, store_config: dict, study: str, budget: int, trainers: int, data_version: int | None = None,
                 interval: float = 2.0, plain_every: float = 30.0):
        self.store_config, self.study, self.budget, self.trainers = dict(store_config), study, budget, trainers
        self.data_version, self.interval, self.plain_every = data_version, interval, plain_every
        self.stage = ""
        self.started = time.time()
        self.trials = None  # the trials that count (data version), as last read; None before the first read
        self._store = self._view = self._error = None
        self._stop = threading.Event()
        self._thread = None
        self._shown, self._shown_at = None, 0.0  # what the last plain line said (done, stage), and when

    def start(self, since: float | None = None) -> None:
        """Starts the display; `since`: when the run began (time.time()), for the time elapsed (default now)."""
        self.started = time.time() if since is None else since
        self._thread = threading.Thread(target=self._run, name="progress", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        set_status("")

    def _run(self) -> None:
        while not self._stop.is_set():
            self.update()
            self._stop.wait(self.interval)

    def update(self, now: float | None = None) -> None:
        """Reads the store once and shows the result: the status line, or a plain line when one is due."""
        self._read()
        now = time.time() if now is None else now
        line, done = self.line(now)
        if self._stop.is_set():
            return
        if is_terminal():
            set_status(line[len(PREFIX):])  # it stays in place: no need to say whose it is
        elif self.trials is None:  # a plain line is kept: none until there is something to say
            return
        elif (done, self.stage) != self._shown or (self._running() and now - self._shown_at >= self.plain_every):
            self._shown, self._shown_at = (done, self.stage), now
            write_line(line.split(" | ")[0])  # no epochs: a plain line is kept, and they change all the time

    def _read(self) -> None:
        path = self.store_config.get("sqlite")
        if path and not os.path.exists(path):  # not created yet (the pipeline creates it): don't create it here
            return
        try:
            if self._store is None:
                from modelsearch.search import StudyView
                from modelsearch.trialstore import TrialStore
                self._store, self._view = TrialStore(self.store_config), StudyView()
            trials = self._view.read(self._store, self.study)  # only what changed since the last read
            version = self.data_version if self.data_version is not None else self._store.data_version(self.study)
        except Exception as e:  # a writer holds the lock, the store is being created: read again next time
            if str(e) != self._error:  # in the log, once for each new error
                self._error = str(e)
                (_active or _default).line(f"{PREFIX}cannot read the trial store: {e}\n".encode(), show=False)
            return
        self.trials = [t for t in trials if t.data_version == version]

    def _running(self) -> list:
        from modelsearch.trialstore import RUNNING
        return [t for t in self.trials or [] if t.state == RUNNING]

    def line(self, now: float) -> tuple[str, int | None]:
        """The progress line (the running trials' epochs after " | ") and the count of search trials done."""
        from modelsearch.trialstore import COMPLETED, DIVERGED, FAILED, SEARCH, STOPPED

        parts, elapsed = [self.stage] if self.stage else [], f"{_clock(now - self.started)} elapsed"
        if self.trials is None:  # the store is not there yet
            return PREFIX + ", ".join(parts + [elapsed]), None
        finished = [t for t in self.trials if t.kind == SEARCH and t.state in (COMPLETED, STOPPED, FAILED, DIVERGED)]
        running = self._running()
        done, earlier = len(finished), sum(t.finished < self.started for t in finished)
        parts.append(f"{done}/{self.budget} search trials done" + (f" ({earlier} from earlier runs)" * bool(earlier)))
        parts.append(f"{len(running)} running")
        scored = [t for t in finished if t.state == COMPLETED and "objective" in t.metrics]
        if scored:
            best = max(scored, key=lambda t: t.metrics["objective"])
            parts.append(f"best {_score(best.metrics)} (trial {best.trial_id})")
        parts.append(elapsed)
        durations = [t.finished - t.started for t in finished if t.finished > t.started]
        if durations and done < self.budget:
            left = time_left(self.budget - done, sum(durations) / len(durations),
                             [now - t.started for t in running if t.kind == SEARCH], self.trainers)
            parts.append(f"about {_clock(left)} left")
        epochs = " | " + ", ".join(map(_epoch, running)) if running else ""
        return PREFIX + ", ".join(parts) + epochs, done


def _epoch(trial) -> str:
    """A running trial's last epoch, as its trainer recorded it in its curve."""
    if not trial.curve:
        return f"trial {trial.trial_id} starting"
    last = trial.curve[-1]
    return f"trial {trial.trial_id} epoch {last.get('epoch', len(trial.curve))} {_score(last)}".strip()
