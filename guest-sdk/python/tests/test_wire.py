"""The exported functions on bytes: commands, events, states and upcasting as the
wire rules say (wit/WIRE.md)."""

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

import pytest
from samples import Added, Shipped, WasReset, counter

from tally_sdk import INVALID_COMMAND, INVALID_STATE, Aggregate, Context, Rejection
from tally_sdk.wire import (
    RawCommand,
    RawEvent,
    WireError,
    apply,
    decide,
    handle,
    initial_state,
    state_json,
    upcast,
)

CTX = Context("c-1", 0, 1_000)


def state_of(**fields) -> bytes:
    return json.dumps({**{"value": 0, "notes": [], "last_ms": 0}, **fields}).encode()


def rejection(command: RawCommand, state: bytes | None = None) -> Rejection:
    state = initial_state(counter) if state is None else state
    with pytest.raises(Rejection) as handled:
        handle(counter, CTX, state, command)
    with pytest.raises(Rejection) as decided:
        decide(counter, CTX, state, command)
    assert handled.value.code == decided.value.code
    return decided.value


def test_the_initial_state_is_the_state_dataclass_with_its_defaults():
    assert initial_state(counter) == b'{"value":0,"notes":[],"last_ms":0}'


def test_a_command_becomes_events_written_compactly_at_their_current_version():
    events = handle(
        counter, CTX, initial_state(counter), RawCommand("Add", b'{"by": 2, "note": "x"}')
    )
    assert events == [RawEvent("Added", 3, b'{"by":2,"at_ms":1000,"note":"x"}')]


def test_decide_returns_the_events_and_the_state_after_them():
    events, state = decide(counter, CTX, initial_state(counter), RawCommand("Add", b'{"by": 2}'))
    assert [e.name for e in events] == ["Added"]
    assert json.loads(state) == {"value": 2, "notes": [], "last_ms": 1000}
    assert state == apply(counter, initial_state(counter), events)


def test_a_handler_may_return_no_event():
    assert handle(counter, CTX, initial_state(counter), RawCommand("Reset-All")) == []
    events, state = decide(counter, CTX, initial_state(counter), RawCommand("Reset-All"))
    assert events == [] and state == initial_state(counter)


@pytest.mark.parametrize("data", [b"", b"null", b"{}", b" { } ", b"\n null \t"])
def test_a_command_without_fields_takes_no_data_null_or_an_empty_object(data):
    events = handle(counter, CTX, state_of(value=1), RawCommand("Reset-All", data))
    assert [e.name for e in events] == ["WasReset"]
    assert events[0].data == b"{}"


@pytest.mark.parametrize("data", [b'{"now": true}', b"[]", b"0", b'""', b"false"])
def test_a_command_without_fields_refuses_anything_else(data):
    assert rejection(RawCommand("Reset-All", data), state_of(value=1)).code == INVALID_COMMAND


@pytest.mark.parametrize("data", [b"", b"null", b"[2]", b"2", b'"2"', b"true"])
def test_a_command_with_fields_takes_them_only_as_an_object(data):
    assert "takes its fields as a JSON object" in rejection(RawCommand("Add", data)).message


@pytest.mark.parametrize("name", ["add", " Add", "Add ", "", "Reset", "Transfer"])
def test_a_command_name_is_compared_exactly(name):
    refused = rejection(RawCommand(name, b'{"by": 1}'))
    assert refused.code == INVALID_COMMAND
    assert refused.message.startswith("unknown command")


@pytest.mark.parametrize(
    "data, message",
    [
        (b'{"by": 1, "extra": 1}', 'Add: unknown field "extra" (expected one of "by", "note")'),
        (b'{"by": 1, "by": 2}', 'Add: duplicate field "by"'),
        (b'{"by": "1"}', 'Add: field "by": invalid type: string "1", expected i64'),
        (b'{"by": 5.0}', 'Add: field "by": invalid type: floating point 5.0, expected i64'),
        (b"{}", 'Add: missing field "by"'),
    ],
)
def test_a_malformed_command_is_invalid_command_naming_the_problem(data, message):
    assert rejection(RawCommand("Add", data)).message == message


def test_a_nested_unknown_field_is_refused_with_its_path():
    data = b'{"to": {"street": "Main", "zipp": "1"}}'
    assert rejection(RawCommand("Ship", data)).message.startswith('Ship: unknown field "to.zipp"')


def test_unknown_fields_pass_when_the_aggregate_allows_them(monkeypatch):
    monkeypatch.setattr(counter, "deny_unknown_fields", False)
    command = RawCommand("Ship", b'{"to": {"street": "x", "zip5": 1}, "extra": 1}')
    assert [e.name for e in handle(counter, CTX, initial_state(counter), command)] == ["Shipped"]
    # A command without fields still takes no data, null or {} only.
    refused = rejection(RawCommand("Reset-All", b'{"now": true}'), state_of(value=1))
    assert refused.code == INVALID_COMMAND


