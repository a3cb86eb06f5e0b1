"""The wire layer: the plugin's exported functions on plain Python values (bytes,
names, versions), exactly what the component runs minus the WIT record types. The
component adapter (`tally_sdk.component`) and the test helpers (`tally_sdk.testing`)
both drive these, so native tests run the component's own encoding.

Errors are of three kinds, as wit/WIRE.md says: a `Rejection` answers a command
(`invalid-command` and `invalid-state` from here, the rest from the plugin's
handlers); a `WireError` is the `err(string)` of `apply`, `upcast` and `state-json`
(stored data that cannot be read); any other exception is a bug, a panic.
"""

import dataclasses

from . import schema
from .aggregate import INVALID_COMMAND, INVALID_STATE, Aggregate, Context, Rejection
from .strict_json import DuplicateKey, JsonError, dump_bytes, dumps, is_blank, loads
from .upcast import StoredEvent, UpcastError, upcast_event


class WireError(ValueError):
    """Stored data (an event or a state) cannot be read: the `err` of a function."""


@dataclasses.dataclass(frozen=True)
class RawCommand:
    """A command as the host sends it: a name and UTF-8 JSON data."""

    name: str
    data: bytes = b""


@dataclasses.dataclass(frozen=True)
class RawEvent:
    """An event as the host stores it: a name, a schema version and UTF-8 JSON data."""

    name: str
    version: int
    data: bytes = b"{}"


@dataclasses.dataclass(frozen=True)
class PluginInfo:
    """What `describe` answers."""

    aggregate_type: str
    version: str
    description: str
    commands: list[str]
    events: list[tuple[str, int]]


def describe(aggregate: Aggregate) -> PluginInfo:
    """The plugin's identity, commands and event schemas. Raises ValueError (a
    panic: the host then refuses the plugin) if the definition breaks the rules."""
    aggregate.check()
    return PluginInfo(
        aggregate_type=aggregate.aggregate_type,
        version=aggregate.version,
        description=aggregate.description,
        commands=list(aggregate.commands),
        events=[(event.name, event.version) for event in aggregate.events.values()],
    )


def initial_state(aggregate: Aggregate) -> bytes:
    """The encoded state before any event."""
    return encode_state(aggregate, aggregate.state())


def handle(aggregate: Aggregate, ctx: Context, state: bytes, command: RawCommand) -> list[RawEvent]:
    """Decides a command: its events, or raises Rejection."""
    _, events, _ = _decide(aggregate, ctx, state, command)
    return events


def decide(
    aggregate: Aggregate, ctx: Context, state: bytes, command: RawCommand
) -> tuple[list[RawEvent], bytes]:
    """`handle`, then the fold of its events as decoded back from their JSON (as a
    replay would read them), in one call: the events and the state after them."""
    current, events, decoded = _decide(aggregate, ctx, state, command)
    for event in decoded:
        current = _fold(aggregate, current, event)
    return events, encode_state(aggregate, current)


def apply(aggregate: Aggregate, state: bytes, events: list[RawEvent]) -> bytes:
    """Folds events (current schema versions, stream order) into the state."""
    current = decode_state(aggregate, state)
    for index, raw in enumerate(events):
        try:
            event = decode_event(aggregate, raw)
        except WireError as error:
            raise WireError(f"event {index} of the batch: {error}") from None
        current = _fold(aggregate, current, event)
    return encode_state(aggregate, current)


def upcast(aggregate: Aggregate, event: RawEvent) -> list[RawEvent]:
    """Lifts one stored event to the current schema versions."""
    try:
        data = None if is_blank(event.data) else loads(event.data, aggregate.max_depth)
        stored = StoredEvent(event.name, event.version, data)
        lifted = upcast_event(stored, aggregate.upcasters, aggregate.current_version)
    except (JsonError, UpcastError) as error:
        raise WireError(f"{event.name} v{event.version}: {_data_error(error)}") from None
    return [RawEvent(e.name, e.version, dump_bytes(e.data)) for e in lifted]


def state_json(aggregate: Aggregate, state: bytes) -> bytes:
    """The state rendered as a JSON object for queries."""
    rendered = aggregate.render(decode_state(aggregate, state))
    if not isinstance(rendered, dict):
        raise TypeError(
            f"{aggregate.aggregate_type}: the state must render as a dict, got {rendered!r}"
        )
    return dump_bytes(rendered)


def encode_event(aggregate: Aggregate, event) -> RawEvent:
    """An event instance as its name, current version and JSON data. An event that
    cannot be encoded is a bug (TypeError)."""
    name = aggregate.event_name(event)
    try:
        data = dump_bytes(schema.encode(event))
    except (ValueError, UnicodeError) as error:
        raise TypeError(
            f"{aggregate.aggregate_type}: the event {name} cannot be encoded: {error}"
        ) from None
    return RawEvent(name, aggregate.events[name].version, data)


