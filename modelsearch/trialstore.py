"""The trial store: every trial of a study, in ML Metadata.

One MLMD context per study; one execution per trial; a trial's model is an MLMD artifact that the
trial outputs and that its children (weight sharing) take as input, so MLMD's own lineage graph
shows where every model came from. The search reads completed trials from here and nothing else.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2 as mlmd

from modelsearch.errors import UserError

STUDY_TYPE = "modelsearch.Study"
TRIAL_TYPE = "modelsearch.Trial"
MODEL_TYPE = "modelsearch.TrialModel"

RUNNING, COMPLETED, FAILED = "running", "completed", "failed"
# What a trial is: a search candidate, a replica of the best (other seed), an ensemble, a distilled student.
SEARCH, REPLICA, ENSEMBLE, STUDENT = "search", "replica", "ensemble", "student"
DECISION_TYPE = "modelsearch.Decision"
_STATE = {RUNNING: mlmd.Execution.RUNNING, COMPLETED: mlmd.Execution.COMPLETE, FAILED: mlmd.Execution.FAILED}
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
    round: int = 0
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
    error: str = ""

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


class TrialStore:
    def __init__(self, config: dict | str):
        self.config = json.loads(config) if isinstance(config, str) else dict(config)
        self._store = metadata_store.MetadataStore(connection_config(self.config))
        self._study_type = self._put_type(mlmd.ContextType, self._store.put_context_type, STUDY_TYPE, {})
        self._trial_type = self._put_type(
            mlmd.ExecutionType, self._store.put_execution_type, TRIAL_TYPE,
            {"study": mlmd.STRING, "state": mlmd.STRING, "spec": mlmd.STRING, "parent_id": mlmd.INT,
             "mutation": mlmd.STRING, "round": mlmd.INT, "seed": mlmd.INT, "teacher_id": mlmd.INT,
             "num_params": mlmd.INT, "num_inherited": mlmd.INT, "model_uri": mlmd.STRING,
             "started": mlmd.DOUBLE, "finished": mlmd.DOUBLE, "train_seconds": mlmd.DOUBLE, "error": mlmd.STRING,
             "kind": mlmd.STRING, "distillation": mlmd.STRING})
        self._decision_type = self._put_type(mlmd.ExecutionType, self._store.put_execution_type, DECISION_TYPE,
                                             {"study": mlmd.STRING, "name": mlmd.STRING, "details": mlmd.STRING})
        self._model_type = self._put_type(mlmd.ArtifactType, self._store.put_artifact_type, MODEL_TYPE,
                                          {"trial_id": mlmd.INT})

    @staticmethod
    def _put_type(proto_cls, put, name, properties):
        type_proto = proto_cls(name=name)
        for key, value in properties.items():
            type_proto.properties[key] = value
        return put(type_proto, can_add_fields=True)

    def _study_context(self, study: str) -> mlmd.Context:
        context = self._store.get_context_by_type_and_name(STUDY_TYPE, study)
        if context is None:
            context = mlmd.Context(type_id=self._study_type, name=study)
            try:
                [context.id] = self._store.put_contexts([context])
            except Exception:  # another trainer created it first
                context = self._store.get_context_by_type_and_name(STUDY_TYPE, study)
        return context

    def start_trial(self, study: str, spec: dict, parent_id: int | None = None, mutation: str = "",
                    round: int = 0, seed: int = 0, teacher_id: int | None = None, kind: str = SEARCH,
                    distillation: dict | None = None, input_ids: tuple = ()) -> int:
        """Records a running trial and returns its id (MLMD's execution id: unique across trainers).

        The models of the parent, the teacher and `input_ids` (an ensemble's members) become the
        trial's MLMD inputs, so MLMD's lineage shows where every model came from."""
        execution = mlmd.Execution(type_id=self._trial_type, last_known_state=mlmd.Execution.RUNNING)
        props = execution.properties
        props["study"].string_value = study
        props["state"].string_value = RUNNING
        props["spec"].string_value = json.dumps(spec, sort_keys=True)
        props["mutation"].string_value = mutation
        props["round"].int_value = round
        props["seed"].int_value = seed
        props["started"].double_value = time.time()
        props["kind"].string_value = kind
        props["distillation"].string_value = json.dumps(distillation or {}, sort_keys=True)
        if parent_id is not None:
            props["parent_id"].int_value = parent_id
        if teacher_id is not None:
            props["teacher_id"].int_value = teacher_id
        events = []
        sources = dict.fromkeys(i for i in (parent_id, teacher_id, *input_ids) if i is not None)
        for source in sources:
            model = self._model_artifact(source)
            if model is not None:
                events.append((model, mlmd.Event(type=mlmd.Event.INPUT)))
        context = self._study_context(study)
        trial_id, _, _ = self._store.put_execution(execution, events, [context])
        return trial_id

    def _model_artifact(self, trial_id: int) -> mlmd.Artifact | None:
        events = self._store.get_events_by_execution_ids([trial_id])
        outputs = [e.artifact_id for e in events if e.type == mlmd.Event.OUTPUT]
        return self._store.get_artifacts_by_id(outputs)[0] if outputs else None

    def complete_trial(self, trial_id: int, metrics: dict, num_params: int, num_inherited: int,
                       model_uri: str, train_seconds: float) -> None:
        [execution] = self._store.get_executions_by_id([trial_id])
        execution.last_known_state = mlmd.Execution.COMPLETE
        props = execution.properties
        props["state"].string_value = COMPLETED
        props["num_params"].int_value = int(num_params)
        props["num_inherited"].int_value = int(num_inherited)
        props["model_uri"].string_value = model_uri
        props["finished"].double_value = time.time()
        props["train_seconds"].double_value = float(train_seconds)
        for name, value in metrics.items():
            execution.custom_properties[_METRIC_PREFIX + name].double_value = float(value)
        model = mlmd.Artifact(type_id=self._model_type, uri=model_uri, state=mlmd.Artifact.LIVE)
        model.properties["trial_id"].int_value = trial_id
        context = self._study_context(props["study"].string_value)
        self._store.put_execution(execution, [(model, mlmd.Event(type=mlmd.Event.OUTPUT))], [context])

    def fail_trial(self, trial_id: int, error: str) -> None:
        [execution] = self._store.get_executions_by_id([trial_id])
        execution.last_known_state = mlmd.Execution.FAILED
        execution.properties["state"].string_value = FAILED
        execution.properties["error"].string_value = error[-2000:]
        execution.properties["finished"].double_value = time.time()
        self._store.put_execution(execution, [], [])

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
        trials.sort(key=lambda t: t.trial_id)
        return [t for t in trials if states is None or t.state in states]

    def completed(self, study: str, kinds: tuple[str, ...] = (SEARCH,)) -> list[Trial]:
        """Completed trials of the given kinds (by default the search's own candidates)."""
        return [t for t in self.trials(study, (COMPLETED,)) if t.kind in kinds]

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
        decision_id, _, _ = self._store.put_execution(execution, [], [self._study_context(study)])
        return decision_id

    def decisions(self, study: str, name: str) -> list[dict]:
        """The study's recorded decisions called `name`, oldest first."""
        context = self._store.get_context_by_type_and_name(STUDY_TYPE, study)
        if context is None:
            return []
        executions = [e for e in self._store.get_executions_by_context(context.id)
                      if e.type_id == self._decision_type and e.properties["name"].string_value == name]
        return [json.loads(e.properties["details"].string_value) for e in sorted(executions, key=lambda e: e.id)]


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
        round=props["round"].int_value,
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
    )
