"""The pipeline pods' entrypoint: TFX's Kubeflow V2 executor entrypoint, then os._exit.

The compiled spec runs every executor as `python -m pipelines.pod_entrypoint --executor_class_path ...
--json_serialized_invocation_args ...`, i.e. TFX's kubeflow_v2_run_executor with the same arguments (Beam
arguments after them). The image keeps protobuf's fast C implementation (upb), which has crashed in the
interpreter's teardown after a tf.Transform trace (ARCHITECTURE.md, "Pitfalls"): a crash there would fail a
task whose outputs are all written. So, like the `modelsearch` console script, this ends the process with
os._exit once the executor has returned and everything is flushed; nothing of ours runs in the teardown.
(ImportExampleGen's driver stays TFX's own command: it traces nothing.)

Vertex AI has no Kubernetes Secrets: there an environment variable NAME_SECRET_MANAGER=projects/P/secrets/S/
versions/V (a name, compiled into the spec) makes this read that Secret Manager version, with the pod's
service account, into NAME before the executor starts.
"""
from __future__ import annotations

import os
import sys

SECRET_MANAGER_SUFFIX = "_SECRET_MANAGER"


def read_secret(version: str, api_endpoint: str = "", credentials=None) -> str:
    """The value of a Secret Manager secret version (projects/P/secrets/S/versions/V)."""
    from google.cloud import secretmanager

    client = secretmanager.SecretManagerServiceClient(
        credentials=credentials, transport="rest",
        client_options={"api_endpoint": api_endpoint} if api_endpoint else None)
    return client.access_secret_version(name=version).payload.data.decode("utf-8")


def secrets_to_env(api_endpoint: str = "", credentials=None) -> list[str]:
    """Sets NAME from NAME_SECRET_MANAGER's secret version, unless NAME is set already; returns the NAMEs."""
    names = []
    for key, version in sorted(os.environ.items()):
        name = key[:-len(SECRET_MANAGER_SUFFIX)]
        if key.endswith(SECRET_MANAGER_SUFFIX) and version and name and not os.environ.get(name):
            os.environ[name] = read_secret(version, api_endpoint, credentials)
            names.append(name)
    return names


def main(argv: list[str] | None = None) -> int:
    """Runs TFX's entrypoint as its own __main__ does (absl's app.run, TFX's flag parser); its exit code."""
    from absl import app
    from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_run_executor as tfx_entrypoint

    secrets_to_env()
    try:
        app.run(tfx_entrypoint.main, argv=list(sys.argv if argv is None else argv),
                flags_parser=tfx_entrypoint._parse_flags)
    except SystemExit as e:
        if isinstance(e.code, str):
            print(e.code, file=sys.stderr)
            return 1
        return e.code or 0
    return 0


def entry() -> None:
    from common.process_exit import run_then_exit
    run_then_exit(main)


if __name__ == "__main__":
    entry()
