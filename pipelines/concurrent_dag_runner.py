"""ConcurrentDagRunner: TFX's LocalDagRunner, with every node in a process of its own and independent nodes at once.

LocalDagRunner launches the compiled pipeline's nodes one after another in its own process, so K trainer
nodes would train in turn. This runner launches the same nodes with the same TFX launcher (drivers,
executors, publishing to the pipeline's ML Metadata), but each in a child process, as soon as every node
upstream of it has finished: the K trainers run at the same time. Children come from a forkserver that
imported TensorFlow and TFX once (pipelines/node_server.py), so a node starts in milliseconds, not the ~20 s an
import costs here, and never inherits a parent that has run TensorFlow (which is not fork-safe).
"""
from __future__ import annotations

import datetime
import multiprocessing.connection
import os
import signal
import sys
import threading
import traceback

from tfx.dsl.compiler import constants
from tfx.orchestration import metadata
from tfx.orchestration.local import runner_utils
from tfx.orchestration.portable import launcher, runtime_parameter_utils, tfx_runner
from tfx.proto.orchestration import pipeline_pb2

from modelsearch.errors import UserError
from common.process_exit import die_with_parent
from pipelines.node_server import node_context



class ConcurrentDagRunner(tfx_runner.IrBasedRunner):
    def __init__(self, on_node_start=None):
        """`on_node_start(node_id)`: called as each node starts (the CLI's progress display shows the stage)."""
        super().__init__()
        self.on_node_start = on_node_start or (lambda node_id: None)

    def run_with_ir(self, pipeline: pipeline_pb2.Pipeline, run_options=None, **kwargs) -> None:
        if run_options is not None:
            raise ValueError("ConcurrentDagRunner runs whole pipelines only (no partial runs)")
        runtime_parameter_utils.substitute_runtime_parameter(
            pipeline, {constants.PIPELINE_RUN_ID_PARAMETER_NAME: datetime.datetime.now().isoformat()})
        serialized = pipeline.SerializeToString()
        nodes = {n.pipeline_node.node_info.id: n.pipeline_node for n in pipeline.nodes}
        waiting = {node_id: set(node.upstream_nodes) for node_id, node in nodes.items()
                   if not node.execution_options.HasField("skip")}
        done, running = {node_id for node_id in nodes if node_id not in waiting}, {}
        # The nodes' lifeline: they hold its read end, only this process its write end. The forkserver does not
        # end while nodes live (each holds its liveness pipe), so a killed runner would leave them training on:
        # the read end's EOF tells them the runner is gone, and they end (their trial workers with them).
        lifeline, held = node_context().Pipe(duplex=False)
        try:
            while waiting or running:
                for node_id in [n for n, upstream in waiting.items() if upstream <= done]:
                    del waiting[node_id]
                    self.on_node_start(node_id)
                    node = _NodeProcess(serialized, node_id, lifeline)
                    running[node.process.sentinel] = node
                if not running:
                    raise RuntimeError(f"nodes {sorted(waiting)} wait for nodes that never run")
                for sentinel in multiprocessing.connection.wait(list(running)):
                    finished = running.pop(sentinel)
                    finished.finish()
                    done.add(finished.node_id)
        finally:
            for node in running.values():  # a failed node (or Ctrl-C) stops the others
                node.process.kill()
                node.process.join()
            lifeline.close()
            held.close()


class _NodeProcess:
    """One node launched in a forkserver child; its output is copied here line by line."""

    def __init__(self, serialized: bytes, node_id: str, lifeline):
        context = node_context()
        self.node_id = node_id
        self.report, report_end = context.Pipe(duplex=False)
        output, output_end = context.Pipe(duplex=False)
        self.process = context.Process(target=_launch, args=(serialized, node_id, report_end, output_end, lifeline),
                                       name=node_id)
        self.process.start()
        report_end.close()
        output_end.close()
        self.copier = threading.Thread(target=_copy_lines, args=(output, sys.stderr), daemon=True)
        self.copier.start()

    def finish(self) -> None:
        """Waits for the node's end; raises what it reported if it failed."""
        self.process.join()
        self.copier.join(timeout=10)
        _raise_failure(self.node_id, self.process.exitcode, self.report)


def _end_with_runner(lifeline) -> None:
    """Waits for the lifeline's EOF (the runner is gone: killed, or ended) and ends this node at once."""
    try:
        lifeline.recv_bytes()
    except (EOFError, OSError):
        pass
    os.kill(os.getpid(), signal.SIGKILL)


def _raise_failure(node_id: str, exitcode: int, receive) -> None:
    """Raises what the node's process reported: a UserError as one (the CLI prints it), anything else as
    a RuntimeError that names the node."""
    try:
        report = receive.recv() if receive.poll() else None
    except EOFError:  # the node ended without a word: its exit code says the rest
        report = None
    if exitcode == 0 and report is None:
        return
    if report and report[0] == "user":
        raise UserError(report[1])
    detail = report[1] if report else f"its process ended with exit code {exitcode}"
    raise RuntimeError(f"pipeline node {node_id} failed: {detail}")


def _copy_lines(output, stream) -> None:
    """Copies a node's output to this process's stderr, whole lines at a time (nodes print at once)."""
    pending = b""
    while chunk := _read(output.fileno()):
        lines, _, pending = (pending + chunk).rpartition(b"\n")
        if lines:
            stream.write((lines + b"\n").decode("utf-8", "replace"))
            stream.flush()
    if pending:
        stream.write(pending.decode("utf-8", "replace") + "\n")
    output.close()


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:
        return b""


def _launch(serialized: bytes, node_id: str, send, output, lifeline) -> None:
    """In the node's own process: end with the runner, print to the runner (whatever the forkserver's stderr
    is), launch the node as LocalDagRunner does, and report a failure to the parent."""
    die_with_parent()
    threading.Thread(target=_end_with_runner, args=(lifeline,), name="lifeline", daemon=True).start()
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(output.fileno(), 1)
    os.dup2(output.fileno(), 2)
    output.close()
    pipeline = pipeline_pb2.Pipeline.FromString(serialized)
    deployment = runner_utils.extract_local_deployment_config(pipeline)
    connection = getattr(deployment.metadata_connection_config,
                         deployment.metadata_connection_config.WhichOneof("connection_config"))
    [node] = [n.pipeline_node for n in pipeline.nodes if n.pipeline_node.node_info.id == node_id]
    try:
        launcher.Launcher(
            pipeline_node=node, mlmd_connection=metadata.Metadata(connection), pipeline_info=pipeline.pipeline_info,
            pipeline_runtime_spec=pipeline.runtime_spec,
            executor_spec=runner_utils.extract_executor_spec(deployment, node_id),
            custom_driver_spec=runner_utils.extract_custom_driver_spec(deployment, node_id)).launch()
    except UserError as e:
        send.send(("user", str(e)))
        sys.exit(2)
    except KeyboardInterrupt:  # Ctrl-C reaches every process of the run: the runner says what happened
        sys.exit(130)
    except BaseException:
        send.send(("bug", traceback.format_exc()))
        sys.exit(1)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