def test_nesting_beyond_the_limit_is_invalid_command():
    deep = b'{"to": {"street": "x"}, "tags": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    assert "levels deep" in rejection(RawCommand("Ship", deep)).message


def test_the_depth_limit_is_the_aggregate_s(monkeypatch):
    monkeypatch.setattr(counter, "max_depth", 2)
    two_levels = RawCommand("Ship", b'{"to": {"street": "x"}, "tags": ["a"]}')
    assert handle(counter, CTX, initial_state(counter), two_levels)
    three_levels = RawCommand("Ship", b'{"to": {"street": "x"}, "tags": [["a"]]}')
    expected = "Ship: data is nested 3 levels deep, more than the 2 allowed"
    assert rejection(three_levels).message == expected


def test_the_state_is_read_first_then_the_command_then_the_rules():
    assert rejection(RawCommand("Add", b'{"by": "x"}'), b"not json").code == INVALID_STATE
    assert rejection(RawCommand("Add", b'{"by": "x"}')).code == INVALID_COMMAND
    assert rejection(RawCommand("Add", b'{"by": 0}')).code == "invalid-amount"


@pytest.mark.parametrize(
    "state", [b"", b"[]", b'{"value": "x"}', b'{"value": 1, "value": 1}', b"\xff"]
)
def test_state_bytes_that_do_not_decode_are_invalid_state_or_an_error(state):
    assert rejection(RawCommand("Add", b'{"by": 1}'), state).code == INVALID_STATE
    with pytest.raises(WireError, match="state cannot be decoded"):
        apply(counter, state, [])
    with pytest.raises(WireError, match="state cannot be decoded"):
        state_json(counter, state)


def test_apply_gives_the_same_state_for_any_batching():
    events = [
        RawEvent("Added", 3, b'{"by": 2, "at_ms": 5, "note": "a"}'),
        RawEvent("WasReset", 1, b""),
        RawEvent("Added", 3, b'{"by": 3, "at_ms": 6}'),
    ]
    one_batch = apply(counter, initial_state(counter), events)
    one_by_one = initial_state(counter)
    for event in events:
        one_by_one = apply(counter, one_by_one, [event])
    assert one_batch == one_by_one
    assert json.loads(one_batch) == {"value": 3, "notes": ["a"], "last_ms": 6}


@pytest.mark.parametrize("data", [b"", b"null", b"{}", b'{"later": 1}'])
def test_a_stored_event_without_fields_reads_from_no_data_null_or_any_object(data):
    assert apply(counter, state_of(value=4), [RawEvent("WasReset", 1, data)]) == state_of(
        value=0
    ).replace(b" ", b"")


def test_a_stored_event_ignores_fields_it_does_not_have():
    state = apply(
        counter,
        initial_state(counter),
        [RawEvent("Added", 3, b'{"by": 1, "at_ms": 2, "new": true}')],
    )
    assert json.loads(state)["value"] == 1


@pytest.mark.parametrize(
    "event, message",
    [
        (RawEvent("Gone", 1, b"{}"), "unknown event Gone v1"),
        (RawEvent("Added", 2, b'{"by": 1, "at_ms": 0}'), "not at the current schema version v3"),
        (RawEvent("Added", 3, b"not json"), "data is not JSON"),
        (RawEvent("Added", 3, b'{"by": "x", "at_ms": 0}'), "invalid type"),
        (RawEvent("Added", 3, b'{"at_ms": 0}'), 'missing field "by"'),
        (RawEvent("Added", 3, b'{"by": 1, "by": 2, "at_ms": 0}'), "duplicate field"),
        (RawEvent("Added", 3, b"[1, 0]"), "as a JSON object"),
        (RawEvent("Added", 3, b"[" * 200 + b"]" * 200), "levels deep"),
    ],
)
def test_a_stored_event_that_cannot_be_read_is_an_error_naming_its_place(event, message):
    good = RawEvent("WasReset", 1, b"{}")
    with pytest.raises(WireError, match="event 1 of the batch") as error:
        apply(counter, initial_state(counter), [good, event])
    assert message in str(error.value)


def test_upcast_returns_a_current_event_unchanged():
    assert upcast(counter, RawEvent("Shipped", 1, b'{"street": "x"}')) == [
        RawEvent("Shipped", 1, b'{"street":"x"}')
    ]


def test_upcast_chains_the_upcasters_to_the_current_version():
    assert upcast(counter, RawEvent("Added", 1, b'{"amount": 4}')) == [
        RawEvent("Added", 3, b'{"at_ms":0,"by":4}')
    ]