def decode_event(aggregate: Aggregate, event: RawEvent):
    """A stored event at its current schema version as its payload instance, read
    leniently: fields it does not have are ignored. Raises WireError."""
    known = aggregate.events.get(event.name)
    if known is None:
        raise WireError(f"unknown event {event.name} v{event.version}")
    if event.version != known.version:
        raise WireError(
            f"{event.name} v{event.version} is not at the current schema version "
            f"v{known.version}; upcast it first"
        )
    try:
        return _payload(
            known.payload, event.data, aggregate.max_depth, command=False, deny_unknown=False
        )
    except (JsonError, schema.SchemaError) as error:
        raise WireError(f"{event.name} v{event.version}: {_data_error(error)}") from None


def encode_command(aggregate: Aggregate, command) -> RawCommand:
    """A command instance as a client would send it (for tests)."""
    for known in aggregate.commands.values():
        if type(command) is known.payload:
            return RawCommand(known.name, dump_bytes(schema.encode(command)))
    raise TypeError(f"{command!r} is not a command of {aggregate.aggregate_type}")


def decode_command(aggregate: Aggregate, command: RawCommand):
    """The command's handler entry and payload instance, read strictly. Raises the
    Rejection `invalid-command` when it does not fit, naming what is wrong."""
    known = aggregate.commands.get(command.name)
    if known is None:
        expected = ", ".join(dumps(name) for name in aggregate.commands)
        raise Rejection(
            INVALID_COMMAND, f"unknown command {dumps(command.name)} (expected one of {expected})"
        )
    try:
        deny_unknown = aggregate.deny_unknown_fields
        return known, _payload(
            known.payload,
            command.data,
            aggregate.max_depth,
            command=True,
            deny_unknown=deny_unknown,
        )
    except (JsonError, schema.SchemaError) as error:
        raise Rejection(INVALID_COMMAND, f"{command.name}: {_data_error(error)}") from None


def decode_state(aggregate: Aggregate, state: bytes):
    """State bytes written by `encode_state`. Raises WireError."""
    try:
        value = loads(state, aggregate.max_depth)
        if not isinstance(value, dict):
            raise schema.SchemaError(f"expected an object, got {schema.describe_value(value)}")
        return schema.decode(aggregate.state, value, strict=False)
    except (JsonError, schema.SchemaError) as error:
        raise WireError(f"state cannot be decoded: {error}") from None


def encode_state(aggregate: Aggregate, state) -> bytes:
    """The state as its JSON object. A state that cannot be encoded is a bug."""
    try:
        return dump_bytes(schema.encode(state))
    except (ValueError, UnicodeError) as error:
        raise TypeError(
            f"{aggregate.aggregate_type}: the state cannot be encoded: {error}"
        ) from None


def _decide(aggregate: Aggregate, ctx: Context, state: bytes, command: RawCommand):
    """The decoded state, the encoded events of the command and those events as
    decoded back from their JSON. Order of checks: state, command, rules."""
    try:
        current = decode_state(aggregate, state)
    except WireError as error:
        raise Rejection(INVALID_STATE, str(error)) from None
    known, payload = decode_command(aggregate, command)
    args = (current, payload, ctx) if known.takes_context else (current, payload)
    events = [encode_event(aggregate, event) for event in _as_list(known.handler(*args))]
    return current, events, [_read_back(aggregate, event) for event in events]


def _read_back(aggregate: Aggregate, event: RawEvent):
    """An event just written, decoded as a replay will; if it does not decode, it
    is never stored: a bug."""
    try:
        return decode_event(aggregate, event)
    except WireError as error:
        raise TypeError(
            f"{aggregate.aggregate_type}: handle returned an event that does not "
            f"decode back from its JSON: {error}"
        ) from None


def _fold(aggregate: Aggregate, state, event):
    """The state after one event, by the event's registered fold."""
    name = aggregate.event_name(event)
    result = aggregate.events[name].fold(state, event)
    if not isinstance(result, aggregate.state):
        raise TypeError(
            f"the fold of {name} returned {result!r}, not the new " f"{aggregate.state.__name__}"
        )
    return result


def _as_list(result) -> list:
    """A handler's answer as a list of events: None is none, one event is one."""
    if result is None:
        return []
    if isinstance(result, (list, tuple)):
        return list(result)
    return [result]


def _payload(cls: type, data: bytes, max_depth: int, *, command: bool, deny_unknown: bool):
    """A payload dataclass from wire data. A payload with fields takes them as a
    JSON object. One without takes no data, `null` or `{}`; a stored event without
    fields also any object (its fields ignored)."""
    value = None if is_blank(data) else loads(data, max_depth)
    if schema.has_fields(cls):
        if not isinstance(value, dict):
            raise schema.SchemaError(f"takes its fields as a JSON object, got {_kind(value, data)}")
    elif not (value is None or value == {} or (not command and isinstance(value, dict))):
        raise schema.SchemaError(f"takes no data (no data, null or {{}}), got {_kind(value, data)}")
    return schema.decode(cls, value or {}, strict=deny_unknown)


def _kind(value, data: bytes) -> str:
    """What kind of JSON value was given, for a message."""
    if value is None:
        return "no data" if is_blank(data) else "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def _data_error(error: Exception) -> str:
    """How a decoding error reads after the command or event name."""
    if isinstance(error, JsonError) and not isinstance(error, DuplicateKey):
        return f"data is {error}"
    return str(error)
