"""Preprocess: the data (CSV, image folder, or TFRecords via ImportExampleGen) and its label in; split,
transformed Examples and the transform graph out."""
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.channel import Channel
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from components.preprocess.executor import Executor


class PreprocessSpec(ComponentSpec):
    PARAMETERS = {
        "data_path": ExecutionParameter(type=str),
        "label": ExecutionParameter(type=str),
        "problem_type": ExecutionParameter(type=str, optional=True),  # "" = infer from the label
        "seed": ExecutionParameter(type=int, optional=True),
        # A digest of the data's content: TFX's cache keys on parameters, so changed data reruns.
        "data_fingerprint": ExecutionParameter(type=str, optional=True),
        "input_kind": ExecutionParameter(type=str, optional=True),   # "" = inferred; tabular, sequence, image
        "input_shape": ExecutionParameter(type=str, optional=True),  # "" = inferred; e.g. "28,28,1"
    }
    INPUTS = {
        # TFRecords of tf.Examples, imported by TFX's ImportExampleGen (absent for CSV and image folders).
        "examples": ChannelParameter(type=standard_artifacts.Examples, optional=True),
    }
    OUTPUTS = {
        "transformed_examples": ChannelParameter(type=standard_artifacts.Examples),
        "transform_graph": ChannelParameter(type=standard_artifacts.TransformGraph),
    }


class Preprocess(base_beam_component.BaseBeamComponent):
    SPEC_CLASS = PreprocessSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)

    def __init__(self, data_path: str, label: str, problem_type: str = "", seed: int = 0,
                 data_fingerprint: str = "", input_kind: str = "", input_shape: str = "", examples=None):
        super().__init__(PreprocessSpec(
            data_path=data_path, label=label, problem_type=problem_type, seed=seed,
            data_fingerprint=data_fingerprint, input_kind=input_kind, input_shape=input_shape, examples=examples,
            transformed_examples=Channel(type=standard_artifacts.Examples),
            transform_graph=Channel(type=standard_artifacts.TransformGraph)))
