"""A small aggregate for the SDK's tests: a counter with notes, exercising the field
types (optional, nested, list), a command without fields, a handler that reads the
context, event versions and upcasters."""

from dataclasses import dataclass, field, replace

from tally_sdk import Aggregate, Context, Rejection, StoredEvent


@dataclass(frozen=True)
class Counter:
    value: int = 0
    notes: list[str] = field(default_factory=list)
    last_ms: int = 0


@dataclass(frozen=True)
class Address:
    street: str
    zip: str | None = None


@dataclass(frozen=True)
class Add:
    by: int
    note: str | None = None


@dataclass(frozen=True)
class Ship:
    to: Address
    tags: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Reset:
    pass


@dataclass(frozen=True)
class Added:
    by: int
    at_ms: int
    note: str | None = None


@dataclass(frozen=True)
class Shipped:
    street: str


@dataclass(frozen=True)
class WasReset:
    pass


counter = Aggregate("counter", version="1.2.0", description="Counts.", state=Counter)


@counter.handles(Add)
def add(state: Counter, command: Add, ctx: Context) -> Added:
    if command.by <= 0:
        raise Rejection("invalid-amount", f"add more than zero, got {command.by}")
    return Added(by=command.by, at_ms=ctx.now_ms, note=command.note)


@counter.handles(Ship)
def ship(state: Counter, command: Ship) -> list:
    return [Shipped(street=command.to.street)]


@counter.handles(Reset, name="Reset-All")
def reset(state: Counter, command: Reset) -> WasReset | None:
    return WasReset() if state.value else None


@counter.applies(Added, version=3)
def added(state: Counter, event: Added) -> Counter:
    notes = [*state.notes, event.note] if event.note else state.notes
    return replace(state, value=state.value + event.by, notes=notes, last_ms=event.at_ms)


@counter.applies(Shipped)
def shipped(state: Counter, event: Shipped) -> Counter:
    return state


@counter.applies(WasReset)
def was_reset(state: Counter, event: WasReset) -> Counter:
    return replace(state, value=0)


@counter.upcasts("Added", from_version=1)
def added_v1_to_v2(data: dict) -> dict:
    """v1 had no time: it is 0."""
    return {**data, "at_ms": 0}


@counter.upcasts("Added", from_version=2)
def added_v2_to_v3(data: dict) -> dict:
    """v2 called the amount `amount`."""
    data = dict(data)
    data["by"] = data.pop("amount")
    return data


@counter.replaces("Doubled", from_version=1)
def doubled(data: dict) -> list[StoredEvent]:
    """A retired event: it was two additions of the same amount, at version 2."""
    twice = {"amount": data["by"]}
    return [
        StoredEvent("Added", 2, {**twice, "at_ms": 0}),
        StoredEvent("Added", 2, {**twice, "at_ms": 0}),
    ]
