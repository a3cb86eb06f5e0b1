"""Given/when/then tests of an aggregate, in plain CPython with pytest.

    def test_withdrawing_more_than_the_balance_is_refused():
        given(account, [AccountOpened(initial_balance=100)]) \\
            .when(Withdraw(amount=150)) \\
            .then_rejects("insufficient-funds")

Every step runs the component's own wire layer: the given events are encoded and
folded (in one batch and one at a time, which must agree), the command is encoded
and decided with `handle` and with `decide` (which must agree), and the answer is
decoded back. A test therefore also checks that commands, events and the state
survive their JSON form. A failed expectation raises AssertionError; a bug in the
aggregate raises its own exception, as it would panic in the component.
"""

from . import strict_json, wire
from .aggregate import Aggregate, Context, Rejection
from .upcast import StoredEvent

#: The clock of a scenario unless `when` is given a context: 2026-01-01T00:00:00Z.
DEFAULT_NOW_MS = 1_767_225_600_000


def given(aggregate: Aggregate, events=()) -> "Scenario":
    """A scenario whose stream holds these event instances (current schemas)."""
    aggregate.check()
    return Scenario(aggregate, [wire.encode_event(aggregate, event) for event in events])


def given_stored(aggregate: Aggregate, events=()) -> "Scenario":
    """A scenario whose stream holds these stored events (`stored(...)`, any schema
    version): each is upcast, then folded, as the host rehydrates a stream."""
    aggregate.check()
    events = list(events)
    current = []
    for event in events:
        current.extend(wire.upcast(aggregate, _raw(event)))
    return Scenario(aggregate, current, stream_version=len(events))


def stored(name: str, version: int, data=None) -> StoredEvent:
    """A stored event with its data as a JSON value (default `{}`)."""
    return StoredEvent(name, version, {} if data is None else data)


def upcast(aggregate: Aggregate, event: StoredEvent) -> list[StoredEvent]:
    """What the host's `upcast` makes of one stored event; raises WireError if it
    cannot be upcast."""
    aggregate.check()
    return [_stored(raw) for raw in wire.upcast(aggregate, _raw(event))]


class Scenario:
    """A stream before the command: its state, and `when` to send one."""

    def __init__(self, aggregate: Aggregate, events: list[wire.RawEvent], stream_version=None):
        self.aggregate = aggregate
        self.events = events
        self.stream_version = len(events) if stream_version is None else stream_version
        self.state_bytes = _fold_both_ways(aggregate, events)

    @property
    def state(self):
        """The state after the given events."""
        return wire.decode_state(self.aggregate, self.state_bytes)

    def state_json(self) -> dict:
        """What `state-json` renders for the state after the given events."""
        return strict_json.loads(wire.state_json(self.aggregate, self.state_bytes))

    def when(self, command, ctx: Context | None = None) -> "Outcome":
        """Sends a command instance, encoded as a client would send it."""
        return self._send(wire.encode_command(self.aggregate, command), ctx)

    def when_raw(self, name: str, data: str | bytes = b"", ctx: Context | None = None) -> "Outcome":
        """Sends a command by name with its data exactly as given (text or bytes)."""
        data = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        return self._send(wire.RawCommand(name, data), ctx)

    def _send(self, command: wire.RawCommand, ctx: Context | None) -> "Outcome":
        ctx = ctx or Context("test-1", self.stream_version, DEFAULT_NOW_MS)
        handled = _answer(lambda: wire.handle(self.aggregate, ctx, self.state_bytes, command))
        decided = _answer(lambda: wire.decide(self.aggregate, ctx, self.state_bytes, command))
        return Outcome(self, command, handled, decided)


