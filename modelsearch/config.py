"""The search configuration: a JSON file, every key optional, each checked with a clear error."""
from __future__ import annotations

import dataclasses
import json
import math
import re

from common.numbers import is_number
from modelsearch import early_stopping, objective
from modelsearch.errors import UserError

DEFAULT_KNOBS = {
    "learning_rate": [0.001, 0.003, 0.0003, 0.01],
    "optimizer": ["adam", "adamw", "rmsprop", "sgd"],
    "dropout": [0.0, 0.1, 0.2, 0.3],
    "batch_size": [64, 32, 128],
}

DISTILLATION_MODES = ("none", "mse_logits", "soft_ce", "adaptive")
PUSH_POLICIES = ("best_accuracy", "within_budget")
# The exploit phase's settings: objects in the configuration file, each key optional.
SECTIONS = {
    # During the search: learn from the best completed trial so far (the teacher). "adaptive" is
    # soft_ce whose weight ramps from 0 to `weight` over the first `ramp_trials` completed trials.
    "distillation": {"mode": "none", "weight": 0.5, "temperature": 3.0, "ramp_trials": 8},
    # Ensembles of the top_k trials (average, learned weights) and of `replicas` retrainings of the best.
    "ensemble": {"top_k": 3, "replicas": 2, "methods": ["average", "weighted", "replicas"]},
    # The student: several architectures distilled from the ensemble (soft_ce on its soft targets and the
    # labels): the smallest trial within `tolerance` (validation objective) of the best (or the best within
    # `max_params`), the best at each width factor of `widths` (every block's units, filters... scaled), and
    # the `smallest` smallest searched architectures; the smallest within `tolerance` of the best is kept.
    "student": {"tolerance": 0.01, "max_params": None, "weight": 0.7, "temperature": 3.0,
                "widths": [0.5, 0.25], "smallest": 2},
    # Which model is pushed: the best on validation, or the best with at most `max_params` parameters.
    "push": {"policy": "best_accuracy", "max_params": None},
    # Cluster runs only (the Kubeflow / Vertex compile; a local run ignores it): what each trainer pod gets
    # (Kubernetes quantities: cpu "4" or "500m", memory "16Gi") and how often a failed trainer is started
    # again (it carries on from the trial store).
    "trainer_pods": {"cpu": None, "memory": None, "gpus": 0, "gpu_type": "nvidia.com/gpu", "retries": 2},
    # Early stopping across trials (modelsearch/early_stopping.py, where the defaults are explained): a search
    # trial whose best validation objective is below the median of completed trials' mean at the same epoch
    # (by more than `margin`) stops there, from epoch `min_epochs` and once `min_trials` trials completed.
    "early_stopping": dict(early_stopping.DEFAULTS),
    # What the search maximises (modelsearch/objective.py, where the formulas are): the validation metric, or
    # traded against a parameter and/or a serving-latency target, softly (MnasNet's reward) or as a hard limit.
    "objective": dict(objective.DEFAULTS),
}
ENSEMBLE_METHODS = ("average", "weighted", "replicas")
CPU_QUANTITY = re.compile(r"^\d+(\.\d+)?m?$")
MEMORY_QUANTITY = re.compile(r"^\d+(\.\d+)?([KMGTPE]i|[kMGTPE])?$")
DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([smh]?)\s*$")
DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600}


def parse_duration(text) -> float:
    """Seconds of a duration: a number of seconds (90, "90") or one with a unit ("90s", "30m", "2h", "1.5h").
    Raises ValueError saying what is accepted."""
    match = DURATION.match(str(text)) if not isinstance(text, bool) else None
    seconds = float(match[1]) * DURATION_UNITS[match[2]] if match else 0.0
    if not seconds > 0 or not math.isfinite(seconds):
        raise ValueError(f"{text!r} is not a duration; pass seconds or a number with s, m or h, "
                         "such as 90, 90s, 30m or 2h")
    return seconds


def _is_whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def optimizer_names() -> list[str]:
    """The optimizers the trainer can build: blocks/builder.py's make_optimizer, which defines them (imported
    here, when a configuration is checked, so that importing this module stays free of Keras)."""
    from blocks.builder import OPTIMIZERS
    return sorted(OPTIMIZERS)


def knob_problem(name: str, value) -> str | None:
    """What is wrong with one choice of a knob, or None: checked with the configuration, so a bad choice fails
    before any work, not when a trial draws it (a bad dropout once failed model building after the data was
    preprocessed, as "could not build a valid random architecture")."""
    if name == "optimizer":
        # make_optimizer lower-cases the name, so "Adam" builds too.
        if isinstance(value, str) and value.lower() in optimizer_names():
            return None
        return f"unknown optimizer {value!r}; choose from {', '.join(optimizer_names())}"
    if name == "learning_rate":
        if is_number(value) and value > 0:
            return None
        return f"{value!r} is not a learning rate; choose finite numbers > 0, such as 0.001"
    if name == "batch_size":
        if _is_whole(value) and value >= 1:
            return None
        return f"{value!r} is not a batch size; choose whole numbers >= 1, such as 32 or 64"
    if name == "dropout":
        if is_number(value) and 0 <= value < 1:
            return None
        return f"{value!r} is not a dropout rate; choose numbers in [0, 1), such as 0.0 or 0.2"
    return None


