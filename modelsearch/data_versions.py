"""A study knows its data: a fingerprint of the data's content and a signature of its schema, per data version.

Trials are only comparable on the same data (the same splits), so every trial records the study's data version,
and every comparison (the beam, the ensemble, the student, the push) uses the trials of the current version.
New content with the same schema (a scheduled run on today's rows) starts a new version: its search starts
afresh with the study's budget, the earlier trials stay in the store. A changed schema (columns, label, classes,
input shape) cannot continue the study at all: its models do not take the same inputs or predict the same
outputs, so it is refused and named as a study of its own.
"""
from __future__ import annotations

import hashlib
import os
import sys

from modelsearch.errors import UserError

CHUNK_BYTES = 4 * 1024 ** 2


def fingerprint(data_path: str) -> str:
    """A digest of the data's content: a file's bytes, or every file under a folder with its relative path
    (in name order); streamed through tf.io.gfile, so large files cost one read and no memory, and gs:// works."""
    import tensorflow as tf

    gfile = tf.io.gfile
    digest = hashlib.blake2b(digest_size=16)
    files = ([data_path] if not gfile.isdir(data_path) else
             sorted(os.path.join(folder, name) for folder, _, names in gfile.walk(data_path) for name in names))
    for path in files:
        digest.update(os.path.relpath(path, data_path).encode("utf-8") + b"\0")
        with gfile.GFile(path, "rb") as f:
            while chunk := f.read(CHUNK_BYTES):
                digest.update(chunk)
    return digest.hexdigest()


def signature(schema: dict) -> dict:
    """What must stay the same for a study to continue: the label and its task (classes), the feature columns
    and their kinds, and the input shape where it is declared or fixed (images, arrays), not where it follows the
    data (a table's one-hot widths grow with new categories, which the next version's trials simply learn)."""
    columns = schema["columns"]
    fixed_shape = not any(c["kind"] == "string" for c in columns)
    return {"label": schema["label"], "task": {k: v for k, v in schema["task"].items() if k != "num_classes"},
            "columns": [[c["name"], c["kind"]] for c in columns],
            "input_shape": schema["input_shape"] if fixed_shape else None}


def _difference(old: dict, new: dict) -> str:
    """The first thing that differs between two signatures, in words."""
    if old["label"] != new["label"]:
        return f"the label is {new['label']!r}, not {old['label']!r}"
    if old["task"] != new["task"]:
        if old["task"].get("type") != new["task"].get("type"):
            return f"the task is {new['task'].get('type')}, not {old['task'].get('type')}"
        added = [c for c in new["task"].get("classes", []) if c not in old["task"].get("classes", [])]
        gone = [c for c in old["task"].get("classes", []) if c not in new["task"].get("classes", [])]
        return "the label's classes changed (" + "; ".join(
            part for part in (f"new: {', '.join(added[:5])}" if added else "",
                              f"gone: {', '.join(gone[:5])}" if gone else "") if part) + ")"
    if old["columns"] != new["columns"]:
        before, after = dict(map(tuple, old["columns"])), dict(map(tuple, new["columns"]))
        changed = sorted(set(before.items()) ^ set(after.items()))
        return f"the feature columns changed ({', '.join(f'{name} {kind}' for name, kind in changed[:5])})"
    return f"the input shape is {new['input_shape']}, not {old['input_shape']}"


def check(store, study: str, schema: dict, versions: list | None = None) -> None:
    """Refuses data whose schema differs from the study's current version (one line naming the fix).
    `versions`: the study's data versions, if the caller read them already."""
    versions = store.data_versions(study) if versions is None else versions
    if versions and versions[-1]["signature"] != signature(schema):
        raise UserError(f"study {study!r} was searched on other data: {_difference(versions[-1]['signature'], signature(schema))}; "
                        f"search this data as a study of its own (--study NAME) or in a new --output-dir")


def register(store, study: str, schema: dict) -> int:
    """The study's data version for this data (schema["data_fingerprint"], written by Preprocess): the current
    one when the content is unchanged, else a new one, recorded. Raises UserError for a changed schema."""
    versions = store.data_versions(study)
    check(store, study, schema, versions)
    content = schema.get("data_fingerprint", "")
    if versions and (not content or versions[-1]["fingerprint"] == content):
        return versions[-1]["version"]
    version = versions[-1]["version"] + 1 if versions else 0
    if not store.add_data_version(study, version, content, signature(schema)):
        return store.data_version(study)  # another opener recorded it first
    if version:
        print(f"[modelsearch] study {study}: the data changed since data version {version - 1}; this is data "
              f"version {version}, searched afresh (earlier trials are kept but not compared)",
              file=sys.stderr, flush=True)
    return version
