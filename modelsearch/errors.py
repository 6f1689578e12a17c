"""UserError, re-exported for existing imports: the class lives in common/errors.py (a leaf every layer may import)."""
from common.errors import UserError  # noqa: F401
