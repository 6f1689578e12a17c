"""Trainer: trains candidate `index` of a round's CandidateSpecs and records it in the trial store."""
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.channel import Channel
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from components.artifacts import CandidateSpecs, data_inputs, study_parameters
from components.trainer.executor import Executor


class TrainerSpec(ComponentSpec):
    PARAMETERS = {
        **study_parameters(),
        "index": ExecutionParameter(type=int),
    }
    INPUTS = {
        **data_inputs(),
        "candidates": ChannelParameter(type=CandidateSpecs),
    }
    OUTPUTS = {"model": ChannelParameter(type=standard_artifacts.Model)}


class Trainer(base_component.BaseComponent):
    SPEC_CLASS = TrainerSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, transformed_examples, transform_graph, candidates, study: str, trial_store: str,
                 search_config: str, index: int):
        super().__init__(TrainerSpec(
            transformed_examples=transformed_examples, transform_graph=transform_graph, candidates=candidates,
            study=study, trial_store=trial_store, search_config=search_config, index=index,
            model=Channel(type=standard_artifacts.Model)))
