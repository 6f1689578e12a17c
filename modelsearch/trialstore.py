"""The trial store: every trial of a study, in ML Metadata.

One MLMD context per study; one execution per trial; a trial's model is an MLMD artifact that the
trial outputs and that its children (weight sharing) take as input, so MLMD's own lineage graph
shows where every model came from. The search reads completed trials from here and nothing else.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import socket
import time

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2 as mlmd

from common.errors import UserError, first_line

STUDY_TYPE = "modelsearch.Study"
TRIAL_TYPE = "modelsearch.Trial"
MODEL_TYPE = "modelsearch.TrialModel"

RUNNING, COMPLETED, FAILED, ABANDONED = "running", "completed", "failed", "abandoned"
# A trial whose trainer stopped renewing its lease (killed, out of memory, machine lost) is ABANDONED; one that
# the run training it left behind (Ctrl-C, SIGTERM, or killed and found by the next run, which holds the study's
# lock) is INTERRUPTED. Both are LOST: neither evidence nor taken, not counted against the budget, and their
# candidate may be proposed again. A DIVERGED trial (NaN or infinite loss) is a failure of its candidate.
INTERRUPTED, DIVERGED = "interrupted", "diverged"
LOST = (ABANDONED, INTERRUPTED)
# A STOPPED search trial was cut short by early stopping across trials (modelsearch/early_stopping.py): its
# curve was below the completed trials' median. It is recorded like a completed one (metrics, model, curve) with
# the reason in `error`, counts against the budget, and is EVIDENCE for the strategies (ranked by its objective
# like a completed trial, so it is a parent only if that puts it in the beam); the exploit stages (teacher,
# ensemble members, student, push) take completed trials only, and the rule compares with completed curves only.
STOPPED = "stopped"
EVIDENCE = (COMPLETED, STOPPED)
# What a trial is: a search candidate, a replica of the best (other seed), an ensemble, a distilled student.
SEARCH, REPLICA, ENSEMBLE, STUDENT = "search", "replica", "ensemble", "student"
DECISION_TYPE = "modelsearch.Decision"
TIME_BUDGET = "time_budget"  # the decision that holds a search's deadline (open_time_budget)
RESERVATION_TYPE = "modelsearch.Reservation"
LOCK_TYPE = "modelsearch.StudyLock"
DATA_TYPE = "modelsearch.DataVersion"
LOCK_SECONDS = 60.0  # a study lock not renewed for this long was held by a run that died
LEASE_SECONDS = 120.0  # a running trial whose lease is older than this was lost (see heartbeat())
_METRIC_PREFIX = "metric."


@dataclasses.dataclass
class Trial:
    """A plain, serialisable record of one trial."""

    trial_id: int
    study: str
    state: str
    spec: dict
    parent_id: int | None = None
    mutation: str = ""
    number: int = -1       # a search trial's place in its study (0, 1, ...); -1 for exploit trials
    seed: int = 0
    teacher_id: int | None = None
    kind: str = SEARCH
    distillation: dict = dataclasses.field(default_factory=dict)  # mode, weight, temperature when distilled
    metrics: dict = dataclasses.field(default_factory=dict)
    num_params: int = 0
    num_inherited: int = 0
    model_uri: str = ""
    started: float = 0.0
    finished: float = 0.0
    train_seconds: float = 0.0
    error: str = ""            # why it failed, diverged, was lost, or was stopped early (STOPPED)
    worker: str = ""           # host:pid of the trainer that holds the trial
    lease_expires: float = 0.0  # 0: no lease (a trial recorded in one step, e.g. an ensemble)
    peak_rss_mb: float = 0.0   # the trial process's peak resident memory
    data_version: int = 0      # the study's data version the trial trained on (see modelsearch/data_versions.py)
    curve: list = dataclasses.field(default_factory=list)  # per epoch: {"epoch", "loss", "val_loss", ...}

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def connection_config(config: dict | str) -> mlmd.ConnectionConfig:
    """{"sqlite": PATH} or {"mysql": {"host", "port", "database", "user", "password" | "password_env"}} (or its JSON)."""
    if isinstance(config, str):
        config = json.loads(config)
    result = mlmd.ConnectionConfig()
    if "sqlite" in config:
        path = config["sqlite"]
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        result.sqlite.filename_uri = path
        result.sqlite.connection_mode = mlmd.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    elif "mysql" in config:
        mysql = config["mysql"]
        result.mysql.host = mysql.get("host", "127.0.0.1")
        result.mysql.port = int(mysql.get("port", 3306))
        result.mysql.database = mysql["database"]
        result.mysql.user = mysql.get("user", "root")
        # "password_env" names an environment variable (a Kubernetes secret), so no password is compiled in.
        result.mysql.password = mysql.get("password") or os.environ.get(mysql.get("password_env", ""), "")
    else:
        raise UserError(f"trial store config {config!r} names no backend: use {{\"sqlite\": PATH}} or {{\"mysql\": {{...}}}}")
    return result


def open_store(config: dict) -> "TrialStore":
    """TrialStore(config), with MLMD's refusal of a damaged or foreign file where the store should be as one
    UserError line (without the SQL statement MLMD appends, or a password)."""
    try:
        return TrialStore(config)
    except UserError:
        raise
    except Exception as e:  # MLMD raises its own error classes
        why = first_line(e).split(" query: ")[0]
        where = config.get("sqlite") or "MySQL {host}/{database}".format(**{"host": "", "database": "",
                                                                              **config.get("mysql", {})})
        raise UserError(f"the trial store {where} cannot be opened ({why}); it is damaged or not a trial store: "
                        "move it away to start a new study, or pass another --output-dir") from None


class StudyLocked(UserError):
    """Another run holds the study's lock."""

    def __init__(self, study: str, holder: str, command: str = ""):
        super().__init__(f"study {study!r} is being searched by another run ({holder}"
                         + (f": {command}" if command else "") + "); wait for it to finish, or pass another "
                         "--output-dir or --study NAME to search separately")


