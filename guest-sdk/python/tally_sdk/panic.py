"""An uncaught exception reaches the host as one readable line on stderr.

In a component an exception that escapes an export traps the instance, and the host
sees only the trap. Before that, the SDK writes

    tally-plugin-panic: <message> (at <file>:<line>:<column>)

as a single line to stderr, line breaks in the message escaped as `\\n` and `\\` as
`\\\\` (wit/WIRE.md, Panics). The host reports the message of the last such line.
"""

import sys
import traceback

#: What starts the line; the host looks for it (`tally_wit::PANIC_MARKER`).
PANIC_MARKER = "tally-plugin-panic: "


def panic_line(error: BaseException) -> str:
    """The marked line for an exception: its type, message and where it was raised."""
    message = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return f"{PANIC_MARKER}{one_line(message)}{_location(error)}\n"


def report(error: BaseException) -> None:
    """Writes the marked line to stderr; nothing better can be done if that fails."""
    try:
        sys.stderr.write(panic_line(error))
        sys.stderr.flush()
    except Exception:
        pass


def one_line(message: str) -> str:
    """Escapes backslashes and line breaks so that the report stays one line."""
    return message.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")


def _location(error: BaseException) -> str:
    """` (at file:line:column)` of the innermost frame, or nothing without one."""
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return ""
    frame = frames[-1]
    column = (getattr(frame, "colno", None) or 0) + 1
    return f" (at {frame.filename}:{frame.lineno}:{column})"