def test_upcast_replaces_a_retired_event_by_several_in_order():
    lifted = upcast(counter, RawEvent("Doubled", 1, b'{"by": 2}'))
    assert [(e.name, e.version, json.loads(e.data)) for e in lifted] == [
        ("Added", 3, {"at_ms": 0, "by": 2})
    ] * 2


@pytest.mark.parametrize(
    "event, message",
    [
        (RawEvent("Gone", 1, b"{}"), "unknown event Gone v1"),
        (RawEvent("Added", 4, b"{}"), "newer than this plugin, which writes v3"),
        (RawEvent("Shipped", 0, b"{}"), "no upcaster for Shipped v0"),
        (RawEvent("Added", 1, b"{bad"), "data is not JSON"),
        (RawEvent("Added", 2, b'{"by": 1}'), "upcasting Added v2: 'amount'"),
        (RawEvent("Doubled", 1, b"null"), "upcasting Doubled v1"),
    ],
)
def test_upcast_refuses_what_it_cannot_lift(event, message):
    with pytest.raises(WireError) as error:
        upcast(counter, event)
    assert message in str(error.value)


def test_state_json_is_the_state_unless_the_aggregate_renders_it():
    assert json.loads(state_json(counter, state_of(value=3))) == {
        "value": 3,
        "notes": [],
        "last_ms": 0,
    }


@dataclass(frozen=True)
class Measure:
    value: float


@dataclass(frozen=True)
class Measured:
    value: float


@dataclass(frozen=True)
class Gauge:
    last: float = 0.0


def gauge() -> Aggregate:
    """An aggregate whose handler writes what it is given, NaN included."""
    aggregate = Aggregate("gauge", version="1.0.0", description="", state=Gauge)
    aggregate.handles(Measure)(lambda state, command: Measured(command.value))
    aggregate.applies(Measured)(lambda state, event: Gauge(event.value))
    aggregate.renders_state(lambda state: {"last": state.last, "rendered": True})
    return aggregate


def test_a_rendered_state_is_what_state_json_returns():
    assert json.loads(state_json(gauge(), b'{"last": 1.5}')) == {"last": 1.5, "rendered": True}


def with_handler(aggregate: Aggregate, handler) -> Aggregate:
    """The aggregate with its `Measure` handler replaced."""
    aggregate.commands["Measure"] = dataclasses.replace(
        aggregate.commands["Measure"], handler=handler
    )
    return aggregate


def test_an_event_that_cannot_be_written_is_a_bug_not_an_answer():
    writes_nan = with_handler(gauge(), lambda state, command: Measured(float("nan")))
    for call in (handle, decide):
        with pytest.raises(TypeError, match="the event Measured cannot be encoded"):
            call(writes_nan, CTX, b"{}", RawCommand("Measure", b'{"value": 1}'))


def test_an_event_of_the_wrong_type_is_a_bug_not_an_answer():
    writes_a_string = with_handler(gauge(), lambda state, command: Measured("1.5"))
    for call in (handle, decide):
        with pytest.raises(TypeError, match="cannot be encoded"):
            call(writes_a_string, CTX, b"{}", RawCommand("Measure", b'{"value": 1}'))


@dataclass(frozen=True)
class Noted:
    anything: Any


def test_an_event_that_does_not_read_back_is_a_bug_not_an_answer():
    aggregate = with_handler(gauge(), lambda state, command: Noted([[[[1]]]]))
    aggregate.applies(Noted)(lambda state, event: state)
    aggregate.max_depth = 3
    for call in (handle, decide):
        with pytest.raises(TypeError, match="does not decode back from its JSON"):
            call(aggregate, CTX, b"{}", RawCommand("Measure", b'{"value": 1}'))


def test_a_handler_returning_something_else_than_an_event_is_a_bug():
    returns_a_dict = with_handler(gauge(), lambda state, command: {"value": 1})
    with pytest.raises(TypeError, match="is not an event of gauge"):
        handle(returns_a_dict, CTX, b"{}", RawCommand("Measure", b'{"value": 1}'))


def test_a_fold_that_does_not_return_the_state_is_a_bug():
    aggregate = gauge()
    aggregate.events["Measured"] = dataclasses.replace(
        aggregate.events["Measured"], fold=lambda state, event: None
    )
    with pytest.raises(TypeError, match="returned None, not the new Gauge"):
        apply(aggregate, b"{}", [RawEvent("Measured", 1, b'{"value": 1}')])


def test_the_context_reaches_a_handler_that_takes_it():
    events = handle(
        counter, Context("c-9", 4, 77), initial_state(counter), RawCommand("Add", b'{"by": 1}')
    )
    assert json.loads(events[0].data)["at_ms"] == 77


def test_event_instances_compare_by_value():
    assert Added(1, 2) == Added(by=1, at_ms=2) and Shipped("x") != WasReset()
