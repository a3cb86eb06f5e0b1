"""tally-sdk: write a Tally aggregate plugin in Python.

The public surface:

- `Aggregate`: one aggregate type, with the decorators `handles`, `applies`,
  `upcasts`, `replaces` and `renders_state`.
- `Context`: what a handler learns about the call (aggregate id, stream version, clock).
- `Rejection`: raise it to refuse a command, with a kebab-case code and a message.
- `StoredEvent`: an event as name, version and JSON data, what upcasters return.
- `INVALID_COMMAND`, `INVALID_STATE`: the rejection codes the SDK answers with.
- `DEFAULT_MAX_DEPTH`: how deeply data may nest unless the aggregate says otherwise.
- `tally_sdk.testing`: given/when/then helpers for pytest.
- `tally_sdk.component.export`: makes an aggregate the component's export.

Payloads (commands, events, the state) are dataclasses; see `tally_sdk.schema` for
the field types and how strictly they are read.
"""

from .aggregate import INVALID_COMMAND, INVALID_STATE, Aggregate, Context, Rejection
from .strict_json import DEFAULT_MAX_DEPTH
from .upcast import StoredEvent

__all__ = [
    "Aggregate",
    "Context",
    "DEFAULT_MAX_DEPTH",
    "INVALID_COMMAND",
    "INVALID_STATE",
    "Rejection",
    "StoredEvent",
]