def _may_be_alive(holder: str) -> bool:
    """Whether the process named host:pid may still run: only a process of this machine can be checked."""
    host, _, pid = holder.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


class ReservationConflict(Exception):
    """Another trainer reserved the same trial number or candidate first: read the study again and retry."""


def _transient(error: Exception) -> bool:
    """A call that lost a race to a concurrent trainer, worth trying again: a lock (SQLite's "database is
    locked", which MLMD raises as AbortedError once its own retries are spent; MySQL's deadlock), or MLMD's
    "please retry" when several trainers create the tables of an empty database at once."""
    from ml_metadata import errors
    text = str(error).lower()
    return isinstance(error, errors.AbortedError) or any(
        s in text for s in ("database is locked", "deadlock", "lock wait timeout", "busy", "please retry"))


def _retrying(call, *args, tries: int = 50, **kwargs):
    """Runs an MLMD call, retrying writes that lost a lock to a concurrent trainer (with a growing pause)."""
    from ml_metadata import errors
    for attempt in range(tries):
        try:
            return call(*args, **kwargs)
        except errors.AlreadyExistsError:
            raise
        except Exception as e:  # MLMD raises its own error classes; only lock contention is retried
            if not _transient(e) or attempt == tries - 1:
                raise
            time.sleep(min(0.05 * (attempt + 1), 1.0))


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class TrialStore:
    def __init__(self, config: dict | str):
        self.config = json.loads(config) if isinstance(config, str) else dict(config)
        self._store = _retrying(metadata_store.MetadataStore, connection_config(self.config))
        self._study_type = self._put_type(mlmd.ContextType, self._store.put_context_type, STUDY_TYPE, {})
        self._trial_type = self._put_type(
            mlmd.ExecutionType, self._store.put_execution_type, TRIAL_TYPE,
            {"study": mlmd.STRING, "state": mlmd.STRING, "spec": mlmd.STRING, "parent_id": mlmd.INT,
             "mutation": mlmd.STRING, "number": mlmd.INT, "seed": mlmd.INT, "teacher_id": mlmd.INT,
             "num_params": mlmd.INT, "num_inherited": mlmd.INT, "model_uri": mlmd.STRING,
             "started": mlmd.DOUBLE, "finished": mlmd.DOUBLE, "train_seconds": mlmd.DOUBLE, "error": mlmd.STRING,
             "kind": mlmd.STRING, "distillation": mlmd.STRING, "worker": mlmd.STRING,
             "lease_expires": mlmd.DOUBLE, "peak_rss_mb": mlmd.DOUBLE, "data_version": mlmd.INT,
             "curve": mlmd.STRING})
        self._decision_type = self._put_type(mlmd.ExecutionType, self._store.put_execution_type, DECISION_TYPE,
                                             {"study": mlmd.STRING, "name": mlmd.STRING, "details": mlmd.STRING})
        self._model_type = self._put_type(mlmd.ArtifactType, self._store.put_artifact_type, MODEL_TYPE,
                                          {"trial_id": mlmd.INT})
        self._reservation_type = self._put_type(mlmd.ArtifactType, self._store.put_artifact_type,
                                                RESERVATION_TYPE, {})
        self._lock_type = self._put_type(mlmd.ExecutionType, self._store.put_execution_type, LOCK_TYPE,
                                         {"study": mlmd.STRING, "holder": mlmd.STRING, "expires": mlmd.DOUBLE,
                                          "released": mlmd.INT, "command": mlmd.STRING})
        self._data_type = self._put_type(mlmd.ExecutionType, self._store.put_execution_type, DATA_TYPE,
                                         {"study": mlmd.STRING, "version": mlmd.INT, "fingerprint": mlmd.STRING,
                                          "signature": mlmd.STRING})
        self._contexts = {}

    @staticmethod
    def _put_type(proto_cls, put, name, properties):
        type_proto = proto_cls(name=name)
        for key, value in properties.items():
            type_proto.properties[key] = value
        return _retrying(put, type_proto, can_add_fields=True, can_omit_fields=True)

    def _study_context(self, study: str) -> mlmd.Context:
        if study in self._contexts:
            return self._contexts[study]
        context = self._store.get_context_by_type_and_name(STUDY_TYPE, study)
        if context is None:
            context = mlmd.Context(type_id=self._study_type, name=study)
            try:
                [context.id] = _retrying(self._store.put_contexts, [context])
            except Exception:  # another trainer created it first
                context = self._store.get_context_by_type_and_name(STUDY_TYPE, study)
        self._contexts[study] = context
        return context

    def _new_trial(self, study: str, spec: dict, parent_id, mutation: str, seed: int, teacher_id, kind: str,
                   distillation: dict | None, lease_seconds: float | None, data_version: int = 0) -> mlmd.Execution:
        execution = mlmd.Execution(type_id=self._trial_type, last_known_state=mlmd.Execution.RUNNING)
        props = execution.properties
        props["study"].string_value = study
        props["state"].string_value = RUNNING
        props["spec"].string_value = json.dumps(spec, sort_keys=True)
        props["mutation"].string_value = mutation
        props["seed"].int_value = seed
        props["started"].double_value = time.time()
        props["kind"].string_value = kind
        props["distillation"].string_value = json.dumps(distillation or {}, sort_keys=True)
        props["worker"].string_value = worker_name()
        props["data_version"].int_value = data_version
        if lease_seconds:
            props["lease_expires"].double_value = time.time() + lease_seconds
        if parent_id is not None:
            props["parent_id"].int_value = parent_id
        if teacher_id is not None:
            props["teacher_id"].int_value = teacher_id
        return execution

    def _input_events(self, *trial_ids) -> list:
        """The models of these trials as MLMD inputs, so MLMD's lineage shows where every model came from."""
        events = []
        for source in dict.fromkeys(i for i in trial_ids if i is not None):
            model = self._model_artifact(source)
            if model is not None:
                events.append((model, mlmd.Event(type=mlmd.Event.INPUT)))
        return events

    def start_trial(self, study: str, spec: dict, parent_id: int | None = None, mutation: str = "",
                    seed: int = 0, teacher_id: int | None = None, kind: str = SEARCH,
                    distillation: dict | None = None, input_ids: tuple = (),
                    lease_seconds: float | None = None, data_version: int | None = None) -> int:
        """Records a running trial of the exploit phase (no budget, no reservation) and returns its id
        (MLMD's execution id: unique across trainers). The models of the parent, the teacher and
        `input_ids` (an ensemble's members) become the trial's MLMD inputs."""
        execution = self._new_trial(study, spec, parent_id, mutation, seed, teacher_id, kind, distillation,
                                    lease_seconds, self._version(study, data_version))
        events = self._input_events(parent_id, teacher_id, *input_ids)
        trial_id, _, _ = _retrying(self._store.put_execution, execution, events, [self._study_context(study)])
        return trial_id

    def reserve(self, study: str, number: int, evaluation: int, spec: dict, key: str, parent_id: int | None = None,
                mutation: str = "", seed: int = 0, teacher_id: int | None = None,
                distillation: dict | None = None, lease_seconds: float = LEASE_SECONDS,
                data_version: int | None = None) -> int:
        """Reserves search trial `number` of the study for `spec` (its `evaluation`-th training) and returns
        the running trial's id, or raises ReservationConflict when another trainer took either first.

        Atomic on SQLite and MySQL alike: MLMD keeps names unique per type, and one put_execution writes the
        trial (named after its number) and a reservation artifact (named after the candidate and evaluation)
        in one transaction, so of two trainers that read the same study and ask at the same instant, one
        wins and the other writes nothing."""
        execution = self._new_trial(study, spec, parent_id, mutation, seed, teacher_id, SEARCH, distillation,
                                    lease_seconds, self._version(study, data_version))
        execution.name = f"{study}/search/{number}"
        execution.properties["number"].int_value = number
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
        reservation = mlmd.Artifact(type_id=self._reservation_type, name=f"{study}/{digest}/{evaluation}",
                                    uri="", state=mlmd.Artifact.LIVE)
        events = [(reservation, mlmd.Event(type=mlmd.Event.INTERNAL_OUTPUT)),
                  *self._input_events(parent_id, teacher_id)]
        from ml_metadata import errors
        try:
            trial_id, _, _ = _retrying(self._store.put_execution, execution, events, [self._study_context(study)])
        except errors.AlreadyExistsError:
            raise ReservationConflict(f"search trial {number} or this candidate of {study} is taken") from None
        return trial_id

    def heartbeat(self, trial_id: int, lease_seconds: float = LEASE_SECONDS) -> None:
        """Renews a running trial's lease. A masked update: it cannot overwrite what the trial's own
        process records meanwhile (its metrics and state)."""
        execution = mlmd.Execution(id=trial_id, type_id=self._trial_type)
        execution.properties["lease_expires"].double_value = time.time() + lease_seconds
        _retrying(self._store.put_executions, [execution], field_mask_paths=["properties.lease_expires"])

    def reclaim_expired(self, study: str, trials: list[Trial] | None = None, now: float | None = None) -> list[int]:
        """Marks the study's running trials whose lease expired as abandoned (their trainer died); returns them.
        `trials`: the study's trials as just read, if the caller has them (saves reading them again)."""
        now = time.time() if now is None else now
        trials = self.trials(study, (RUNNING,)) if trials is None else trials
        expired = [t for t in trials if t.state == RUNNING and 0 < t.lease_expires < now]
        # Read each again first: `trials` may be a few seconds old, and a trial that completed or renewed its
        # lease since must stay as it is (what is left is the instant between this read and the write).
        lost = [t for t in map(self.get, (t.trial_id for t in expired))
                if t.state == RUNNING and 0 < t.lease_expires < now]
        for t in lost:
            self._finish(t.trial_id, ABANDONED, f"lease expired {now - t.lease_expires:.0f} s ago: its trainer "
                         f"({t.worker}) stopped renewing it (killed, out of memory, or its machine was lost)")
        return [t.trial_id for t in lost]

    def _model_artifact(self, trial_id: int) -> mlmd.Artifact | None:
        events = self._store.get_events_by_execution_ids([trial_id])
        outputs = [e.artifact_id for e in events if e.type == mlmd.Event.OUTPUT]
        return self._store.get_artifacts_by_id(outputs)[0] if outputs else None

    def complete_trial(self, trial_id: int, metrics: dict, num_params: int, num_inherited: int,
                       model_uri: str, train_seconds: float, peak_rss_mb: float = 0.0, state: str = COMPLETED,
                       reason: str = "") -> None:
        """Records a trial's end with its metrics and model: COMPLETED (`reason`: a note, such as the time
        budget's cut), or STOPPED early with the reason."""
        if state not in EVIDENCE:
            raise ValueError(f"a trial with a model ends completed or stopped, not {state!r}")
        [execution] = self._store.get_executions_by_id([trial_id])
        execution.last_known_state = mlmd.Execution.COMPLETE
        props = execution.properties
        props["state"].string_value = state
        if reason:
            props["error"].string_value = reason[-2000:]
        props["num_params"].int_value = int(num_params)
        props["num_inherited"].int_value = int(num_inherited)
        props["model_uri"].string_value = model_uri
        props["finished"].double_value = time.time()
        props["train_seconds"].double_value = float(train_seconds)
        props["peak_rss_mb"].double_value = float(peak_rss_mb)
        for name, value in metrics.items():
            execution.custom_properties[_METRIC_PREFIX + name].double_value = float(value)
        model = mlmd.Artifact(type_id=self._model_type, uri=model_uri, state=mlmd.Artifact.LIVE)
        model.properties["trial_id"].int_value = trial_id
        context = self._study_context(props["study"].string_value)
        _retrying(self._store.put_execution, execution, [(model, mlmd.Event(type=mlmd.Event.OUTPUT))], [context])

    def fail_trial(self, trial_id: int, error: str, state: str = FAILED) -> None:
        """Records a trial's end without a model: FAILED, DIVERGED or INTERRUPTED, with the reason."""
        self._finish(trial_id, state, error)

    def record_curve(self, trial_id: int, curve: list[dict]) -> None:
        """The running trial's learning curve so far (one entry per epoch); a masked update, like heartbeat."""
        execution = mlmd.Execution(id=trial_id, type_id=self._trial_type)
        execution.properties["curve"].string_value = json.dumps(curve)
        _retrying(self._store.put_executions, [execution], field_mask_paths=["properties.curve"])

    def interrupt_running(self, study: str, reason: str) -> list[int]:
        """Closes every running trial of the study as INTERRUPTED: called only by the run that holds the study's
        lock, for which any running trial is a leftover of a run that ended (or of its own, when it stops)."""
        running = [t.trial_id for t in self.trials(study, (RUNNING,))]
        for trial_id in running:
            self._finish(trial_id, INTERRUPTED, reason)
        return running

    def _finish(self, trial_id: int, state: str, error: str) -> None:
        execution = mlmd.Execution(id=trial_id, type_id=self._trial_type,
                                   last_known_state=mlmd.Execution.FAILED if state in (FAILED, DIVERGED)
                                   else mlmd.Execution.CANCELED)
        execution.properties["state"].string_value = state
        execution.properties["error"].string_value = error[-2000:]
        execution.properties["finished"].double_value = time.time()
        _retrying(self._store.put_executions, [execution], field_mask_paths=[
            "last_known_state", "properties.state", "properties.error", "properties.finished"])

    def get(self, trial_id: int) -> Trial:
        executions = self._store.get_executions_by_id([trial_id])
        if not executions:
            raise KeyError(f"no trial {trial_id} in the trial store")
        return _to_trial(executions[0])

    def trials(self, study: str, states: tuple[str, ...] | None = None) -> list[Trial]:
        """The study's trials, oldest first; only those in `states` when given."""
        context = self._store.get_context_by_type_and_name(STUDY_TYPE, study)
        if context is None:
            return []
        executions = self._store.get_executions_by_context(context.id)
        trials = [_to_trial(e) for e in executions if e.type_id == self._trial_type]
        return sorted((t for t in trials if states is None or t.state in states), key=lambda t: t.trial_id)

    def trials_written_since(self, study: str, since: float) -> list[Trial]:
        """The study's trials created or updated at or after `since` (seconds since the epoch, by the clock of
        the process that wrote them), oldest first: what a reader that keeps the other trials must re-read.

        Newest updates first, in growing pages until one reaches past `since` (ordering and limits are
        MLMD's stable list options; its filter queries are gone from later versions)."""
        context = self._store.get_context_by_type_and_name(STUDY_TYPE, study)
        if context is None:
            return []
        since_ms, limit = int(since * 1000), 64
        while True:
            executions = self._store.get_executions_by_context(context.id, list_options=metadata_store.ListOptions(
                limit=limit, order_by=metadata_store.OrderByField.UPDATE_TIME, is_asc=False))
            if len(executions) < limit or executions[-1].last_update_time_since_epoch < since_ms:
                break
            limit *= 4
        return sorted((_to_trial(e) for e in executions
                       if e.type_id == self._trial_type and e.last_update_time_since_epoch >= since_ms),
                      key=lambda t: t.trial_id)

    def current_trials(self, study: str, states: tuple[str, ...] | None = None) -> list[Trial]:
        """The study's trials on its current data version: the only ones any comparison may use."""
        version = self.data_version(study)
        return [t for t in self.trials(study, states) if t.data_version == version]

    def completed(self, study: str, kinds: tuple[str, ...] = (SEARCH,)) -> list[Trial]:
        """Completed trials of the given kinds (by default the search's own candidates) on the current data."""
        return [t for t in self.current_trials(study, (COMPLETED,)) if t.kind in kinds]

    # Data versions: what data each trial trained on (modelsearch/data_versions.py decides when a new one starts).
    def data_versions(self, study: str) -> list[dict]:
        """The study's data versions, oldest first: {"version", "fingerprint", "signature", "recorded"}."""
        versions = [{"version": e.properties["version"].int_value,
                     "fingerprint": e.properties["fingerprint"].string_value,
                     "signature": json.loads(e.properties["signature"].string_value),
                     "recorded": e.create_time_since_epoch / 1000}
                    for e in self._store.get_executions_by_type(DATA_TYPE)
                    if e.properties["study"].string_value == study]
        return sorted(versions, key=lambda v: v["version"])

    def data_version(self, study: str) -> int:
        """The study's current data version (0 before any is recorded)."""
        versions = self.data_versions(study)
        return versions[-1]["version"] if versions else 0

    def _version(self, study: str, data_version: int | None) -> int:
        return self.data_version(study) if data_version is None else data_version

    def add_data_version(self, study: str, version: int, fingerprint: str, signature: dict) -> bool:
        """Records data version `version` of the study; False if another process recorded that number first."""
        execution = mlmd.Execution(type_id=self._data_type, name=f"{study}/data/{version}",
                                   last_known_state=mlmd.Execution.COMPLETE)
        execution.properties["study"].string_value = study
        execution.properties["version"].int_value = version
        execution.properties["fingerprint"].string_value = fingerprint
        execution.properties["signature"].string_value = json.dumps(signature, sort_keys=True)
        from ml_metadata import errors
        try:
            _retrying(self._store.put_execution, execution, [], [self._study_context(study)])
        except errors.AlreadyExistsError:
            return False
        return True

    # The study's lock: one run writes a study at a time (a second is refused; a dead holder's lock lapses).
    def acquire_lock(self, study: str, command: str = "", lock_seconds: float = LOCK_SECONDS) -> int:
        """Takes the study's lock for this process and returns its id, or raises StudyLocked naming the holder.

        Each taking is a new execution named after its generation, so of two runs that find the lock free at
        the same instant, MLMD's unique names let one win. A lock is free when released, when its holder
        stopped renewing it for `lock_seconds`, or when its holder was a process of this machine that is gone
        (a killed run: its successor need not wait for the lapse)."""
        from ml_metadata import errors
        locks = sorted((e for e in self._store.get_executions_by_type(LOCK_TYPE)
                        if e.properties["study"].string_value == study), key=lambda e: e.id)
        generation = len(locks)
        if locks:
            last = locks[-1].properties
            holder = last["holder"].string_value
            if (not last["released"].int_value and last["expires"].double_value > time.time()
                    and _may_be_alive(holder)):
                raise StudyLocked(study, holder, last["command"].string_value)
        execution = mlmd.Execution(type_id=self._lock_type, name=f"{study}/lock/{generation}",
                                   last_known_state=mlmd.Execution.RUNNING)
        props = execution.properties
        props["study"].string_value = study
        props["holder"].string_value = worker_name()
        props["expires"].double_value = time.time() + lock_seconds
        props["released"].int_value = 0
        props["command"].string_value = command
        try:
            lock_id, _, _ = _retrying(self._store.put_execution, execution, [], [self._study_context(study)])
        except errors.AlreadyExistsError:
            raise StudyLocked(study, "another run that started at the same moment") from None
        return lock_id

    def renew_lock(self, lock_id: int, lock_seconds: float = LOCK_SECONDS) -> None:
        execution = mlmd.Execution(id=lock_id, type_id=self._lock_type)
        execution.properties["expires"].double_value = time.time() + lock_seconds
        _retrying(self._store.put_executions, [execution], field_mask_paths=["properties.expires"])

    def release_lock(self, lock_id: int) -> None:
        execution = mlmd.Execution(id=lock_id, type_id=self._lock_type, last_known_state=mlmd.Execution.COMPLETE)
        execution.properties["released"].int_value = 1
        _retrying(self._store.put_executions, [execution],
                  field_mask_paths=["last_known_state", "properties.released"])

    def input_ids(self, trial_id: int) -> list[int]:
        """The trials whose models this trial took as inputs (parent, teacher, ensemble members)."""
        events = self._store.get_events_by_execution_ids([trial_id])
        artifacts = self._store.get_artifacts_by_id([e.artifact_id for e in events if e.type == mlmd.Event.INPUT])
        return sorted(a.properties["trial_id"].int_value for a in artifacts)

    def record_decision(self, study: str, name: str, details: dict) -> int:
        """Records a decision of the exploit phase (e.g. name "push": pushed or not, and why) in the study."""
        execution = mlmd.Execution(type_id=self._decision_type, last_known_state=mlmd.Execution.COMPLETE)
        execution.properties["study"].string_value = study
        execution.properties["name"].string_value = name
        execution.properties["details"].string_value = json.dumps(details, sort_keys=True)
        decision_id, _, _ = _retrying(self._store.put_execution, execution, [], [self._study_context(study)])
        return decision_id

    def decisions(self, study: str, name: str) -> list[dict]:
        """The study's recorded decisions called `name`, oldest first. Read among the decisions only (by type),
        not the study's trials: the cost does not grow with the study."""
        executions = [e for e in self._store.get_executions_by_type(DECISION_TYPE)
                      if e.properties["study"].string_value == study and e.properties["name"].string_value == name]
        return [json.loads(e.properties["details"].string_value) for e in sorted(executions, key=lambda e: e.id)]

    # The search's wall-clock budget: a decision recorded when the search opens (a rerun opens a new one), so
    # that every trainer, a local process or a pod, stops at the same deadline.
    def open_time_budget(self, study: str, seconds: float | None) -> float | None:
        """Records this run's search deadline (now + `seconds`; None: no time budget) and returns it."""
        deadline = time.time() + seconds if seconds else None
        self.record_decision(study, TIME_BUDGET, {"seconds": seconds, "deadline": deadline})
        return deadline

    def deadline(self, study: str) -> float | None:
        """The deadline (time.time()) of the study's latest opened search, or None when it has no time budget."""
        opened = self.decisions(study, TIME_BUDGET)
        return opened[-1]["deadline"] if opened else None


