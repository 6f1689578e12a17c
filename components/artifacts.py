"""Artifact types of our own (the rest are TFX's standard Examples, TransformGraph and Model)."""
from tfx.types.artifact import Artifact


class CandidateSpecs(Artifact):
    """candidates.json: the architecture specs a search round hands to its trainers."""

    TYPE_NAME = "modelsearch.CandidateSpecs"


CANDIDATES_FILE = "candidates.json"
SCHEMA_FILE = "modelsearch_schema.json"
