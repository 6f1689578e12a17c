"""create_pipeline: the one DAG factory. Runners (local, Kubeflow V2) only choose configuration.

[ImportExampleGen, for TFRecords ->] Preprocess -> SearchGenerator -> K Trainers (at once) -> Ensembler ->
Distiller, then, given a push destination, ModelSelector -> TFX's Pusher. The node count does not depend
on the budget of N trials: each trainer loops over the study's next candidates until the study holds N
(ARCHITECTURE.md). The Ensembler runs after every trainer (it reads their trials from the trial store,
not from their artifacts).
"""
from __future__ import annotations

import json

from tfx.orchestration import pipeline as tfx_pipeline

from components.distiller.component import Distiller
from components.ensembler.component import Ensembler
from components.model_selector.component import ModelSelector
from components.preprocess.component import Preprocess
from components.search_generator.component import SearchGenerator
from components.trainer.component import Trainer
from modelsearch.config import SearchConfig


def input_nodes(data_path: str, label: str, problem_type: str, seed: int, data_fingerprint: str,
                input_kind: str, input_shape: str, beam_pipeline_args: list | None) -> list:
    """[Preprocess], or [ImportExampleGen, Preprocess] for TFRecords (TFX imports them; Preprocess splits,
    analyses and transforms every input route alike)."""
    from components.preprocess.tfrecords import is_tfrecords

    examples = []
    if is_tfrecords(data_path):
        from tfx.components.example_gen.import_example_gen.component import ImportExampleGen
        from tfx.proto import example_gen_pb2

        from components.preprocess.executor import pipeline_args
        from components.preprocess.tfrecords import import_location

        base, pattern = import_location(data_path)
        examples = [ImportExampleGen(  # one split, "all": Preprocess splits every route the same way
            input_base=base,
            input_config=example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name="all", pattern=pattern)]),
            output_config=example_gen_pb2.Output(split_config=example_gen_pb2.SplitConfig(
                splits=[example_gen_pb2.SplitConfig.Split(name="all", hash_buckets=1)])))]
        # The offline default runner unless the caller names one, as Preprocess does.
        examples[0].with_beam_pipeline_args(pipeline_args(beam_pipeline_args))
    preprocess = Preprocess(data_path=data_path, label=label, problem_type=problem_type, seed=seed,
                            data_fingerprint=data_fingerprint, input_kind=input_kind, input_shape=input_shape,
                            examples=examples[0].outputs["examples"] if examples else None)
    # Beam arguments go to the Beam steps only: pipeline-level ones would reach every Kubeflow container.
    preprocess.with_beam_pipeline_args(list(beam_pipeline_args or []))
    return [*examples, preprocess]


def create_pipeline(pipeline_name: str, pipeline_root: str, data_path: str, label: str, study: str,
                    trial_store: dict, search_config: SearchConfig, trials: int, trainers: int,
                    seed: int = 0, problem_type: str = "", run_id: str = "", data_fingerprint: str = "",
                    metadata_connection_config=None, beam_pipeline_args: list | None = None,
                    enable_cache: bool = True, push_destination: str = "", input_kind: str = "",
                    input_shape: str = "", threads_per_trial: int = 0) -> tfx_pipeline.Pipeline:
    """`trials`: the study's budget of search trials (N); `trainers`: K trainer nodes that share it;
    `threads_per_trial`: TensorFlow threads of each trial (0: all cores; a local runner gives each trainer
    its share)."""
    nodes = input_nodes(data_path, label, problem_type, seed, data_fingerprint, input_kind, input_shape,
                        beam_pipeline_args)
    preprocess = nodes[-1]
    store_json, config_json = json.dumps(trial_store, sort_keys=True), json.dumps(search_config.to_json())
    settings = {"study": study, "trial_store": store_json, "search_config": config_json}
    generator = SearchGenerator(transform_graph=preprocess.outputs["transform_graph"], **settings, trials=trials,
                                trainers=trainers, seed=seed, run_id=run_id)
    trainer_nodes = [
        Trainer(transformed_examples=preprocess.outputs["transformed_examples"],
                transform_graph=preprocess.outputs["transform_graph"], plan=generator.outputs["plan"],
                **settings, trials=trials, index=k, threads=threads_per_trial, seed=seed,
                run_id=run_id).with_id(f"trainer_{k}")
        for k in range(trainers)]
    nodes += [generator, *trainer_nodes]
    nodes += exploit_nodes(preprocess, trainer_nodes, study, store_json, config_json, run_id, push_destination)
    return tfx_pipeline.Pipeline(
        pipeline_name=pipeline_name, pipeline_root=pipeline_root, components=nodes,
        enable_cache=enable_cache, metadata_connection_config=metadata_connection_config)


def exploit_nodes(preprocess, trainers: list, study: str, store_json: str, config_json: str, run_id: str,
                  push_destination: str) -> list:
    """Ensembler -> Distiller, and ModelSelector -> Pusher when there is somewhere to push to."""
    from tfx.components import Pusher
    from tfx.proto import pusher_pb2

    data = {"transformed_examples": preprocess.outputs["transformed_examples"],
            "transform_graph": preprocess.outputs["transform_graph"]}
    settings = {"study": study, "trial_store": store_json, "search_config": config_json}
    ensembler = Ensembler(**data, **settings, run_id=run_id)
    for trainer in trainers:
        ensembler.add_upstream_node(trainer)
    distiller = Distiller(**data, ensemble=ensembler.outputs["model"], **settings)
    if not push_destination:
        return [ensembler, distiller]
    selector = ModelSelector(**data, ensemble=ensembler.outputs["model"], student=distiller.outputs["model"],
                             **settings, push_destination=push_destination)
    pusher = Pusher(model=selector.outputs["model"], model_blessing=selector.outputs["blessing"],
                    push_destination=pusher_pb2.PushDestination(
                        filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=push_destination)))
    return [ensembler, distiller, selector, pusher]
