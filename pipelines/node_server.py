"""Where pipeline nodes are started from: a forkserver that imports TensorFlow, TFX and our components once.

Kept free of heavy imports itself, so the CLI can start the server first and let its imports overlap with
the CLI's own (see pipelines/concurrent_dag_runner.py).
"""
from __future__ import annotations

import multiprocessing

# What every node needs, imported once by the forkserver that forks the nodes.
NODE_MODULES = ["tensorflow", "keras", "tfx.orchestration.portable.launcher", "pipelines.node_modules"]


def node_context():
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(NODE_MODULES)
    return context


def start() -> None:
    """Starts the forkserver now; it imports NODE_MODULES in the background."""
    import os

    # Trainers fork a process per trial; gRPC (imported by TFX) would warn at every fork it does not manage.
    os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
    node_context()
    from multiprocessing import forkserver
    forkserver.ensure_running()
