"""What a configuration may call a number."""
import math


def is_number(value) -> bool:
    """A real number that is not a bool (JSON's true is not 1 here), nan or infinite."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
