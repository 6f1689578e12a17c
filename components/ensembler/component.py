"""Ensembler: ensembles of the study's best trials (average, learned weights, replicas), one exported model."""
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.channel import Channel
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from components.artifacts import data_inputs, study_parameters
from components.ensembler.executor import Executor


class EnsemblerSpec(ComponentSpec):
    PARAMETERS = {
        **study_parameters(),
        "run_id": ExecutionParameter(type=str, optional=True),  # new per run: the trial store changes, never cache
    }
    INPUTS = {
        **data_inputs(),
    }
    OUTPUTS = {"model": ChannelParameter(type=standard_artifacts.Model)}


class Ensembler(base_component.BaseComponent):
    SPEC_CLASS = EnsemblerSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, transformed_examples, transform_graph, study: str, trial_store: str, search_config: str,
                 run_id: str = ""):
        super().__init__(EnsemblerSpec(
            transformed_examples=transformed_examples, transform_graph=transform_graph, study=study,
            trial_store=trial_store, search_config=search_config, run_id=run_id,
            model=Channel(type=standard_artifacts.Model)))
