"""Distiller: small students trained on the ensemble's soft targets and the labels; the Model is the one kept."""
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.channel import Channel
from tfx.types.component_spec import ChannelParameter, ComponentSpec

from components.artifacts import data_inputs, study_parameters
from components.distiller.executor import Executor


class DistillerSpec(ComponentSpec):
    PARAMETERS = {
        **study_parameters(),
    }
    INPUTS = {
        **data_inputs(),
        "ensemble": ChannelParameter(type=standard_artifacts.Model),
    }
    OUTPUTS = {"model": ChannelParameter(type=standard_artifacts.Model)}


class Distiller(base_component.BaseComponent):
    SPEC_CLASS = DistillerSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, transformed_examples, transform_graph, ensemble, study: str, trial_store: str,
                 search_config: str):
        super().__init__(DistillerSpec(
            transformed_examples=transformed_examples, transform_graph=transform_graph, ensemble=ensemble,
            study=study, trial_store=trial_store, search_config=search_config,
            model=Channel(type=standard_artifacts.Model)))
