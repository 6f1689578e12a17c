"""The one exception type for user mistakes: the CLI prints its message and exits 2."""


class UserError(Exception):
    """Bad input from the user (data, label, configuration). The message names the fix."""