class Outcome:
    """The answer to a command: events and the state after them, or a rejection."""

    def __init__(self, scenario: Scenario, command: wire.RawCommand, handled, decided):
        self.aggregate = scenario.aggregate
        self.command = command
        self.before = scenario.state_bytes
        self.rejection = decided if isinstance(decided, Rejection) else None
        self.events, self.state_bytes = ([], self.before) if self.rejection else decided
        _check_agreement(self.aggregate, self.before, handled, decided)

    def then_events(self, expected) -> object:
        """Asserts the command was accepted with exactly these event instances, in
        order; returns the state after them."""
        actual = [wire.decode_event(self.aggregate, event) for event in self._accepted()]
        assert actual == list(
            expected
        ), f"{self._label()}: expected events {list(expected)}, got {actual}"
        return wire.decode_state(self.aggregate, self.state_bytes)

    def then_raw_events(self, expected) -> object:
        """Asserts the events' names, versions and JSON data (`stored(...)`)."""
        actual = [_stored(event) for event in self._accepted()]
        assert actual == list(
            expected
        ), f"{self._label()}: expected events {list(expected)}, got {actual}"
        return wire.decode_state(self.aggregate, self.state_bytes)

    def then_rejects(self, code: str) -> Rejection:
        """Asserts the command was refused with this code; returns the rejection."""
        expected = f"{self._label()}: expected the rejection {code!r}"
        assert self.rejection is not None, f"{expected}, got the events {self._described_events()}"
        assert self.rejection.code == code, f"{expected}, got {self.rejection}"
        return self.rejection

    def state_json(self) -> dict:
        """`state-json` after the answer (the state before it for a rejection)."""
        return strict_json.loads(wire.state_json(self.aggregate, self.state_bytes))

    def _accepted(self) -> list[wire.RawEvent]:
        assert (
            self.rejection is None
        ), f"{self._label()}: expected events, got the rejection {self.rejection}"
        return self.events

    def _described_events(self) -> list[str]:
        return [f"{e.name} v{e.version} {e.data.decode()}" for e in self.events]

    def _label(self) -> str:
        return f"{self.command.name} {self.command.data.decode('utf-8', 'replace')}"


def _answer(call):
    """A call's result, or the Rejection it raised."""
    try:
        return call()
    except Rejection as rejection:
        return rejection


def _check_agreement(aggregate: Aggregate, before: bytes, handled, decided) -> None:
    """`handle` and `decide` must give the same answer, and `decide`'s state must be
    what `apply` of the events makes of the state before."""
    if isinstance(handled, Rejection) or isinstance(decided, Rejection):
        codes = [a.code if isinstance(a, Rejection) else "events" for a in (handled, decided)]
        assert codes[0] == codes[1], f"handle answered {codes[0]}, decide {codes[1]}"
        return
    events, after = decided
    assert handled == events, f"handle returned {handled}, decide {events}"
    applied = wire.apply(aggregate, before, events)
    assert _parsed(applied) == _parsed(
        after
    ), f"decide's state {after!r} differs from apply's {applied!r}"


def _fold_both_ways(aggregate: Aggregate, events: list[wire.RawEvent]) -> bytes:
    """The state after the events, folded in one batch; one event per call must
    give the same state (a fold must not depend on batching)."""
    batch = wire.apply(aggregate, wire.initial_state(aggregate), events)
    single = wire.initial_state(aggregate)
    for event in events:
        single = wire.apply(aggregate, single, [event])
    assert _parsed(batch) == _parsed(
        single
    ), f"folding the events in one batch gives {batch!r}, one at a time {single!r}"
    return batch


def _parsed(state: bytes):
    return strict_json.loads(state)


def _raw(event: StoredEvent) -> wire.RawEvent:
    return wire.RawEvent(event.name, event.version, strict_json.dump_bytes(event.data))


def _stored(event: wire.RawEvent) -> StoredEvent:
    data = None if strict_json.is_blank(event.data) else strict_json.loads(event.data)
    return StoredEvent(event.name, event.version, data)


__all__ = ["given", "given_stored", "stored", "upcast", "Scenario", "Outcome", "DEFAULT_NOW_MS"]
