"""Trainer: one of the K asynchronous trainers; trains the study's next candidates until it holds its budget."""
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.channel import Channel
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from components.artifacts import SearchPlan, data_inputs, study_parameters
from components.trainer.executor import Executor


class TrainerSpec(ComponentSpec):
    PARAMETERS = {
        **study_parameters(),
        "trials": ExecutionParameter(type=int),    # the study's budget of search trials, shared by all trainers
        "threads": ExecutionParameter(type=int, optional=True),  # TensorFlow threads per trial (0: all cores)
        "index": ExecutionParameter(type=int),
        "seed": ExecutionParameter(type=int, optional=True),
        "run_id": ExecutionParameter(type=str, optional=True),  # new per run: the trial store changes, never cache
    }
    INPUTS = {
        **data_inputs(),
        "plan": ChannelParameter(type=SearchPlan),
    }
    OUTPUTS = {"model": ChannelParameter(type=standard_artifacts.Model)}  # trial_<id>/ per trial it trained


class Trainer(base_component.BaseComponent):
    SPEC_CLASS = TrainerSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, transformed_examples, transform_graph, plan, study: str, trial_store: str,
                 search_config: str, trials: int, index: int, threads: int = 0, seed: int = 0, run_id: str = ""):
        super().__init__(TrainerSpec(
            transformed_examples=transformed_examples, transform_graph=transform_graph, plan=plan,
            study=study, trial_store=trial_store, search_config=search_config, trials=trials, threads=threads,
            index=index, seed=seed, run_id=run_id, model=Channel(type=standard_artifacts.Model)))