def _section(name: str):
    return dataclasses.field(default_factory=lambda: dict(SECTIONS[name]))


@dataclasses.dataclass
class SearchConfig:
    trials: int = 6                 # the study's budget: search trials in all (a rerun goes on to it)
    trainers: int | None = None     # trainers at once (None: one per core, at most 4, on one machine)
    strategy: str = "beam"          # a module in modelsearch/strategies/
    beam_size: int = 3              # top-k completed trials the beam keeps
    p_deeper: float = 0.5           # probability that a mutation appends a block
    min_completed: int = 2          # random architectures until this many trials completed
    initial_depth: list = dataclasses.field(default_factory=lambda: [1, 2])
    max_depth: int = 6
    families: list | None = None    # restrict the block families (None: all that fit the input)
    blocks: list | None = None      # restrict to these block names
    custom_blocks: list = dataclasses.field(default_factory=list)  # see blocks/user.py
    knobs: dict = dataclasses.field(default_factory=lambda: dict(DEFAULT_KNOBS))
    max_epochs: int = 60
    patience: int = 8
    distillation: dict = _section("distillation")
    ensemble: dict = _section("ensemble")
    student: dict = _section("student")
    push: dict = _section("push")
    trainer_pods: dict = _section("trainer_pods")
    early_stopping: dict = _section("early_stopping")
    objective: dict = _section("objective")
    # The search's wall-clock budget in seconds (null: none), counted from when the search opens; the search
    # ends at the trial budget or at this, whichever comes first (modelsearch/search.py, open_search).
    time_budget: float | None = None

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict | str, source: str = "search configuration") -> "SearchConfig":
        if isinstance(data, str):
            data = json.loads(data)
        if not isinstance(data, dict):
            raise UserError(f"{source}: expected a JSON object of settings, got {type(data).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise UserError(f"{source}: unknown setting(s) {', '.join(unknown)}; known settings: {', '.join(fields)}")
        config = cls(**data)
        if isinstance(config.time_budget, str):  # "30m" in a file as on the command line
            try:
                config.time_budget = parse_duration(config.time_budget)
            except ValueError as e:
                raise UserError(f"{source}: time_budget: {e}") from None
        if isinstance(config.knobs, dict):
            config.knobs = {**DEFAULT_KNOBS, **config.knobs}
        for name, defaults in SECTIONS.items():
            value = getattr(config, name)
            if not isinstance(value, dict):
                raise UserError(f"{source}: {name} must be an object with keys {', '.join(defaults)}")
            unknown = sorted(set(value) - set(defaults))
            if unknown:
                raise UserError(f"{source}: unknown {name} setting(s) {', '.join(unknown)}; "
                                f"known: {', '.join(defaults)}")
            setattr(config, name, {**defaults, **value})
        config.check(source)
        return config

    def check(self, source: str = "search configuration") -> None:
        def fail(message):
            raise UserError(f"{source}: {message}")

        from modelsearch import strategies
        if self.strategy not in strategies.names():
            fail(f"unknown strategy {self.strategy!r}; choose one of {', '.join(strategies.names())}")
        if self.trainers is not None and (not isinstance(self.trainers, int) or isinstance(self.trainers, bool)
                                          or self.trainers < 1):
            fail(f"trainers must be a positive whole number (or null: one per core), got {self.trainers!r}")
        for name in ("trials", "beam_size", "max_depth", "max_epochs", "patience", "min_completed"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < (0 if name == "min_completed" else 1):
                fail(f"{name} must be a positive whole number, got {value!r}")
        if self.time_budget is not None and (not is_number(self.time_budget) or self.time_budget <= 0):
            fail(f"time_budget must be a number of seconds > 0, a duration such as \"30m\", or null, "
                 f"got {self.time_budget!r}")
        if not is_number(self.p_deeper) or not 0 <= self.p_deeper <= 1:
            fail(f"p_deeper must be a probability between 0 and 1, got {self.p_deeper!r}")
        depth = self.initial_depth
        if (not isinstance(depth, list) or len(depth) != 2 or not all(_is_whole(d) for d in depth)
                or not 1 <= depth[0] <= depth[1] <= self.max_depth):
            fail(f"initial_depth must be [min, max] with 1 <= min <= max <= max_depth, got {depth!r}")
        for name in ("families", "blocks"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, list) or not value
                                      or not all(isinstance(v, str) for v in value)):
                fail(f"{name} must be a non-empty list of names, got {value!r}")
        if not isinstance(self.custom_blocks, list) or not all(isinstance(b, dict) for b in self.custom_blocks):
            fail("custom_blocks must be a list of objects like "
                 '{"name": "my_block", "path": "my_package.my_module.my_function", "ranks": [1]}')
        if not isinstance(self.knobs, dict):
            fail("knobs must be an object mapping a knob name to its list of choices")
        for name, choices in self.knobs.items():
            if name not in DEFAULT_KNOBS:
                fail(f"unknown knob {name!r}; knobs: {', '.join(DEFAULT_KNOBS)}")
            if not isinstance(choices, list) or not choices:
                fail(f"knob {name!r} must be a non-empty list of choices, got {choices!r}")
            for value in choices:
                problem = knob_problem(name, value)
                if problem:
                    fail(f"knob {name}: {problem}")
        self._check_exploit(fail)

    def _check_exploit(self, fail) -> None:
        def number(section, key, low, high):
            value = getattr(self, section)[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
                fail(f"{section}.{key} must be a number between {low} and {high}, got {value!r}")

        def count(section, key, low=1, optional=False):
            value = getattr(self, section)[key]
            if optional and value is None:
                return
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                fail(f"{section}.{key} must be a whole number >= {low}{' or null' if optional else ''}, got {value!r}")

        if self.distillation["mode"] not in DISTILLATION_MODES:
            fail(f"distillation.mode must be one of {', '.join(DISTILLATION_MODES)}, "
                 f"got {self.distillation['mode']!r}")
        number("distillation", "weight", 0, 1)
        number("distillation", "temperature", 0.1, 100)
        count("distillation", "ramp_trials")
        count("ensemble", "top_k", 2)
        count("ensemble", "replicas", 0)
        methods = self.ensemble["methods"]
        if not isinstance(methods, list) or not methods or any(m not in ENSEMBLE_METHODS for m in methods):
            fail(f"ensemble.methods must be a non-empty list drawn from {', '.join(ENSEMBLE_METHODS)}, got {methods!r}")
        number("student", "tolerance", 0, 1e9)
        count("student", "max_params", optional=True)
        number("student", "weight", 0, 1)
        number("student", "temperature", 0.1, 100)
        widths = self.student["widths"]
        if not isinstance(widths, list) or not all(is_number(w) and 0 < w <= 1 for w in widths):
            fail(f"student.widths must be a list of width factors in (0, 1], such as [0.5, 0.25] (or [] for "
                 f"none), got {widths!r}")
        count("student", "smallest", 0)
        if self.push["policy"] not in PUSH_POLICIES:
            fail(f"push.policy must be one of {', '.join(PUSH_POLICIES)}, got {self.push['policy']!r}")
        count("push", "max_params", optional=True)
        if self.push["policy"] == "within_budget" and self.push["max_params"] is None:
            fail("push.policy within_budget needs push.max_params (the parameter budget); set it or use "
                 "--max-params")
        pods = self.trainer_pods
        for key, pattern, example in (("cpu", CPU_QUANTITY, '4 or "500m"'), ("memory", MEMORY_QUANTITY, '"16Gi"')):
            value = pods[key]
            if value is not None and (isinstance(value, bool) or not pattern.match(str(value))):
                fail(f"trainer_pods.{key} must be a Kubernetes quantity such as {example}, got {value!r}")
        count("trainer_pods", "gpus", 0)
        count("trainer_pods", "retries", 0)
        if not isinstance(pods["gpu_type"], str) or not pods["gpu_type"]:
            fail(f"trainer_pods.gpu_type must name an accelerator (nvidia.com/gpu on Kubernetes, e.g. "
                 f"NVIDIA_TESLA_T4 on Vertex AI), got {pods['gpu_type']!r}")
        problem = early_stopping.check(self.early_stopping)
        if problem:
            fail(problem)
        problem = objective.check(self.objective)
        if problem:
            fail(problem)


def load_config(path: str | None, overrides: dict | None = None) -> SearchConfig:
    """Reads the JSON file at `path` (None: defaults; a local path or a gs:// URI, read through tf.io.gfile)
    and applies command-line overrides."""
    data = {}
    if path:
        import tensorflow as tf

        if not tf.io.gfile.exists(path) or tf.io.gfile.isdir(path):
            raise UserError(f"search configuration {path} does not exist: pass the path of a JSON file")
        try:
            with tf.io.gfile.GFile(path) as f:
                data = json.load(f)
        except (tf.errors.OpError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise UserError(f"search configuration {path} is not valid JSON ({e}); fix the file") from None
        if not isinstance(data, dict):
            raise UserError(f"search configuration {path}: expected a JSON object of settings")
    data = {**data, **{k: v for k, v in (overrides or {}).items() if v is not None}}
    return SearchConfig.from_json(data, source=f"search configuration {path}" if path else "search settings")
