"""SearchGenerator: opens the study's search (checks the space, reclaims lost trials) before the trainers start."""
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.channel import Channel
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from components.artifacts import SearchPlan, study_parameters
from components.search_generator.executor import Executor


class SearchGeneratorSpec(ComponentSpec):
    PARAMETERS = {
        **study_parameters(),
        "trials": ExecutionParameter(type=int),    # the study's budget of search trials
        "trainers": ExecutionParameter(type=int),  # how many trainers share it
        "seed": ExecutionParameter(type=int, optional=True),
        "run_id": ExecutionParameter(type=str, optional=True),  # new per run: the trial store changes, never cache
    }
    INPUTS = {"transform_graph": ChannelParameter(type=standard_artifacts.TransformGraph)}
    OUTPUTS = {"plan": ChannelParameter(type=SearchPlan)}


class SearchGenerator(base_component.BaseComponent):
    SPEC_CLASS = SearchGeneratorSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, transform_graph, study: str, trial_store: str, search_config: str, trials: int,
                 trainers: int, seed: int = 0, run_id: str = ""):
        super().__init__(SearchGeneratorSpec(
            transform_graph=transform_graph, study=study, trial_store=trial_store, search_config=search_config,
            trials=trials, trainers=trainers, seed=seed, run_id=run_id, plan=Channel(type=SearchPlan)))
