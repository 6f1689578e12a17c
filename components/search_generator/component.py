"""SearchGenerator: K candidate architecture specs for one search round, from the trial store."""
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.channel import Channel
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from components.artifacts import CandidateSpecs
from components.search_generator.executor import Executor


class SearchGeneratorSpec(ComponentSpec):
    PARAMETERS = {
        "study": ExecutionParameter(type=str),
        "trial_store": ExecutionParameter(type=str),     # JSON connection config, see modelsearch/trialstore.py
        "search_config": ExecutionParameter(type=str),   # JSON SearchConfig
        "num_candidates": ExecutionParameter(type=int),
        "seed": ExecutionParameter(type=int, optional=True),
        "run_id": ExecutionParameter(type=str, optional=True),  # new per run: the trial store changes, never cache
    }
    INPUTS = {"transform_graph": ChannelParameter(type=standard_artifacts.TransformGraph)}
    OUTPUTS = {"candidates": ChannelParameter(type=CandidateSpecs)}


class SearchGenerator(base_component.BaseComponent):
    SPEC_CLASS = SearchGeneratorSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, transform_graph, study: str, trial_store: str, search_config: str, num_candidates: int,
                 seed: int = 0, run_id: str = ""):
        super().__init__(SearchGeneratorSpec(
            transform_graph=transform_graph, study=study, trial_store=trial_store, search_config=search_config,
            num_candidates=num_candidates, seed=seed, run_id=run_id,
            candidates=Channel(type=CandidateSpecs)))
