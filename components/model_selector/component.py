"""ModelSelector: the winner by the push policy, blessed for the Pusher only if it beats the last push on this
run's validation split (the test split is only reported)."""
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.channel import Channel
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from components.artifacts import data_inputs, study_parameters
from components.model_selector.executor import Executor


class ModelSelectorSpec(ComponentSpec):
    PARAMETERS = {
        **study_parameters(),
        "push_destination": ExecutionParameter(type=str),  # the Pusher's base directory: the last push is read there
    }
    INPUTS = {
        **data_inputs(),
        "ensemble": ChannelParameter(type=standard_artifacts.Model),
        "student": ChannelParameter(type=standard_artifacts.Model),
    }
    OUTPUTS = {
        "model": ChannelParameter(type=standard_artifacts.Model),
        "blessing": ChannelParameter(type=standard_artifacts.ModelBlessing),
    }


class ModelSelector(base_component.BaseComponent):
    SPEC_CLASS = ModelSelectorSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, transformed_examples, transform_graph, ensemble, student, study: str, trial_store: str,
                 search_config: str, push_destination: str):
        super().__init__(ModelSelectorSpec(
            transformed_examples=transformed_examples, transform_graph=transform_graph, ensemble=ensemble,
            student=student, study=study, trial_store=trial_store, search_config=search_config,
            push_destination=push_destination, model=Channel(type=standard_artifacts.Model),
            blessing=Channel(type=standard_artifacts.ModelBlessing)))