def _to_trial(execution: mlmd.Execution) -> Trial:
    props = execution.properties

    def optional_int(name):
        return props[name].int_value if name in props else None

    return Trial(
        trial_id=execution.id,
        study=props["study"].string_value,
        state=props["state"].string_value,
        spec=json.loads(props["spec"].string_value),
        parent_id=optional_int("parent_id"),
        mutation=props["mutation"].string_value,
        number=props["number"].int_value if "number" in props else -1,
        seed=props["seed"].int_value,
        teacher_id=optional_int("teacher_id"),
        kind=props["kind"].string_value if "kind" in props else SEARCH,
        distillation=json.loads(props["distillation"].string_value) if "distillation" in props else {},
        metrics={k[len(_METRIC_PREFIX):]: v.double_value
                 for k, v in execution.custom_properties.items() if k.startswith(_METRIC_PREFIX)},
        num_params=props["num_params"].int_value,
        num_inherited=props["num_inherited"].int_value,
        model_uri=props["model_uri"].string_value,
        started=props["started"].double_value,
        finished=props["finished"].double_value,
        train_seconds=props["train_seconds"].double_value,
        error=props["error"].string_value,
        worker=props["worker"].string_value,
        lease_expires=props["lease_expires"].double_value,
        peak_rss_mb=props["peak_rss_mb"].double_value,
        data_version=props["data_version"].int_value,
        curve=json.loads(props["curve"].string_value) if "curve" in props else [],
    )
