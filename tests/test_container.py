"""The pipeline image, read statically (there is no docker here): the locked environment with protobuf's C
implementation, a non-root user, and a derived image for custom blocks built on it."""
import os
import re

CONTAINER = os.path.join(os.path.dirname(__file__), "..", "container")


def instructions(name):
    """The Dockerfile's instructions as (KEYWORD, arguments), continuation lines joined, comments dropped."""
    with open(os.path.join(CONTAINER, name)) as f:
        text = re.sub(r"\\\n", " ", "".join(l for l in f if not l.lstrip().startswith("#")))
    return [(l.split(None, 1)[0].upper(), l.split(None, 1)[1]) for l in text.splitlines() if l.strip()]


def test_the_image_installs_the_lock_with_upb_and_runs_as_a_numeric_non_root_user():
    steps = instructions("Dockerfile")
    text = " ".join(args for _, args in steps)
    assert "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION" not in text   # upb, protobuf's default
    assert "api_implementation" in text and "'upb'" in text       # the build fails on pure-Python protobuf
    runs = [i for i, (kw, _) in enumerate(steps) if kw == "RUN"]
    syncs = [i for i in runs if "uv sync" in steps[i][1]]
    assert syncs and all("--locked" in steps[i][1] and "--no-dev" in steps[i][1] for i in syncs)
    installs = [re.findall(r"pip install (?:--\S+ )*(\S+)", steps[i][1]) for i in runs]
    [uv] = [p for found in installs for p in found]   # nothing beside the lock but a pinned uv
    assert re.fullmatch(r"uv==[\d.]+", uv), uv
    [user] = [i for i, (kw, _) in enumerate(steps) if kw == "USER"]
    uid = steps[user][1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0 and user > max(runs)   # nothing runs as root after it
    env = " ".join(args for kw, args in steps if kw == "ENV")
    assert "PATH=/opt/venv/bin:" in env   # python -m pipelines.kubeflow_runner in the CronJob


def test_the_custom_blocks_image_derives_from_the_pipeline_image():
    steps = instructions("Dockerfile.custom-blocks")
    [(_, base)] = [s for s in steps if s[0] == "FROM"]
    [default] = [args.split("=", 1)[1] for kw, args in steps if kw == "ARG" and args.startswith("PIPELINE_IMAGE=")]
    assert base == "${PIPELINE_IMAGE}"
    with open(os.path.join(CONTAINER, "..", "kustomize", "base", "kustomization.yaml")) as f:
        assert f"IMAGE={default}" in f.read()   # the image the manifests run
    assert not any(kw == "USER" and args.split(":")[0] in ("0", "root") for kw, args in steps)
    [pythonpath] = [args for kw, args in steps if kw == "ENV" and "PYTHONPATH=" in args]
    target = pythonpath.split("PYTHONPATH=", 1)[1].split()[0]
    assert any(kw == "COPY" and args.split()[-1].startswith(target + "/") for kw, args in steps)
