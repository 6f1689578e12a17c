"""The one exception type for user mistakes (the CLI prints its message and exits 2), and how a library's error
becomes one line of it."""
import re


class UserError(Exception):
    """Bad input from the user (data, label, configuration). The message names the fix."""


# What a one-line reason must not carry: TensorFlow's op context ("{{function_node __wrapped__...}}" before
# the message, "[Op:IteratorGetNext] name: " after it) and Python object reprs ("<_io.BytesIO object at 0x...>",
# Pillow's "cannot identify image file <...>").
_OP_CONTEXT = re.compile(r"\{\{function_node [^}]*\}\}\s*|\s*\[Op:[^\]]*\].*$")
_OBJECT_REPR = re.compile(r"\s*<[^<>]* object at 0x[0-9a-fA-F]+>")


def first_line(e: Exception) -> str:
    """An error's first line, for a one-line UserError: a TensorFlow OpError's message without its op context,
    and without Python object reprs."""
    text = str(getattr(e, "message", "") or e).strip()
    line = text.splitlines()[0] if text else ""
    line = _OBJECT_REPR.sub("", _OP_CONTEXT.sub("", line)).strip()
    return line or type(e).__name__
